"""Reproducibility: the environment a build runs in, and the check that two builds agree.

``SOURCE_DATE_EPOCH`` comes from (first found): the caller's own ``SOURCE_DATE_EPOCH`` (the
reproducible-builds.org convention: an explicit value wins), the lock's ``created_ts``, the last
git commit time of the source's directory, else ``0``.

``--reproducible-check`` stages the inputs into two fresh temporary roots, runs the compiler in
each, and compares the two outputs byte for byte (equal bytes <=> equal CIDs).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from pathlib import Path

from cheng_build.build.errors import NotReproducibleError
from cheng_build.core.record import dataclass


class EpochSource(Enum):
    """Where ``SOURCE_DATE_EPOCH`` came from (recorded so --explain can show it)."""

    ENV = "SOURCE_DATE_EPOCH"
    LOCK = "lock created_ts"
    GIT = "last git commit"
    ZERO = "default 0"


@dataclass(frozen=True, slots=True)
class Epoch:
    """A ``SOURCE_DATE_EPOCH`` value (decimal seconds) and its origin."""

    value: str
    source: EpochSource


def _git_commit_time(directory: Path) -> str | None:
    import subprocess

    try:
        proc = subprocess.run(["git", "-C", str(directory), "log", "-1", "--format=%ct"],
                              capture_output=True, check=False, timeout=10,
                              env={"PATH": "/usr/bin:/bin:/usr/local/bin", "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    out = proc.stdout.decode(errors="replace").strip()
    return out if proc.returncode == 0 and out.isdigit() else None


def source_date_epoch(env: Mapping[str, str], lock_created_ts: str | int | None, source_dir: Path) -> Epoch:
    """Pick ``SOURCE_DATE_EPOCH`` (see the module docstring for the order)."""
    v = env.get("SOURCE_DATE_EPOCH", "").strip()
    if v.isdigit():
        return Epoch(v, EpochSource.ENV)
    if lock_created_ts is not None and str(lock_created_ts).strip().isdigit():
        return Epoch(str(int(str(lock_created_ts).strip())), EpochSource.LOCK)
    g = _git_commit_time(source_dir)
    if g is not None:
        return Epoch(g, EpochSource.GIT)
    return Epoch("0", EpochSource.ZERO)


def first_difference(a: bytes, b: bytes) -> int | None:
    """Offset of the first differing byte, the shorter length if one is a prefix, or None."""
    if a == b:
        return None
    n = min(len(a), len(b))
    # Compare in blocks first: artifacts are megabytes, the first difference is usually early.
    step = 65536
    for off in range(0, n, step):
        if a[off:off + step] != b[off:off + step]:
            for i in range(off, min(off + step, n)):
                if a[i] != b[i]:
                    return i
    return n


def check_same(first: bytes, second: bytes, *, first_id: str, second_id: str) -> None:
    """Raise unless the two builds' outputs are identical.

    Raises:
        NotReproducibleError: ``chengc: build is not reproducible`` with both sizes and the
            first differing offset.
    """
    off = first_difference(first, second)
    if off is None:
        return
    raise NotReproducibleError(
        "build is not reproducible",
        why=f"build 1: {len(first)} bytes ({first_id})\n"
        f"build 2: {len(second)} bytes ({second_id})\n"
        f"first difference at offset {off} (0x{off:x})",
        how="look for timestamps, random values, absolute paths or hash-order in the compiler's output;\n"
        "SOURCE_DATE_EPOCH is set for it, and it runs with a cleared environment in a fixed cwd",
    )


__all__ = ["Epoch", "EpochSource", "check_same", "first_difference", "source_date_epoch"]
