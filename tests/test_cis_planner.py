"""The planner (pure): readiness, freezing, failure classification and outcomes, by property;
and the store's refusal of a database it does not understand."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cis.dag.model import Dag, DagPolicy, Exec, RunState, Task, TaskState
from cheng_build.cis.plan import planner
from cheng_build.cis.run.store import Store
from cheng_build.core.errors import StoreError


@st.composite
def dags_and_states(draw: st.DrawFn) -> tuple[Dag, list[TaskState]]:
    n = draw(st.integers(1, 30))
    tasks = []
    for i in range(n):
        deps = sorted(set(draw(st.lists(st.integers(0, i - 1), max_size=3)))) if i else []
        tasks.append(Task(idx=i, name=f"t{i}", exec=Exec(cmd=("true",)), deps=tuple(deps),
                          ignorable=draw(st.booleans())))
    policy = draw(st.sampled_from(list(DagPolicy)))
    states = draw(st.lists(st.sampled_from(list(TaskState)), min_size=n, max_size=n))
    return Dag(name="p", tasks=tuple(tasks), policy=policy), states


@settings(max_examples=150, deadline=None)
@given(dags_and_states())
def test_ready_and_frozen_are_consistent(case: tuple[Dag, list[TaskState]]) -> None:
    dag, states = case
    ready = set(planner.ready(dag, states))
    frozen = planner.frozen(dag, states)
    assert not ready & frozen
    for i in ready:
        assert states[i] is TaskState.PENDING
        assert all(states[d] in (TaskState.COMPLETED, TaskState.DEBT, TaskState.SKIPPED)
                   for d in dag.tasks[i].deps)
    for i in frozen:  # frozen => some dependency failed or is frozen itself
        assert any(states[d] in (TaskState.FAILED, TaskState.ARBITRATED) or d in frozen
                   for d in dag.tasks[i].deps)


@settings(max_examples=150, deadline=None)
@given(dags_and_states())
def test_failure_state_and_outcome(case: tuple[Dag, list[TaskState]]) -> None:
    dag, states = case
    for t in dag.tasks:
        st_ = planner.failure_state(dag, t.idx, arbitrated_level=False)
        if dag.policy is DagPolicy.ALL_SUCCESS:
            assert st_ is TaskState.FAILED
        elif planner.ignorable(dag, t.idx):
            assert st_ is TaskState.DEBT
    out = planner.outcome(dag, states)
    if TaskState.ARBITRATED in states:
        assert out is RunState.WAITING
    elif out is RunState.SUCCEEDED:
        assert (TaskState.FAILED not in states and TaskState.DEBT not in states) or \
            dag.policy is DagPolicy.FIRST_SUCCESS


def test_all_completed_succeeds_under_every_policy() -> None:
    tasks = tuple(Task(idx=i, name=f"t{i}", exec=Exec(cmd=("true",)), deps=(i - 1,) if i else ())
                  for i in range(4))
    for policy in DagPolicy:
        dag = Dag(name="x", tasks=tasks, policy=policy)
        assert planner.outcome(dag, [TaskState.COMPLETED] * 4) is RunState.SUCCEEDED


def test_store_refuses_unknown_schema(tmp_path: Path) -> None:
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    db.commit()
    db.close()
    with pytest.raises(StoreError) as err:
        Store(tmp_path)
    assert "schema version 99" in err.value.what


def test_store_uses_wal(tmp_path: Path) -> None:
    s = Store(tmp_path)
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()
