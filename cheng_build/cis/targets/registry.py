"""What ``cis run <arg>`` runs: a DAG file, a named target, or a sketch.

``resolve_target(arg, workdir=None)`` is the one hook: an existing file path is loaded as
``cis.toml``; any other word is looked up in :data:`TARGETS`, a registry of named targets (a name
-> a function ``(workdir) -> Dag``); anything else goes to the :data:`SKETCH` hook, which turns
free-form words into a DAG from the local manifests (or raises saying what it looked for).

``closedloop`` (:mod:`.closedloop`), ``demo-io-lease`` (:mod:`.demo_io_lease`) and sketches
(:mod:`.sketch`)
register here, imported lazily so ``cis run cis.toml`` pays for neither. Returning ``None``
tells the CLI nothing matched.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from cheng_build.cis.dag.model import Dag
from cheng_build.cis.targets.preview import preview_lines


def _closedloop(workdir: str | None = None) -> Dag:
    from cheng_build.cis.targets.closedloop import build_dag

    return build_dag(workdir)


def _demo_io_lease(workdir: str | None = None) -> Dag:
    from cheng_build.cis.targets.demo_io_lease import build_dag

    return build_dag(workdir)


def _sketch(text: str, workdir: str | None) -> Dag | None:
    from cheng_build.cis.targets.sketch import sketch_dag

    return sketch_dag(text, workdir or os.getcwd())


def _demo_compute(workdir: str | None = None) -> Dag:
    from cheng_build.cis.targets.compute_demo import build_dag

    return build_dag(workdir)


# name -> builder; called as builder() or, with --workdir, builder(workdir=...).
TARGETS: dict[str, Callable[..., Dag]] = {"closedloop": _closedloop,
                                          "demo-compute-settle": _demo_compute,
                                          "demo-io-lease": _demo_io_lease}

# A hook for sketch text (free-form words): a function (sketch, workdir) -> Dag from the local
# manifests, or None when the words match nothing (then :func:`no_match_error` says why).
SKETCH: Callable[[str, str | None], Dag | None] | None = _sketch


def resolve_target(arg: str, workdir: str | None = None) -> Dag | None:
    """A DAG for ``arg``: a file path, a registered target name, or a sketch.

    ``workdir``: where a named target works (closedloop: instead of a fresh temp dir) or the
    project a sketch reads (default: the current directory).

    Raises:
        DagError: the file exists but is not a valid DAG.
        InputError: an unusable workdir, or a sketch naming a project that is not there.
    """
    if os.path.isfile(arg):
        from cheng_build.cis.dag.toml_io import load_dag

        return load_dag(arg)
    if os.path.isdir(arg) and os.path.isfile(os.path.join(arg, "cis.toml")):
        from cheng_build.cis.dag.toml_io import load_dag

        return load_dag(os.path.join(arg, "cis.toml"))
    builder = TARGETS.get(arg)
    if builder is not None:
        return builder(workdir=workdir) if workdir is not None else builder()
    if SKETCH is not None:
        return SKETCH(arg, workdir)
    return None


def no_match_error(arg: str, workdir: str | None = None) -> Exception:
    """The error ``cis run`` raises when ``arg`` is no file, target or sketch: what was looked
    for (files, target names, sketch words, manifests) and the closest commands."""
    from cheng_build.cis.targets import sketch

    return sketch.no_match_error(arg, workdir or os.getcwd(), sorted(TARGETS))


def prepare_run(store: object, run_id: str, dag: Dag) -> None:
    """Called by ``cis run`` right after the run is created, before its engine starts: the
    preview is kept as a ``preview`` event (the web view shows it), and a sketch's tasks whose
    capability is absent become Skipped with the reason."""
    from cheng_build.cis.run.store import Store

    lines = preview_lines(dag)
    if lines and isinstance(store, Store):
        store.add_event(run_id, None, "preview", {"lines": lines})
    # Only the sketch module records capability skips, so a DAG built without it has none:
    # a plain `cis run file.toml` need not import it (~20 ms of start-up).
    sketch = sys.modules.get("cheng_build.cis.targets.sketch")
    if sketch is not None:
        sketch.prepare_run(store, run_id, dag)
    if isinstance(store, Store) and any(t.capabilities for t in dag.tasks):
        skip_without_capabilities(store, run_id, dag)


def skip_without_capabilities(store: object, run_id: str, dag: Dag) -> None:
    """Tasks declaring ``capabilities = [...]`` this machine lacks become Skipped, with why."""
    import time

    from cheng_build.cis.dag.model import TaskState
    from cheng_build.cis.run.store import Store
    from cheng_build.cis.targets.capabilities import detect

    assert isinstance(store, Store)
    have = detect()
    for t in dag.tasks:
        missing = [c for c in t.capabilities if not have.has(c)]
        if missing:
            why = "; ".join(f"capability {c} absent here ({have.why_not(c)})" for c in missing)
            store.set_task(run_id, t.idx, "skipped", {"why": why}, state=TaskState.SKIPPED,
                           note=f"skipped: {why}", finished=time.time())
