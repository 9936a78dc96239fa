"""A node's timeline for measuring where its time goes (``CIS_NODE_TRACE=<dir>``): one line per
step (read returned, claim queued, PUT answered, claim won, lease confirmed, task start/end), on
the machine-wide monotonic clock so the lines of several nodes and origins line up.
``benchmarks/cisnodes.py --trace`` sets it and sums each node's idle time by reason. Off (no
file, one attribute test per step) unless the variable is set.
"""

from __future__ import annotations

import atexit
import os
import time
from typing import TextIO

_out: TextIO | None = None
_ready = False


def _open() -> TextIO | None:
    global _out, _ready
    _ready = True
    where = os.environ.get("CIS_NODE_TRACE")
    if where:
        os.makedirs(where, exist_ok=True)
        _out = open(os.path.join(where, f"{os.getpid()}.trace"), "a", encoding="utf-8",  # noqa: SIM115
                    buffering=1 << 16)
        atexit.register(close)
    return _out


def enabled() -> bool:
    """Tracing is on: for steps whose fields cost something to gather."""
    return (_out if _ready else _open()) is not None


def mark(what: str, *fields: object) -> None:
    """Append ``<monotonic s> <what> <fields...>`` to this process's trace, if tracing is on."""
    out = _out if _ready else _open()
    if out is not None:
        out.write(f"{time.monotonic():.6f} {what} {' '.join(map(str, fields))}\n")


def close() -> None:
    if _out is not None:
        _out.flush()
