"""benchmarks/corpus.py runs end to end on a small three-version corpus of the real one's shape
(so the benchmark cannot rot unnoticed; the figures themselves are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_corpus(tmp: Path) -> Path:
    body = "".join(f"fn F{i}(a: int32): int32 =\n    return a + {i}\n" for i in range(400))
    for n, commit in enumerate(["285be925", "4829e378", "3a63137e"]):
        core = tmp / "c" / f"core-{commit}" / "src" / "core"
        (core / "backend").mkdir(parents=True)
        (core / "backend" / "backend_driver_dispatch_min.cheng").write_bytes(b"\xcf\xfa\xed\xfe")
        (core / "lang").mkdir()
        (core / "lang" / "a.cheng").write_text(body.replace("a + 7\n", f"a + 7 + {n}\n"))
        (core / "lang" / "b.cheng").write_text(body[: 2000 + 500 * n])
    out = tmp / "corpus.tar.xz"
    with tarfile.open(out, "w:xz") as tf:
        for d in sorted((tmp / "c").iterdir()):
            tf.add(d, arcname=d.name)
    return out


def test_corpus_benchmark_runs_and_reports_every_row(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path)
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "corpus.py"), "--corpus",
                           str(corpus), "--repeat", "1", "--clock", "cpu", "--phases", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    rows = json.loads(lines[-1])
    assert set(rows) == {"publish_v1", "new_bytes_v2", "new_bytes_v3"}
    for name in ("new_bytes_v2", "new_bytes_v3"):
        row = rows[name]
        # Both versions change lang/a.cheng and lang/b.cheng (and the manifest's version).
        assert row["changed_files"] == 3 and row["anchor"] > 0
        assert row["ours"] > 0 and row["xz"] > 0 and row["git"] > 0
    assert rows["publish_v1"]["ours"] > 0 and rows["publish_v1"]["anchor"] > 0
    assert any("fingerprint (C scanner)" in line for line in lines)
    # The imports phase replays the modules a real publish loaded (recorded from that run).
    imports = [line for line in lines if "imports (what the publish run loaded:" in line]
    assert len(imports) == 1 and int(imports[0].split("loaded: ")[1].split()[0]) > 50, imports
    assert any("interpreter start (python -c pass" in line for line in lines)
    assert any("snapshot, fastcdc-2048-8192-65536, into the store" in line for line in lines)
    assert any("fingerprint + API table as publish scans them (one C call)" in line for line in lines)
