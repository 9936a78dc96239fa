"""The L2 audit log: one JSON line per trust decision (the seed's A1.18 "记录审计日志").

Format (``audit_log`` in the config, default ``~/.cheng/audit.jsonl``; appended under a file
lock with fsync, like the registry)::

    {"ts": 1730000000, "event": "verify", "ok": true, "registry": "/abs/registry.jsonl", ...}

Only written at level L2; at L0/L1 :func:`record` does nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cheng_build.core.atomic import append_line_locked, file_lock
from cheng_build.trust.config import Config, Level

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any


def record(config: Config, event: str, *, ok: bool, **fields: Any) -> Path | None:
    """Append one audit record when ``config`` is at L2; returns the log path written, if any.

    Raises:
        OSError: the audit log cannot be written (at L2 that must stop the operation).
    """
    if config.level is not Level.L2:
        return None
    path = Path(os.path.expanduser(os.fspath(config.audit_log)))
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {"ts": int(time.time()), "event": event, "ok": ok, "pid": os.getpid(), **fields}
    line = json.dumps(rec, sort_keys=True, separators=(",", ":"), default=str).encode()
    with file_lock(path):
        append_line_locked(path, line)
    return path
