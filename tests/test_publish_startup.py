"""What a publish imports: a real ``cheng-registry publish`` (console-script style, in its own
process) must not load the heavy modules its start-up no longer needs (issue 19: the imports were
a third of a publish of real Cheng code). Each name says what replaced it, so a change that brings
one back can be fixed at the import rather than by deleting the name here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# module -> what the publish path uses instead
NOT_ON_THE_PUBLISH_PATH = {
    "multiformats": "cas.cid_value.CID (multiformats only decodes rare multibase text)",
    "dataclasses": "core.record.dataclass",
    "inspect": "core.record.dataclass (dataclasses imports inspect)",
    "typing": "a TYPE_CHECKING = False guard around typing imports",
    "tomllib": "pkg.toml_subset for simple manifests",
    "nacl.signing": "trust.keys signs through nacl._sodium",
    "nacl.bindings": "trust.keys signs through nacl._sodium",
    "concurrent.futures": "a function-local import where a thread pool is used",
    "ctypes": "core.writeback imports it when a batch asks for writeback",
    "subprocess": "core.writeback no longer uses ctypes.util",
    "tempfile": "core.writeback no longer uses ctypes.util",
    "cheng_build.cas.exporter": "importer imports symlink_escapes where links are checked",
    "importlib.util": "the console script, not python -m",
    "tarfile": "the tar snapshot format only",
}

RUN = ("import sys\nfrom cheng_build.cli.registry import main\nrc = main(sys.argv[1:])\n"
       "print(' '.join(sorted(sys.modules)))\nsys.exit(rc)")


def test_publish_does_not_import_what_it_does_not_need(tmp_path: Path) -> None:
    src = tmp_path / "pkg"
    (src / "src").mkdir(parents=True)
    (src / "cheng-package.toml").write_text(
        '# a library\npackage_id = "pkg://cheng/startup"\nversion = "1.2.0"\n', encoding="utf-8")
    (src / "src" / "startup.cheng").write_text(
        "fn Add(a: int32, b: int32): int32 =\n    return a + b\n\ntype Point = object\n    x: int32\n",
        encoding="utf-8")
    key = tmp_path / "k.key"
    env = {**os.environ, "PKG_TRUST_DIR": str(tmp_path / "trust"),
           "PKG_AUDIT_LOG": str(tmp_path / "audit.log")}
    run = [sys.executable, "-c", RUN]
    subprocess.run([*run, "keygen", f"--out:{key}", "--author:alice"], env=env, check=True,
                   capture_output=True, timeout=120)
    out = subprocess.run([*run, "publish", "--package:pkg://cheng/startup", "--channel:edge",
                          "--epoch:1", "--version:1.2.0", f"--src:{src}", f"--priv:{key}",
                          f"--store:{tmp_path / 'store'}", f"--registry:{tmp_path / 'reg.jsonl'}"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-2].startswith("bafybei")  # the snapshot's CID, printed last by publish
    loaded = set(lines[-1].split())
    assert "cheng_build.pkg.publish" in loaded and "cheng_build._native" in loaded
    wrong = {m: why for m, why in NOT_ON_THE_PUBLISH_PATH.items() if m in loaded}
    assert not wrong, f"publish imported {sorted(wrong)}; use instead: {wrong}"
