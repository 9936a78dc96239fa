"""Sketches: free-form words -> a DAG (being written; see the next commit)."""

from __future__ import annotations

from cheng_build.cis.model import Dag
from cheng_build.core.errors import InputError


def sketch_dag(text: str, workdir: str) -> Dag | None:
    return None


def no_match_error(arg: str, workdir: str, targets: list[str]) -> InputError:
    return InputError(f"no DAG file, target or sketch matches {arg!r}",
                      why=f"named targets: {', '.join(targets)}")
