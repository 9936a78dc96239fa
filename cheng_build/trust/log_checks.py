"""The checks :meth:`RegistryLog.verify` applies around the replay of the rules, one per step:

1. signatures: the first bad one up to the first rule failure stops verification (at L0 a bad
   publish signature is only a warning);
2. the remembered checkpoint: the log must still be at least that long and have that root at
   that size, or it forked;
3. the newest checkpoint's expiry (L1/L2) and, at L2, that there is one at all;
4. remembering the newest checkpoint for the next run (a read-only home only warns).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from cheng_build.core.record import replace
from cheng_build.trust.checkpoint import Checkpoint, CheckpointMemory
from cheng_build.trust.config import Level
from cheng_build.trust.log_state import LogState
from cheng_build.trust.registry_entry import EntryType, RegistryEntry
from cheng_build.trust.registry_errors import (
    CheckpointError,
    ExpiredCheckpointError,
    ForkError,
    UnsignedError,
)


def signature_warnings(entries: Sequence[RegistryEntry], failures: Sequence[tuple[int, str]],
                       last: int, require_signature: bool) -> list[str]:
    """Warnings for the tolerated bad signatures among ``failures`` (line, why) up to ``last``.

    Raises:
        UnsignedError: the first bad signature that is not tolerated.
    """
    warnings: list[str] = []
    for line, why in failures:
        if line > last:
            break
        e = entries[line - 1]
        if e.type is EntryType.PUBLISH and not require_signature:
            warnings.append(f"line {line}: {why}")  # L0: tolerated, reported
            continue
        what = why if why.startswith("unsigned") else f"signature failed: {why}"
        raise UnsignedError(what, line=e.line,
                            why="the existing tooling's local: placeholders are accepted only at "
                                "L0" if why.startswith("unsigned") else
                                "the signed fields were changed, or another key signed them",
                            how="re-publish it signed (--priv:<key>), or verify at --level:L0 "
                                "for development" if e.type is EntryType.PUBLISH else None)
    return warnings


def check_remembered(entries: Sequence[RegistryEntry], state: LogState, remembered: Checkpoint,
                     mem: CheckpointMemory | None) -> None:
    """The log still holds the checkpoint this client remembers.

    Raises:
        ForkError: the log is shorter than the remembered checkpoint, or has another root there.
    """
    if state.lines < max(remembered.size, remembered.line):
        raise ForkError("registry forked",
                        why=f"this client saw a checkpoint of {remembered.size} lines "
                            f"(root {remembered.root[:16]}...) at line {remembered.line}; the "
                            "log now has only "
                            f"{state.lines}: history was rolled back or rewritten",
                        how="get the registry from its operator again; if the operator "
                            f"really restarted it, delete its entry in {mem.file if mem else ''}")
    at = entries[remembered.line - 1] if remembered.line else None
    if state.captured_root != remembered.root or (
            at is not None and (at.type is not EntryType.CHECKPOINT
                                or at.data.get("root") != remembered.root)):
        raise ForkError("registry forked",
                        why=f"its first {remembered.size} lines do not have the root of the "
                            "checkpoint this client remembers: history was rewritten",
                        how="get the registry from its operator again; compare with "
                            "another client's copy")


def check_expiry(level: Level, newest: Checkpoint | None, now: float) -> list[str]:
    """Warnings about the newest checkpoint's age.

    Raises:
        ExpiredCheckpointError: it expired (L1/L2).
        CheckpointError: there is none at L2.
    """
    if level is not Level.L0:
        if newest is not None and now >= newest.expires:
            raise ExpiredCheckpointError(
                "registry checkpoint expired",
                why=f"the newest checkpoint (line {newest.line}) expired at "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(newest.expires))}: "
                    "the log may be frozen at an old state",
                how="ask the operator for a fresh checkpoint ('cheng-registry checkpoint')")
        if newest is None and level is Level.L2:
            raise CheckpointError("registry has no checkpoint",
                                  why="L2 accepts only a log its operator signed",
                                  how="run 'cheng-registry checkpoint --priv:<operator key>'")
    if newest is not None and now >= newest.expires:
        return [f"the newest checkpoint (line {newest.line}) has expired"]
    return []


def remember_newest(mem: CheckpointMemory | None, path: Path, newest: Checkpoint | None,
                    require_signature: bool, remembered: Checkpoint | None,
                    warnings: list[str]) -> Checkpoint | None:
    """Remember ``newest`` for ``path``; returns the checkpoint now remembered. A memory that
    cannot be written adds a warning instead of failing."""
    if mem is None or newest is None:
        return remembered
    fresh = replace(newest, verified_with_signatures=require_signature)
    try:
        if mem.remember(path, fresh):
            return fresh
    except OSError as exc:
        # The log itself verified; a read-only home (CI containers) only costs the
        # fork protection of the next run, so say so instead of failing this one.
        warnings.append(f"cannot remember the checkpoint in {mem.file}: {exc.strerror or exc}")
    return remembered


__all__ = ["check_expiry", "check_remembered", "remember_newest", "signature_warnings"]
