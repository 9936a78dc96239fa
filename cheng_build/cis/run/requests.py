"""Requests from other processes (the ``controls`` table), applied by the engine in order.

Each function decides what a person's request means for the run's state (confirm, run now,
skip, resolve, amend, retry) and applies it through the engine's own transition method, so the
engine stays the single writer of task state. The result string is stored with the request and
shown by ``cis confirm`` / ``cis amend`` / the web view.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any, Protocol

from cheng_build.cis.dag.model import Dag, TaskState
from cheng_build.cis.plan import levels
from cheng_build.cis.run.store import Control, Store


class Verdict(enum.Enum):
    """Whether the engine applied a request."""

    OK = "ok"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a request came to. Stored with it (and shown) as its text: ``ok``, ``ok: <what
    happened>`` or ``rejected: <why>``."""

    verdict: Verdict
    detail: str = ""

    def __str__(self) -> str:
        return self.verdict.value + (f": {self.detail}" if self.detail else "")

    @property
    def rejected(self) -> bool:
        return self.verdict is Verdict.REJECTED

    @classmethod
    def parse(cls, text: str) -> Outcome:
        """The outcome a stored result text says (text from an older engine included)."""
        head, _, detail = text.partition(": ")
        verdict = Verdict.REJECTED if head.startswith("rejected") else Verdict.OK
        return cls(verdict, detail.strip())


OK = Outcome(Verdict.OK)


def rejected(why: str) -> Outcome:
    """A request the run's state does not allow, and why."""
    return Outcome(Verdict.REJECTED, why)


def ok(what: str) -> Outcome:
    """A request applied, and what it did."""
    return Outcome(Verdict.OK, what)

class Engine(Protocol):
    """What a request needs of the engine applying it (:class:`.engine.Engine`): the run's DAG,
    store and per-task mirrors, and its own transition methods. A Protocol, so this module does
    not import the engine that imports it."""

    dag: Dag
    store: Store
    run_id: str
    state: list[TaskState]
    gate: list[str]
    note: list[str | None]
    choice: list[dict[str, Any]]

    def transition(self, idx: int, event: str | None = None, data: dict[str, Any] | None = None,
                   **fields: Any) -> None: ...

    def stop_running(self, idx: int, reason: str) -> None: ...

    def run_rollback(self, idx: int) -> str: ...


def apply(eng: Engine, c: Control) -> Outcome:
    """Apply one request to the run ``eng`` drives; its outcome is stored with it as text."""
    idx = c.idx
    if idx is None or not 0 <= idx < len(eng.dag.tasks):
        return rejected(f"no task {idx}")
    st = eng.state[idx]
    k = c.kind
    if k in ("confirm", "run-now"):
        if st is TaskState.ARBITRATED:
            return _resolve(eng, idx, "run", None, None)
        if st is not TaskState.PENDING:
            return rejected(f"task {idx} is {st.value}, nothing to {k}")
        eng.transition(
            idx,
            k,
            None,
            gate=levels.GATE_APPROVED,
            gate_until=0.0,
            note=f"{'confirmed' if k == 'confirm' else 'run now'} by a person",
        )
        return OK
    if k == "skip":
        if st is TaskState.RUNNING:
            eng.stop_running(idx, "cancel")
            return ok("stopping it")
        if st not in (TaskState.PENDING, TaskState.ARBITRATED):
            return rejected(f"task {idx} is {st.value}")
        eng.transition(idx, "skipped", None, state=TaskState.SKIPPED, gate="", note="skipped by a person")
        return OK
    if k == "resolve":
        return _resolve(eng, idx, c.payload.get("action"), c.payload.get("value"), c.payload.get("item"))
    if k == "amend":
        return _amend(eng, idx, c.payload)
    if k == "retry":
        return _retry_from(eng, idx)
    return rejected(f"unknown control {k!r}")


def _resolve(eng: Engine, idx: int, action: str | None, value: str | None, item: str | None) -> Outcome:
    st = eng.state[idx]
    if value is not None:
        open_items = eng.choice[idx].get("open") or []
        key = item or (open_items[0] if open_items else None)
        if key is None:
            return rejected(f"task {idx} has no open question")
        answers = {**eng.choice[idx].get("answers", {}), key: value}
        eng.transition(idx, "answered", {"item": key}, choice={**eng.choice[idx], "answers": answers})
        if st is TaskState.ARBITRATED or (
            st is TaskState.PENDING and eng.gate[idx] in (levels.GATE_ANSWER, levels.GATE_SUGGEST)
        ):
            eng.transition(
                idx,
                "resolved",
                None,
                state=TaskState.PENDING,
                gate=levels.GATE_APPROVED,
                note=f"{key} answered by a person",
            )
        if action is None:
            return OK
    action = action or "run"
    if action in ("run", "retry"):
        if st not in (
            TaskState.ARBITRATED,
            TaskState.FAILED,
            TaskState.DEBT,
            TaskState.PENDING,
            TaskState.SKIPPED,
        ):
            return rejected(f"task {idx} is {st.value}")
        eng.transition(
            idx,
            "resolved",
            {"action": action},
            state=TaskState.PENDING,
            gate=levels.GATE_APPROVED,
            note=f"resolved by a person: {action}",
        )
        _unfreeze_dependents(eng, idx)
        return OK
    if action == "skip":
        if st is TaskState.RUNNING:
            eng.stop_running(idx, "cancel")
            return ok("stopping it")
        eng.transition(
            idx, "resolved", {"action": action}, state=TaskState.SKIPPED, note="resolved by a person: skip"
        )
        _unfreeze_dependents(eng, idx)
        return OK
    if action == "complete":
        if st is TaskState.RUNNING:
            return rejected(f"task {idx} is running")
        eng.transition(
            idx, "resolved", {"action": action}, state=TaskState.COMPLETED, note="marked complete by a person"
        )
        _unfreeze_dependents(eng, idx)
        return OK
    if action in ("fail", "rollback"):
        if st is TaskState.RUNNING:
            return rejected(f"task {idx} is running")
        stored = eng.store.tasks(eng.run_id)[idx].error
        err = stored or {"what": f"task {eng.dag.tasks[idx].name} failed by decision", "why": [], "how": []}
        if eng.dag.tasks[idx].rollback is not None:
            err = {**err, "rollback": eng.run_rollback(idx)}
        eng.transition(
            idx,
            "resolved",
            {"action": action},
            state=TaskState.FAILED,
            error=err,
            note="resolved by a person: failed",
        )
        return OK
    return rejected(f"unknown action {action!r} (run | retry | skip | complete | fail | rollback)")


def _unfreeze_dependents(eng: Engine, idx: int) -> None:
    # Dependents skipped only because this task blocked them become Pending again.
    for t in eng.dag.tasks[idx + 1 :]:
        if eng.state[t.idx] is TaskState.SKIPPED and (eng.note[t.idx] or "").startswith(
            ("blocked by", "not started")
        ):
            eng.transition(t.idx, "unblocked", None, state=TaskState.PENDING, gate="", note=None)


def _amend(eng: Engine, idx: int, payload: dict[str, Any]) -> Outcome:
    from cheng_build.cis.dag.validate import validate_dag

    task = eng.dag.tasks[idx]
    ex = task.exec
    if payload.get("env"):
        env = {**ex.env_map, **payload["env"]}
        ex = replace(ex, env=tuple(sorted(env.items())))
    if payload.get("cmd"):
        ex = replace(ex, cmd=tuple(payload["cmd"]))
    if payload.get("timeout") is not None:
        ex = replace(ex, timeout=int(payload["timeout"]))
    new = replace(task, exec=ex)
    dag = eng.dag.with_task(new)
    try:
        validate_dag(dag)
    except Exception as exc:
        return rejected(f"{getattr(exc, 'what', exc)}")
    eng.dag = dag
    eng.store.set_spec(eng.run_id, new)
    st = eng.state[idx]
    if st is TaskState.RUNNING:
        eng.stop_running(idx, "amend")
        eng.store.add_event(eng.run_id, idx, "amended", {"then": "restart"})
        return ok("running task stopped (SIGTERM); it restarts with the change")
    if st is TaskState.COMPLETED:
        eng.transition(
            idx,
            "amended",
            {"then": "needs-rerun"},
            needs_rerun=1,
            note=f"amended after it completed: needs rerun ('cis retry {eng.run_id} --from:{task.name}')",
        )
        return ok("completed task marked needs-rerun (not rerun by itself)")
    eng.store.add_event(eng.run_id, idx, "amended", {"then": "updated"})
    return ok("updated")


def _retry_from(eng: Engine, idx: int) -> Outcome:
    affected = {idx}
    for t in eng.dag.tasks[idx + 1 :]:
        if any(d in affected for d in t.deps):
            affected.add(t.idx)
    for i in sorted(affected):
        if eng.state[i] is TaskState.RUNNING:
            continue
        eng.transition(
            i,
            "reset",
            {"from": idx},
            state=TaskState.PENDING,
            gate=levels.GATE_APPROVED if i == idx else "",
            gate_until=0.0,
            needs_rerun=0,
            error=None,
            finished=None,
            exit_code=None,
            note=f"reset by 'cis retry --from:{eng.dag.tasks[idx].name}'",
        )
    return ok(f"{len(affected)} task(s) reset")
