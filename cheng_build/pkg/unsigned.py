"""``--allow-unsigned``: development mode for unsigned (``local:`` placeholder) snapshots.

The rule (the seed's A1.9: signature failures refuse resolution "unless explicitly
``--allow-unsigned`` (development mode)"):

- resolve, verify and chengc accept a snapshot without a valid Ed25519 signature only with
  ``--allow-unsigned``, only at L0, and warn on every use;
- the flag itself is refused at L1 and L2 (bad usage, exit 2);
- a lock resolved that way marks each such dependency ``unsigned = true`` (a lock_version 2
  field); verify refuses a marked dependency at L1/L2 whatever else the configuration says, so a
  development lock can never be promoted to a real build by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cheng_build.core.errors import UsageError
from cheng_build.pkg.lock import Lock, LockedDep
from cheng_build.pkg.lock_errors import SignatureFailedError

MARKER = "unsigned"


def is_unsigned(dep: LockedDep) -> bool:
    """Whether a locked (non-path) dependency has no Ed25519 signature."""
    sig = dep.signature or ""
    return not dep.path and (not sig or sig.startswith("local:"))


def is_marked(dep: LockedDep) -> bool:
    """Whether the lock marks ``dep`` as resolved with ``--allow-unsigned``."""
    return dict(dep.extra).get(MARKER) is True


def check_flag(allow: bool, level: str, command: str) -> None:
    """Refuse ``--allow-unsigned`` above L0.

    Raises:
        UsageError: the flag at L1/L2.
    """
    if allow and level != "L0":
        raise UsageError(f"--allow-unsigned is refused at {level}",
                         why="unsigned snapshots are for development only: L0",
                         how=f"run {command} at --level:L0, or publish the packages signed")


def mark(lock: Lock, allow: bool, level: str) -> tuple[Lock, list[str]]:
    """Mark the unsigned dependencies of a freshly resolved lock, or refuse them.

    Returns:
        The lock (marked where needed) and one warning per unsigned dependency.

    Raises:
        SignatureFailedError: unsigned dependencies without ``allow`` (or above L0).
    """
    bad = [d for d in lock.dependencies if is_unsigned(d)]
    if not bad:
        return lock, []
    if not allow or level != "L0":
        raise SignatureFailedError(
            [f"- {d.package_id}: unsigned ({d.signature or 'no signature'}); accepted only "
             "with --allow-unsigned at L0" for d in bad],
            how="publish the packages signed (--priv:<key>), or for development only run again "
                "at --level:L0 with --allow-unsigned")
    deps = tuple(replace(d, extra=(*d.extra, (MARKER, True))) if is_unsigned(d)
                 and not is_marked(d) else d for d in lock.dependencies)
    return replace(lock, dependencies=deps), [
        f"{d.package_id}: unsigned snapshot {d.cid} used (--allow-unsigned, L0 only)" for d in bad]


def check_lock(deps: Sequence[LockedDep], level: str, allow: bool | None) -> list[str]:
    """Verify's rule for unsigned entries.

    Args:
        deps: the lock's dependencies.
        level: ``L0``/``L1``/``L2``.
        allow: ``--allow-unsigned`` given (None: a library caller that did not say; then L0
            keeps its old warn-only behaviour for unmarked entries).

    Returns:
        Warnings (one per unsigned entry accepted).

    Raises:
        SignatureFailedError: a marked entry at L1/L2, or an unsigned entry at L0 without the flag.
    """
    marked = [d for d in deps if is_marked(d)]
    if marked and level != "L0":
        raise SignatureFailedError(
            [f"- {d.package_id}: marked unsigned = true (resolved with --allow-unsigned); "
             f"refused at {level}" for d in marked],
            how="resolve again at L1 against signed publishes")
    unsigned = [d for d in deps if is_unsigned(d)]
    if level == "L0" and allow is False and unsigned:
        raise SignatureFailedError(
            [f"- {d.package_id}: unsigned; accepted only with --allow-unsigned at L0"
             for d in unsigned],
            how="for development only, pass --allow-unsigned (L0); or re-resolve against signed "
                "publishes")
    if level == "L0" and allow:
        return [f"{d.package_id}: unsigned snapshot {d.cid} used (--allow-unsigned, L0 only)"
                for d in unsigned]
    return []


def extra_kwargs(opts: Any) -> dict[str, Any]:
    """chengc's package options -> verify_lock keyword arguments (absent flags: not given)."""
    return {"allow_unsigned": bool(getattr(opts, "allow_unsigned", False)),
            "allow_quarantined": bool(getattr(opts, "allow_quarantined", False))}


__all__ = ["MARKER", "check_flag", "check_lock", "extra_kwargs", "is_marked", "is_unsigned",
           "mark"]
