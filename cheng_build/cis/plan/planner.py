"""*What* can run next: pure functions over a DAG and its task states (no I/O, no clock).

The engine asks the planner which tasks are ready, which are frozen behind a blocking failure,
whether a failure is ignorable (becomes Debt) and how the run ends under its policy. Keeping this
apart from the loop that runs processes (ninja's Plan vs Builder) lets it be tested exhaustively.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from cheng_build.cis.dag.model import Dag, DagPolicy, RunState, TaskState

# A dependency in one of these states lets its dependents start. Debt means "failed but nothing
# needs it" (or the task declared itself ignorable); Skipped means a person chose not to run it.
_SATISFIED = frozenset({TaskState.COMPLETED, TaskState.DEBT, TaskState.SKIPPED})
_BLOCKING = frozenset({TaskState.FAILED, TaskState.ARBITRATED})


def frozen(dag: Dag, states: Sequence[TaskState]) -> set[int]:
    """Pending tasks that can never start: a dependency failed (blocking) or is itself frozen."""
    out: set[int] = set()
    for t in dag.tasks:  # deps point to lower indexes, so one pass in order is enough
        if states[t.idx] is TaskState.PENDING and any(
                states[d] in _BLOCKING or d in out for d in t.deps):
            out.add(t.idx)
    return out


def ready(dag: Dag, states: Sequence[TaskState], among: Iterable[int] | None = None) -> list[int]:
    """Pending tasks whose dependencies are all satisfied, lowest index first.

    ``among`` (ascending indexes) limits the scan, e.g. to the tasks the caller knows are pending.
    """
    return list(iter_ready(dag, states, among))


def iter_ready(dag: Dag, states: Sequence[TaskState],
               among: Iterable[int] | None = None) -> Iterator[int]:
    """:func:`ready`, lazily: each task is judged by ``states`` as they are when it is reached.

    The engine stops asking once its job slots are full, so with ``--jobs 1`` a loop turn looks
    at one or two tasks instead of every pending one (a 256-task DAG would cost O(n^2) checks).
    """
    tasks = dag.tasks
    for t in (tasks if among is None else (tasks[i] for i in among)):
        if states[t.idx] is TaskState.PENDING and all(states[d] in _SATISFIED for d in t.deps):
            yield t.idx


def sinks(dag: Dag) -> list[int]:
    """Tasks nothing depends on (the ends of the pipeline)."""
    deps = dag.dependents()
    return [t.idx for t in dag.tasks if not deps[t.idx]]


def ignorable(dag: Dag, idx: int) -> bool:
    """A failure of ``idx`` blocks nothing: the task says so, or no task depends on it."""
    return dag.tasks[idx].ignorable or not dag.dependents()[idx]


def failure_state(dag: Dag, idx: int, *, arbitrated_level: bool) -> TaskState:
    """The state a task that failed for good (retries spent) moves to under the DAG's policy."""
    if dag.policy is DagPolicy.ALL_SUCCESS:
        return TaskState.ARBITRATED if arbitrated_level else TaskState.FAILED
    if ignorable(dag, idx) or (dag.policy is DagPolicy.FIRST_SUCCESS and dag.tasks[idx].ignorable):
        return TaskState.DEBT
    return TaskState.ARBITRATED if arbitrated_level else TaskState.FAILED


def first_success_reached(dag: Dag, states: Sequence[TaskState]) -> bool:
    """FirstSuccess: a sink task has completed, so the remaining work can be skipped."""
    return dag.policy is DagPolicy.FIRST_SUCCESS and any(
        states[i] is TaskState.COMPLETED for i in sinks(dag))  # checks policy first: cheap


def stop_starting(dag: Dag, states: Sequence[TaskState]) -> bool:
    """No new task may start: an Arbitrated task pauses the whole DAG, AllSuccess stops at the
    first failure, FirstSuccess stops at the first completed sink."""
    if TaskState.ARBITRATED in states:
        return True
    if dag.policy is DagPolicy.ALL_SUCCESS and TaskState.FAILED in states:
        return True
    return first_success_reached(dag, states)


def outcome(dag: Dag, states: Sequence[TaskState]) -> RunState:
    """How the run ends once nothing runs and nothing more can start (frozen tasks aside)."""
    if any(s is TaskState.ARBITRATED for s in states):
        return RunState.WAITING
    has_debt = any(s is TaskState.DEBT for s in states)
    if dag.policy is DagPolicy.FIRST_SUCCESS:
        if first_success_reached(dag, states):
            return RunState.SUCCEEDED_WITH_DEBT if has_debt else RunState.SUCCEEDED
        return RunState.FAILED
    if any(s is TaskState.FAILED for s in states) or any(s is TaskState.PENDING for s in states):
        return RunState.FAILED
    if dag.policy is DagPolicy.ALL_SUCCESS and has_debt:
        return RunState.FAILED
    return RunState.SUCCEEDED_WITH_DEBT if has_debt else RunState.SUCCEEDED
