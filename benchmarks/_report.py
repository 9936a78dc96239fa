"""What the benchmarks with ours-beside-anchor figures share: progress on stderr and the closing
report (a table of ``{"ours", "anchor", "unit", "ratio"}`` figures, then with ``--json`` the same
as one JSON object on the last line, which the CIS sketch and the docs read).

Imported as ``from _report import ...``: a benchmark runs as ``python benchmarks/<name>.py``,
so this folder is first on ``sys.path``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping


def log(msg: str) -> None:
    """Progress for a person watching; stdout is left to the report."""
    print(msg, file=sys.stderr, flush=True)


def print_report(results: Mapping[str, object], *, as_json: bool, unit_width: int = 12) -> None:
    """The closing table of ``results`` (name -> figure), and with ``as_json`` the JSON line."""
    print()
    print(f"{'benchmark':<15}{'ours':>12}{'anchor':>12}  {'unit':<{unit_width}}{'ratio':>8}")
    for name, r in results.items():
        r = dict(r)  # type: ignore[call-overload]
        print(f"{name:<15}{r['ours']:>12}{r['anchor']:>12}  {r['unit']:<{unit_width}}{r['ratio']:>8}")
    if as_json:
        print(json.dumps(results))


__all__ = ["log", "print_report"]
