"""What ``cis run <arg>`` runs: a DAG file, or a named target.

``resolve_target(arg)`` is the one hook: an existing file path is loaded as ``cis.toml``; any
other word is looked up in :data:`TARGETS`, a registry of named targets (a name -> a function that
builds a :class:`Dag`). Later work registers ``closedloop`` and sketches here::

    from cheng_build.cis.targets import TARGETS
    TARGETS["closedloop"] = build_closedloop_dag      # () -> Dag

without touching the engine. Returning ``None`` tells the CLI nothing matched.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cheng_build.cis.model import Dag

TARGETS: dict[str, Callable[[], Dag]] = {}

# A hook for sketch text (free-form words): set to a function that turns a sketch into a DAG
# from local manifests, or returns None when it cannot.
SKETCH: Callable[[str], Dag | None] | None = None


def resolve_target(arg: str) -> Dag | None:
    """A DAG for ``arg``: a file path, a registered target name, or a sketch.

    Raises:
        DagError: the file exists but is not a valid DAG.
    """
    if os.path.isfile(arg):
        from cheng_build.cis.toml_io import load_dag

        return load_dag(arg)
    if os.path.isdir(arg) and os.path.isfile(os.path.join(arg, "cis.toml")):
        from cheng_build.cis.toml_io import load_dag

        return load_dag(os.path.join(arg, "cis.toml"))
    builder = TARGETS.get(arg)
    if builder is not None:
        return builder()
    if SKETCH is not None:
        return SKETCH(arg)
    return None
