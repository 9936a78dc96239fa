"""cisweb speed: sketch -> first task, and the closedloop wall time, each beside its anchor.

* ``sketch_first_task``: wall time from starting ``cis run "<sketch>"`` (read manifests, parse
  intent, detect capabilities incl. NVML, print the preview, create the run, start the engine) to
  the first task's start, on a copy of ``examples/sketch-gpu``; anchor: a bare ``python -c pass``
  start. Goal: under 1 s.
* ``closedloop``: wall time of ``cis run closedloop`` (no compiler configured unless
  ``CHENG_COMPILER`` is set); anchor: the same task argvs run one after another by a plain loop of
  ``subprocess.run`` in the same work directory layout (what the pipeline costs without CIS: no
  sandbox, no store, no parallelism). Goal: under 60 s.

Usage: ``python benchmarks/cisweb.py [--quick] [--repeat N] [--json]``; ``--json`` prints one JSON
object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SKETCH = "测试体素算法，cuda和metal对比"


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, CIS_HOME=str(home))
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _first_start(home: Path, timeout: float = 30.0) -> float | None:
    db = home / "state.db"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=5)
                row = con.execute("SELECT MIN(ts) FROM events WHERE kind='started'").fetchone()
                con.close()
                if row and row[0]:
                    return float(row[0])
            except sqlite3.Error:
                pass
        time.sleep(0.01)
    return None


def sketch_first_task(tmp: Path) -> float:
    proj = tmp / "proj"
    if not proj.exists():
        shutil.copytree(REPO / "examples" / "sketch-gpu", proj,
                        ignore=shutil.ignore_patterns("build-cis", "cis-results"))
    home = Path(tempfile.mkdtemp(dir=tmp, prefix="home-"))
    t0 = time.time()
    p = subprocess.Popen([sys.executable, "-m", "cheng_build.cli.cis", "run", SKETCH, "--quiet"],
                         cwd=proj, env=_env(home), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    started = _first_start(home)
    os.killpg(p.pid, signal.SIGKILL)  # the first task started: that is all this figure needs
    p.wait()
    if started is None:
        raise RuntimeError("no task started")
    return started - t0


def python_start() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def closedloop(tmp: Path) -> float:
    home = Path(tempfile.mkdtemp(dir=tmp, prefix="home-"))
    wd = Path(tempfile.mkdtemp(dir=tmp, prefix="wd-"))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "run", "closedloop",
                        f"--workdir:{wd}", "--quiet"], env=_env(home), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"closedloop failed: {r.stderr[-2000:]}")
    return dt


def closedloop_anchor(tmp: Path) -> float:
    """The same argvs, sequentially, no engine, no sandbox (ignorable failures tolerated)."""
    from cheng_build.cis.targets.closedloop import build_dag

    wd = Path(tempfile.mkdtemp(dir=tmp, prefix="anchor-"))
    dag = build_dag(wd)
    t0 = time.perf_counter()
    for t in dag.tasks:
        r = subprocess.run(list(t.exec.cmd), cwd=dag.base_dir, env=dict(t.exec.env),
                           capture_output=True)
        if r.returncode != 0 and not t.ignorable:
            raise RuntimeError(f"anchor: {t.name} failed: {r.stderr[-2000:]!r}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repetition, no closedloop anchor")
    ap.add_argument("--repeat", type=int, default=5, help="sketch repetitions (median)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    reps = 1 if args.quick else args.repeat
    out: dict[str, dict[str, float | str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cisweb-") as d:
        tmp = Path(d)
        sketch_first_task(tmp)  # warm: bytecode, the sandbox probe cache
        ours = statistics.median(sketch_first_task(tmp) for _ in range(reps))
        anchor = statistics.median(python_start() for _ in range(max(3, reps)))
        out["sketch_first_task"] = {"ours": ours, "anchor": anchor, "unit": "s", "ratio": ours / anchor}
        print(f"sketch -> first task started: {ours * 1000:8.1f} ms   python -c pass: "
              f"{anchor * 1000:6.1f} ms   ratio {ours / anchor:5.1f}   (goal < 1000 ms)")
        ours = closedloop(tmp)
        anchor = closedloop_anchor(tmp) if not args.quick else float("nan")
        out["closedloop"] = {"ours": ours, "anchor": anchor, "unit": "s", "ratio": ours / anchor}
        print(f"cis run closedloop:          {ours:8.2f} s    same argvs in a plain loop: "
              f"{anchor:6.2f} s   ratio {ours / anchor:5.2f}   (goal < 60 s)")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
