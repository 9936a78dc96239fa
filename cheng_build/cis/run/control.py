"""The control surface of CIS: what the CLI, the web view and sketches call.

Every function works through the SQLite store, so any process can act on a live run: reads
come straight from the tables; actions append a ``controls`` row that the run's engine applies
in order (it is the only writer of task state) and records a result string for. When no engine
is alive the request waits in the table and is applied by the next ``cis resume`` / ``retry``.

Typical use::

    from cheng_build.cis.run import control
    store = control.open_store()                    # $CIS_HOME or ~/.cis
    run_id = control.create_run(store, dag)         # a Dag from toml_io.load_dag or built in Python
    state = control.drive(store, run_id)            # run the engine here until the run ends
    # ... or control.spawn_engine(run_id) to run it detached, then from anywhere:
    control.confirm(store, run_id, "deploy")        # task by name or index
    control.wait_result(store, cid)                 # "ok", "ok: ...", or "rejected: ..."
    view = control.get_run(store, run_id)           # RunView: run row + task rows

Raises (everywhere): :class:`~cheng_build.core.errors.NotFoundError` for an unknown run or task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cheng_build.cis.dag.model import Dag, RunState, TaskState
from cheng_build.cis.run.store import NewRun, RunRecord, Store, TaskRecord
from cheng_build.cis.sandbox import selfrun
from cheng_build.cis.sandbox.selfrun import Tool
from cheng_build.core.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class RunView:
    """A run and its tasks as stored right now."""

    run: RunRecord
    tasks: list[TaskRecord]
    engine_alive: bool

    @property
    def counts(self) -> dict[TaskState, int]:
        out: dict[TaskState, int] = {}
        for t in self.tasks:
            out[t.state] = out.get(t.state, 0) + 1
        return out


def open_store(home: str | os.PathLike[str] | None = None) -> Store:
    """Open the run database (``home`` > ``$CIS_HOME`` > ``~/.cis``)."""
    return Store(home)


def new_run_id(after: str | None = None) -> str:
    """A fresh ULID, sorting after every run id this process made and after ``after``
    (:mod:`cheng_build.core.ulid`: monotonic within a millisecond, as the ULID spec says)."""
    from cheng_build.core.ulid import new_ulid

    return new_ulid(after)


def create_run(store: Store, dag: Dag, *, jobs: int | None = None, check_inputs: bool = True,
               run_id: str | None = None) -> str:
    """Validate ``dag`` and store it as a new run in state Running (no engine yet).

    Raises:
        DagError: the DAG breaks a rule or an input is missing (names the task).
    """
    new = new_run(store, dag, jobs=jobs, check_inputs=check_inputs, run_id=run_id)
    store.create_run(new.run_id, new.dag, jobs=new.jobs, sandbox=new.sandbox)
    return new.run_id


def new_run(store: Store, dag: Dag, *, jobs: int | None = None, check_inputs: bool = True,
            run_id: str | None = None, engine_pid: int | None = None) -> NewRun:
    """What :func:`create_run` stores, validated, with its id and sandbox mode, not stored yet
    (``Engine(fresh=...)`` stores it with its first transition; ``engine_pid``: see NewRun).

    Raises:
        DagError: the DAG breaks a rule or an input is missing (names the task).
    """
    from cheng_build.cis.dag.validate import validate_dag
    from cheng_build.cis.sandbox.launch import detect_mode

    validate_dag(dag, check_inputs=check_inputs)
    # After the store's newest run too: a `cis run` in another process in the same millisecond
    # must not get an id that sorts before it (latest_run_id would pick the older run).
    rid = run_id or new_run_id(after=store.latest_run_id())
    needs_probe = any(t.exec.sandbox.isolation.value != "none" for t in dag.tasks)
    mode = detect_mode(cache_dir=store.home).value if needs_probe else "unsandboxed"
    return NewRun(rid, dag, jobs or os.cpu_count() or 1, mode, engine_pid)


def drive(store: Store, run_id: str, *, jobs: int | None = None,
          observer: Callable[[], None] | None = None) -> RunState:
    """Run the engine for ``run_id`` in this process until the run ends (or waits forever for a
    person: interrupt it then; the run stays resumable)."""
    from cheng_build.cis.run.engine import Engine

    return Engine(store, run_id, jobs=jobs, observer=observer).run()


def spawn_engine(store: Store, run_id: str, *, jobs: int | None = None) -> int:
    """Start a detached engine process for ``run_id``; return its pid (its log: engine.log)."""
    rid = store.resolve_run_id(run_id)
    run_dir = store.run_dir(rid)
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, *selfrun.module_argv(Tool.CIS), "resume", rid, "--quiet"]
    if jobs:
        argv.append(f"--jobs={jobs}")
    env = dict(os.environ, CIS_HOME=str(store.home))
    pkg_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(run_dir / "engine.log", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=env, close_fds=True)
    return proc.pid


def list_runs(store: Store, limit: int = 50) -> list[tuple[str, str, RunState, float, float | None]]:
    """(run_id, name, state, created, finished) newest first."""
    return store.list_runs(limit)


def get_run(store: Store, run_id: str) -> RunView:
    rid = store.resolve_run_id(run_id)
    return RunView(store.get_run(rid), store.tasks(rid), store.engine_alive(rid))


def task_index(store: Store, run_id: str, task: str | int) -> int:
    """A task of the run by index (``3``, ``"3"``) or by name.

    Raises:
        NotFoundError: no such task.
    """
    rid = store.resolve_run_id(run_id)
    tasks = store.tasks(rid)
    if isinstance(task, int) or (isinstance(task, str) and task.isdigit()):
        i = int(task)
        if 0 <= i < len(tasks):
            return i
    else:
        for t in tasks:
            if t.name == task:
                return t.idx
    names = ", ".join(f"{t.idx}:{t.name}" for t in tasks[:12])
    raise NotFoundError(f"run {rid} has no task {task!r}", why=f"tasks: {names}",
                        how="name a task by its index or its name", exit_code=2)


def _send(store: Store, run_id: str, kind: str, task: str | int,
          payload: Mapping[str, object] | None = None) -> int:
    rid = store.resolve_run_id(run_id)
    idx = task_index(store, rid, task)
    return store.add_control(rid, kind, idx, dict(payload or {}))


def confirm(store: Store, run_id: str, task: str | int) -> int:
    """Let a Confirmed task (or an interrupted non-idempotent one) start. Returns the control id."""
    return _send(store, run_id, "confirm", task)


def run_now(store: Store, run_id: str, task: str | int) -> int:
    """Recommended: end the countdown now and run."""
    return _send(store, run_id, "run-now", task)


def skip(store: Store, run_id: str, task: str | int) -> int:
    """Recommended (or any pending task): skip it; a running one is stopped and skipped."""
    return _send(store, run_id, "skip", task)


def resolve(store: Store, run_id: str, task: str | int, *, action: str | None = None,
            value: str | None = None, item: str | None = None) -> int:
    """Settle an Arbitrated task or answer an ambiguity question.

    ``action``: run | retry | skip | complete | fail | rollback. ``value``: the answer to the
    task's open question (``item`` = ``input:<pattern>`` or ``env:<NAME>``; default the first).
    """
    return _send(store, run_id, "resolve", task, {"action": action, "value": value, "item": item})


def amend(store: Store, run_id: str, task: str | int, *, env: Mapping[str, str] | None = None,
          cmd: Sequence[str] | None = None, timeout: int | None = None) -> int:
    """Hot amendment (also "change" for a Recommended task): pending -> updated; running ->
    SIGTERM and restart with the change; completed -> marked needs-rerun."""
    return _send(store, run_id, "amend", task,
                 {"env": dict(env or {}), "cmd": list(cmd) if cmd else None, "timeout": timeout})


def retry(store: Store, run_id: str, from_task: str | int) -> int:
    """Reset ``from_task`` and everything downstream of it to Pending (run by the engine)."""
    return _send(store, run_id, "retry", from_task)


def change(store: Store, run_id: str, task: str | int, **kwargs: object) -> int:
    """Recommended: change the pending task before its countdown ends (same as :func:`amend`)."""
    return amend(store, run_id, task, **kwargs)  # type: ignore[arg-type]


def events(store: Store, run_id: str, after: int = 0) -> list[tuple[int, int | None, float, str, object]]:
    """The run's history after event id ``after``: (id, task idx or None, unix time, kind, data).

    Ids only grow, so a live view (web push, ``cis attach``) polls with the last id it saw;
    ``store.data_version()`` changing is a cheap signal that something new was committed.
    """
    return store.events(store.resolve_run_id(run_id), after)


def wait_result(store: Store, control_id: int, timeout: float = 10.0) -> str | None:
    """The engine's answer to a control, or None if no engine applied it within ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        r = store.control_result(control_id)
        if r is not None or time.monotonic() >= end:
            return r
        time.sleep(0.05)


def eta_seconds(store: Store, view: RunView) -> float | None:
    """Seconds left, from the recorded durations of earlier runs of the same tasks (None when no
    task still to run has a history)."""
    from cheng_build.cis.run.engine import duration_key

    todo = [t for t in view.tasks if t.state in (TaskState.PENDING, TaskState.RUNNING)]
    if not todo:
        return 0.0
    keys = {t.idx: duration_key(view.run.name, t.name) for t in todo}
    known = store.typical_durations(list(keys.values()))
    if not known:
        return None
    now = time.time()
    total = 0.0
    for t in todo:
        d = known.get(keys[t.idx])
        if d is None:
            d = sum(known.values()) / len(known)  # unknown task: the mean of the known ones
        if t.state is TaskState.RUNNING and t.started:
            d = max(0.0, d - (now - t.started))
        total += d
    return total / max(1, min(view.run.jobs, len(todo)))


__all__ = ["NotFoundError", "RunView", "amend", "change", "confirm", "create_run", "drive",
           "eta_seconds", "events",
           "get_run", "list_runs", "new_run", "new_run_id", "open_store", "resolve", "retry", "run_now",
           "skip", "spawn_engine", "task_index", "wait_result"]
