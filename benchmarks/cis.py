"""CIS engine speed: per-task overhead on a 256-task DAG of no-op tasks, and the time from
``cis run`` to the first task starting.

Each figure is printed beside its anchor measured in the same run:

* ``task_cycle_*``: median time between consecutive task starts with ``--jobs 1`` (the engine's
  whole per-task cycle: gates, store writes, fork/exec, reap) vs. the median time to spawn and
  reap the same no-op process with bare ``subprocess`` (anchor). ``ours - anchor`` is the engine
  overhead per task (goal <= 5 ms). Measured unsandboxed (engine cost alone) and, where it works,
  with bubblewrap (anchor: bare ``bwrap ... true``).
* ``task_cpu_*``: CPU seconds (user + system, the engine and everything it started) per task:
  ``(CPU of the N-task run - CPU of a 1-task run) / (N - 1)``, so start-up is not counted, vs.
  the CPU of ``sandbox.launch()`` + wait of the same task (anchor). CPU time hardly moves with
  the machine's load, unlike the wall-clock figures; ``engine_cpu_overhead_*`` is the difference.
* ``namespaces_init``: the ``namespaces`` fallback's launch of a no-op task (``unshare`` +
  ``nsinit``, which brings ``lo`` up, covers ``/sys/fs/cgroup`` and drops capabilities) vs. the
  same ``unshare`` running ``true`` directly (anchor): what closing those gaps costs per task.
* ``first_task``: wall time from starting ``cis run dag.toml`` to the first task's start vs.
  the time to start a bare ``python -c pass`` (anchor). Goal <= 300 ms.

Usage: ``python benchmarks/cis.py [--tasks 256] [--quick] [--json]``; ``--json`` prints one JSON
object as the last line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cheng_build.cis.dag.model import Isolation, SandboxConfig  # noqa: E402
from cheng_build.cis.sandbox import launch as sandbox  # noqa: E402


def _dag_toml(n: int, isolation: str) -> str:
    lines = ['name = "bench"', 'policy = "AllSuccess"']
    for i in range(n):
        lines += ["[[tasks]]", f"idx = {i}", f'name = "noop{i}"',
                  f'exec = {{ cmd = ["true"], sandbox = {{ isolation = "{isolation}" }} }}']
    return "\n".join(lines) + "\n"


def _env(home: Path, mode: str | None = None) -> dict[str, str]:
    env = dict(os.environ, CIS_HOME=str(home))
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if mode:
        env["CIS_SANDBOX"] = mode
    # An installed package has its bytecode compiled at install time; let a source checkout
    # cache it too (the first run warms it), so start-up is measured as users see it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _run_cis_cpu(home: Path, dag: Path, jobs: int) -> float:
    """CPU seconds of ``cis run`` and every process it started (waited-for children)."""
    c = _children_cpu()
    _run_cis(home, dag, jobs)
    return _children_cpu() - c


def _run_cis(home: Path, dag: Path, jobs: int) -> tuple[float, list[float]]:
    """Run ``cis run``; return (process start time, sorted task start times)."""
    import sqlite3

    t0 = time.time()
    subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "run", str(dag), "--quiet",
                    f"--jobs={jobs}"], env=_env(home), check=True)
    db = sqlite3.connect(home / "state.db")
    rid = db.execute("SELECT run_id FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    starts = sorted(r[0] for r in db.execute("SELECT started FROM tasks WHERE run_id=?", (rid,)))
    db.close()
    return t0, starts


def _anchor_spawn(argv: list[str], n: int) -> float:
    """Median wall time to spawn and reap ``argv`` with bare subprocess (as the engine does)."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, env={}, check=True, close_fds=True, start_new_session=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _anchor_launch(spec: sandbox.LaunchSpec, mode: sandbox.SandboxMode, n: int,
                   cpu: list[float] | None = None) -> float:
    """Median time of :func:`sandbox.launch` + wait + release for ``spec``: everything the
    engine does to run a task except the engine's own bookkeeping. Appends the mean CPU seconds
    per launch (this process + the task's processes) to ``cpu``."""
    times = []
    c0 = _self_cpu() + _children_cpu()
    for _ in range(n):
        t = time.perf_counter()
        p = sandbox.launch(spec, mode, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.wait()
        sandbox.release(p)
        times.append(time.perf_counter() - t)
    if cpu is not None:
        cpu.append((_self_cpu() + _children_cpu() - c0) / n)
    sandbox.release_all()
    return statistics.median(times)


def _task_spec(tmp: Path, isolation: str) -> tuple[sandbox.LaunchSpec, sandbox.SandboxMode]:
    """The launch the engine makes for a no-op task of this DAG."""
    true = shutil.which("true") or "/bin/true"
    task_dir = tmp / f"anchor-{isolation}"
    task_dir.mkdir(exist_ok=True)
    os.chmod(tmp, 0o755)
    cfg = SandboxConfig(isolation=Isolation(isolation))
    mode = sandbox.effective_mode(cfg)
    spec = sandbox.LaunchSpec(argv=(true,), env={}, cwd=str(task_dir), task_dir=str(task_dir),
                              sandbox=cfg, read_only=(str(tmp),))
    return spec, mode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="64 tasks, fewer repeats")
    ap.add_argument("--rounds", type=int, default=3, help="engine/anchor alternations")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.rounds = 1
    n = 64 if a.quick else a.tasks
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="cis-bench-") as tmpdir:
        tmp = Path(tmpdir)
        modes = [("none", "unsandboxed")]
        if sandbox.detect_mode() is sandbox.SandboxMode.BUBBLEWRAP:
            modes.append(("preferred", "bubblewrap"))
        for isolation, label in modes:
            dag = tmp / f"{label}.toml"
            dag.write_text(_dag_toml(n, isolation))
            spec, mode = _task_spec(tmp, isolation)
            bare = [spec.argv[0]]
            reps = min(n, 64)
            # Rounds alternate the engine and the anchors so both see the same machine load.
            gaps: list[float] = []
            spawns: list[float] = []
            programs: list[float] = []
            one = tmp / f"{label}-1.toml"
            one.write_text(_dag_toml(1, isolation))
            task_cpus: list[float] = []
            launch_cpus: list[float] = []
            for r in range(a.rounds):
                c = _children_cpu()
                _t0, starts = _run_cis(tmp / f"home-{label}-{r}", dag, jobs=1)
                run_cpu = _children_cpu() - c
                gaps += [b - a_ for a_, b in itertools.pairwise(starts)]
                spawns.append(_anchor_launch(spec, mode, reps, launch_cpus))
                programs.append(_anchor_spawn(bare, reps))
                base_cpu = _run_cis_cpu(tmp / f"home-{label}-{r}-1", one, jobs=1)
                task_cpus.append((run_cpu - base_cpu) / max(1, n - 1))
            cycle = statistics.median(gaps)
            spawn = statistics.median(spawns)
            program = statistics.median(programs)
            results[f"task_cycle_{label}"] = {"ours": cycle * 1e3, "anchor": spawn * 1e3,
                                              "unit": "ms", "ratio": cycle / spawn}
            over = (cycle - spawn) * 1e3
            results[f"engine_overhead_{label}"] = {"ours": over, "anchor": 5.0,
                                                   "unit": "ms (anchor = goal)", "ratio": over / 5.0}
            tcpu, lcpu = statistics.median(task_cpus), statistics.median(launch_cpus)
            results[f"task_cpu_{label}"] = {"ours": tcpu * 1e3, "anchor": lcpu * 1e3,
                                            "unit": "cpu-ms", "ratio": tcpu / lcpu}
            results[f"engine_cpu_overhead_{label}"] = {
                "ours": (tcpu - lcpu) * 1e3, "anchor": 5.0, "unit": "cpu-ms (anchor = goal)",
                "ratio": (tcpu - lcpu) * 1e3 / 5.0}
            results[f"sandbox_launch_{label}"] = {"ours": spawn * 1e3, "anchor": program * 1e3,
                                                  "unit": "ms", "ratio": spawn / program}
        if sandbox.unshare_path():
            spec, _mode = _task_spec(tmp, "preferred")
            ns = sandbox.SandboxMode.NAMESPACES
            reps = 16 if a.quick else 48
            ours = statistics.median(_anchor_launch(spec, ns, reps) for _ in range(a.rounds))
            bare = [sandbox.unshare_path() or "unshare", "-U", "-r", "-m", "-p", "-f",
                    "--kill-child", "--mount-proc", "-n", "--", spec.argv[0]]
            anchor = statistics.median(_anchor_spawn(bare, reps) for _ in range(a.rounds))
            results["namespaces_init"] = {"ours": ours * 1e3, "anchor": anchor * 1e3,
                                          "unit": "ms", "ratio": ours / anchor}
        # Time to first task: a small DAG, several repeats, median.
        small = tmp / "first.toml"
        small.write_text(_dag_toml(4, "preferred"))
        firsts, pythons = [], []
        _run_cis(tmp / "home-warm", small, jobs=4)  # writes the bytecode cache once
        for i in range(3 if a.quick else 7):
            t0, starts = _run_cis(tmp / f"home-first-{i}", small, jobs=4)
            firsts.append(starts[0] - t0)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True, env=_env(tmp))
            pythons.append(time.perf_counter() - t)
        f, p = statistics.median(firsts), statistics.median(pythons)
        results["first_task"] = {"ours": f * 1e3, "anchor": p * 1e3, "unit": "ms", "ratio": f / p}
    print(f"{'figure':<32} {'ours':>10} {'anchor':>10}  {'unit':<24} ratio")
    for k, v in results.items():
        print(f"{k:<32} {v['ours']:>10.2f} {v['anchor']:>10.2f}  {v['unit']:<24} {v['ratio']:.2f}")
    print(f"({n} no-op tasks, --jobs 1, {a.rounds} round(s). task_cycle: median gap between "
          "task starts vs sandbox.launch()+wait of the same task outside the engine (rlimits, "
          "cgroup, bwrap); engine_overhead = their difference vs the 5 ms goal; sandbox_launch: "
          "that launch vs a bare spawn of the program; first_task: `cis run` to first task "
          "start vs a bare `python -c pass`, goal 300 ms)")
    if a.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
