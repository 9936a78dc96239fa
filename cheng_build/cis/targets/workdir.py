"""The work directory of a built-in target (``closedloop``, ``demo-io-lease``,
``demo-compute-settle``): a fresh temp directory, or one the user names with ``--workdir``.

A named directory must be empty or carry the target's marker file: the targets write keys,
registries and ledgers there and must never clear a directory they did not set up themselves.
On reuse, what the previous run of the same target left is removed first; the marker is written
last, after the target has filled the directory, so a run cut short while filling leaves a
directory that is still recognised as the target's own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cheng_build.core.errors import InputError


@dataclass(frozen=True)
class WorkdirSpec:
    """How one target claims its work directory.

    ``own``: the names a previous run left (removed before a rerun); ``None``: everything in
    the directory but the marker. ``why`` explains the "not empty" refusal (``None``: no why line).
    """

    marker: str
    prefix: str
    note: str
    own: tuple[str, ...] | None = None
    why: str | None = None


def prepare_workdir(workdir: str | os.PathLike[str] | None, spec: WorkdirSpec,
                    fill: Callable[[Path], None] | None = None) -> Path:
    """A work directory for ``spec``'s target, filled by ``fill`` and then marked.

    ``None``: a new temp directory. An existing directory must be empty or one a previous run of
    the same target used (what it left is removed first).

    Raises:
        InputError: the directory holds something else (exit code 2: a usage mistake).
    """
    if workdir is None:
        wd = Path(tempfile.mkdtemp(prefix=spec.prefix))
    else:
        wd = Path(workdir).expanduser().resolve()
        wd.mkdir(parents=True, exist_ok=True)
        _clear(wd, spec)
    if fill is not None:
        fill(wd)
    (wd / spec.marker).write_text(spec.note)
    return wd


def _clear(wd: Path, spec: WorkdirSpec) -> None:
    entries = {p.name for p in wd.iterdir()}
    if entries and spec.marker not in entries:
        raise InputError(f"work directory {wd} is not empty", why=spec.why,
                         how="give an empty or new directory, or leave out --workdir", exit_code=2)
    names = entries - {spec.marker} if spec.own is None else set(spec.own) - {spec.marker}
    for name in sorted(names):
        p = wd / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


__all__ = ["WorkdirSpec", "prepare_workdir"]
