"""Task programs of sketch DAGs: run one benchmark and record it; compare the recorded results.

Run by the DAG (see :mod:`cheng_build.cis.targets.sketch`) as
``python -m cheng_build.cli.sketch_steps <step> ...`` in the project directory:

  bench --backend:<b> --bench:<name> --results:<dir> -- <argv...>
      run the project's bench command, time it, keep its last JSON line as its metrics, and
      write ``<dir>/<b>--<name>.json`` (format: :mod:`cheng_build.cis.targets.report`). Exits with the
      bench's own status, so a failing bench becomes the task's (ignorable) failure.
  compare --results:<dir> --title:<text> --expect:<b>/<name>... [--skipped:<b>=<why>...]
      write report.md, report.json and report.png into ``<dir>`` and print the table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cheng_build.cli.step_program import StepProgram


def _opts(argv: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    opts: dict[str, list[str]] = {}
    rest: list[str] = []
    for i, a in enumerate(argv):
        if a == "--":
            rest = list(argv[i + 1:])
            break
        key, sep, value = a.removeprefix("--").partition(":")
        if not sep:
            key, _, value = key.partition("=")
        opts.setdefault(key, []).append(value)
    return opts, rest


def bench(argv: Sequence[str]) -> int:
    from cheng_build.cis.targets.report import result_record
    from cheng_build.core.atomic import atomic_write_text

    opts, cmd = _opts(argv)
    backend, name, results = opts["backend"][0], opts["bench"][0], Path(opts["results"][0])
    if not cmd:
        print("bench: no command after --", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except OSError as exc:
        rc, out, err = 127, "", f"cannot start {cmd[0]}: {exc.strerror or exc}"
    wall = time.perf_counter() - t0
    sys.stdout.write(out)
    sys.stderr.write(err)
    rec = result_record(backend, name, cmd, rc, wall, out, err)
    results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(results / f"{backend}--{name}.json", json.dumps(rec, indent=2))
    print(f"bench {name} on {backend}: exit {rc}, {wall:.3f} s wall"
          + (f", metrics {json.dumps(rec['metrics'])}" if rec["metrics"] else ""))
    return rc


def compare(argv: Sequence[str]) -> int:
    from cheng_build.cis.targets.report import load_rows, write_report

    opts, _ = _opts(argv)
    results = Path(opts["results"][0])
    expected = [tuple(e.split("/", 1)) for e in opts.get("expect", [])]
    skipped = dict(s.split("=", 1) for s in opts.get("skipped", []) if "=" in s)
    rows = load_rows(results, [(b, n) for b, n in expected], skipped)
    paths = write_report(results, rows, opts.get("title", ["comparison"])[0])
    sys.stdout.write(paths["md"].read_text())
    print(f"\nreport: {paths['md']}  chart: {paths['png']}")
    return 0


STEPS = {"bench": bench, "compare": compare}


def main(argv: Sequence[str] | None = None) -> int:
    return StepProgram(prog="sketch_steps", label="sketch").main(STEPS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
