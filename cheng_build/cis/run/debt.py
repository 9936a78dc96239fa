"""Friendly errors (what / why / how + context snapshot) and the debt of all runs.

Every task failure is stored as a dict (the store's ``tasks.error`` column)::

    {"what": str, "why": [str], "how": [str],
     "context": {"env": {...}, "cwd": str, "inputs": {path: "sha256:<hex>" | "dir" | "missing"},
                 "exit_code": int | null, "attempt": int, "task_dir": str}}

so ``cis debt``, ``cis status`` and the web view show the same three parts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cheng_build.cis.run.store import Store

_DIGEST_LIMIT = 64 * 1024 * 1024  # larger inputs are recorded by size only: the snapshot stays fast


def digest_inputs(paths: Sequence[str]) -> dict[str, str]:
    """SHA-256 of each input file (``dir`` for directories, ``missing`` when absent)."""
    out: dict[str, str] = {}
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out[p] = "missing"
            continue
        if os.path.isdir(p):
            out[p] = "dir"
        elif st.st_size > _DIGEST_LIMIT:
            out[p] = f"size:{st.st_size}"
        else:
            h = hashlib.sha256()
            try:
                with open(p, "rb") as fh:
                    while block := fh.read(1 << 20):
                        h.update(block)
                out[p] = "sha256:" + h.hexdigest()
            except OSError as exc:
                out[p] = f"unreadable: {exc.strerror}"
    return out


def friendly(what: str, why: Sequence[str], how: Sequence[str], *, env: Mapping[str, str],
             cwd: str, inputs: Sequence[str], exit_code: int | None = None, attempt: int = 0,
             task_dir: str | None = None) -> dict[str, Any]:
    """Build the stored form of a failure with its context snapshot."""
    return {"what": what, "why": list(why), "how": list(how),
            "context": {"env": dict(env), "cwd": cwd, "inputs": digest_inputs(inputs),
                        "exit_code": exit_code, "attempt": attempt, "task_dir": task_dir}}


def tail(path: str, lines: int = 5, limit: int = 4096) -> list[str]:
    """The last ``lines`` non-empty lines of a task's log file (for "why"), read without
    following a link the task may have put in its place (see :mod:`tasklog`)."""
    from cheng_build.cis.run.tasklog import tail_lines

    return tail_lines(os.path.dirname(path), os.path.basename(path), lines, limit)


@dataclass(frozen=True, slots=True)
class DebtItem:
    run_id: str
    dag: str
    idx: int
    task: str
    state: str
    what: str
    why: list[str]
    how: list[str]


def list_debt(store: Store) -> list[DebtItem]:
    """All Debt and Failed tasks of all runs in ``store``, newest run first."""
    from cheng_build.cis.dag.model import TaskState

    out = []
    for run_id, dag, idx, task, err in store.all_debt():
        err = err or {}
        rec = next((t for t in store.tasks(run_id) if t.idx == idx), None)
        state = rec.state.value if rec else TaskState.DEBT.value
        out.append(DebtItem(run_id, dag, idx, task, state, err.get("what", "failed"),
                            list(err.get("why", [])), list(err.get("how", []))))
    return out
