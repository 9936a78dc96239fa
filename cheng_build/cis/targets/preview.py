"""The lines ``cis run`` prints before starting a DAG built by a target or a sketch.

Its own module so the builders (``closedloop``, ``sketch``) can attach a preview without
importing the registry that imports them.
"""

from __future__ import annotations

from cheng_build.cis.dag.model import Dag

# id(dag) -> (dag, lines): the dag is kept so its id cannot be reused while the entry lives.
_PREVIEWS: dict[int, tuple[Dag, list[str]]] = {}


def set_preview(dag: Dag, lines: list[str]) -> Dag:
    """Attach the lines ``cis run`` prints before starting ``dag``; returns ``dag``."""
    _PREVIEWS[id(dag)] = (dag, list(lines))
    return dag


def preview_lines(dag: Dag) -> list[str]:
    """Extra lines ``cis run`` prints before starting ``dag`` (a sketch's preview: tasks,
    capabilities, skipped tasks; closedloop's work directory and compiler); empty for files."""
    entry = _PREVIEWS.get(id(dag))
    return list(entry[1]) if entry is not None and entry[0] is dag else []


__all__ = ["preview_lines", "set_preview"]
