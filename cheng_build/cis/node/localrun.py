"""Run one task of a room run on this node, through the local CIS engine.

The node makes a one-task run in its own store (``$CIS_HOME``) for each task it wins: the same
sandbox, timeout, retries, rollback, friendly errors and durability as ``cis run`` on one machine,
and ``cis status``/``cis debt`` on the node show it. Deps are dropped from the one-task DAG:
across nodes they are ordering only (the room said they finished); no file of theirs is fetched.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cheng_build.cis.dag.errors import DagError
from cheng_build.cis.dag.model import Dag, DagPolicy, LevelKind, TaskLevel, TaskState
from cheng_build.cis.dag.toml_io import dag_from_mapping
from cheng_build.cis.dag.validate import validate_dag
from cheng_build.cis.node.ledger import TaskPlan, TaskStatus
from cheng_build.cis.run import control
from cheng_build.cis.run.engine import Engine
from cheng_build.cis.run.store import Store


@dataclass(frozen=True, slots=True)
class ParsedRun:
    dag: Dag
    plan: tuple[TaskPlan, ...]


def parse_run(text: str, base_dir: str | Path) -> ParsedRun:
    """The DAG of a run event (its cis.toml text) with ``base_dir`` as its directory.

    Raises:
        DagError: not TOML, or a DAG that breaks a rule.
    """
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DagError("the run's DAG is not valid TOML", why=str(exc)) from None
    dag = dag_from_mapping(data, base_dir=base_dir)
    validate_dag(dag, check_inputs=False)
    plan = tuple(TaskPlan(t.idx, t.name, t.deps, t.capabilities,
                          t.level.kind is LevelKind.MECHANICAL) for t in dag.tasks)
    return ParsedRun(dag, plan)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: TaskStatus
    exit_code: int | None
    reason: str
    local_run: str


def _blocks(dag: Dag, idx: int) -> bool:
    """Would a failure of task ``idx`` block anything (else it is Debt under AllowDebt/FirstSuccess)."""
    t = dag.tasks[idx]
    if dag.policy is DagPolicy.ALL_SUCCESS:
        return True
    return not t.ignorable and any(idx in o.deps for o in dag.tasks)


_LOCAL = threading.local()


@dataclass(slots=True)
class _Kept:
    """What a worker thread keeps across the one-task runs it drives: a local run of many
    tasks has these once, and a node makes one run per task (their cost per run was about as
    much as the engine's own work per task)."""

    store: Store
    # The environment ``${NAME}`` in task env expands from: the node's, read once (copying
    # os.environ per run decoded every variable again).
    host_env: dict[str, str]
    # Program lookups on PATH (only found programs are kept: a missing one is looked up again).
    programs: dict[tuple[str, str | None], str | None]



def _kept(home: str | Path) -> _Kept:
    """One store per worker thread (the store's rule), kept open across tasks: opening and closing
    (a WAL checkpoint) per task cost ~40 ms of a ~100 ms one-task run."""
    kept: dict[str, _Kept] = _LOCAL.__dict__.setdefault("kept", {})
    key = str(home)
    if key not in kept:  # (openers of a new store take turns: Store's own lock)
        kept[key] = _Kept(control.open_store(home), dict(os.environ), {})
    return kept[key]


def run_task(home: str | Path, dag: Dag, idx: int, node: str, *, confirmed: bool = False) -> Outcome:
    """Run task ``idx`` of ``dag`` here, to the end; blocks (call it from a worker thread)."""
    t = dag.tasks[idx]
    env = dict(t.exec.env)
    env["CIS_NODE"] = node
    level = t.level
    if confirmed and level.kind is not LevelKind.MECHANICAL:
        level = TaskLevel.mechanical()  # a person confirmed it in the room
    task = replace(t, idx=0, deps=(), level=level,
                   exec=replace(t.exec, env=tuple(sorted(env.items()))))
    one = replace(dag, name=f"{dag.name}/{t.name}", tasks=(task,), policy=DagPolicy.ALL_SUCCESS)
    kept = _kept(home)
    store = kept.store
    # A fresh run (see Engine): stored with its first transition, already marked as driven by
    # this process; its engine gets the DAG (not parsed back), the thread's environment and
    # lookups; the task's end is read from the engine's own mirror of the row.
    new = control.new_run(store, one, jobs=1, check_inputs=False, engine_pid=os.getpid())
    rid = new.run_id
    eng = Engine(store, rid, host_env=kept.host_env, programs=kept.programs, fresh=new)
    eng.run()
    st, exit_code = eng.state[0], eng.exit_code[0]
    err: Mapping[str, Any] = eng.error[0] or {}
    # Only the engine's one-line summary travels: never log tails or file contents.
    reason = str(err.get("what") or eng.note[0] or "")[:300]
    if st is TaskState.COMPLETED:
        return Outcome(TaskStatus.COMPLETED, exit_code, "", rid)
    if st is TaskState.SKIPPED:
        return Outcome(TaskStatus.SKIPPED, exit_code, reason, rid)
    status = TaskStatus.FAILED if _blocks(dag, idx) else TaskStatus.DEBT
    return Outcome(status, exit_code, reason or f"task ended {st.value}", rid)
