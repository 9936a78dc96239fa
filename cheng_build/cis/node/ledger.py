"""What the room says about runs and tasks, rebuilt from its events in timeline order (pure).

Every node, and the origin of a run, feeds the same events in the same order into a ledger and
so reaches the same answers without asking anyone:

* **Claims**: a task has epochs 0, 1, 2...; the first claim of an epoch in timeline order wins
  it. Epoch 0 is open while nobody holds the task; epoch ``n+1`` is a takeover, accepted only for
  a Mechanical task that is not finished (a Confirmed or Arbitrated task waits for a person, as
  on one machine). Later claims of a won epoch lose and their nodes back off.
* **Leases**: the holder's claim, lease renewals and reports keep it alive; each reader measures
  the silence on its own monotonic clock (no clock sync between machines). A holder silent for
  longer than its lease has lapsed, and any capable node may claim the next epoch.
* **Revocation**: a won claim of epoch ``n+1`` (a takeover) revokes epoch ``n`` but is *pending*:
  its winner may not start it yet. It is settled by the old holder's ``release`` of ``n`` ("I
  never started it") or by the taker's ``start`` of ``n+1`` (posted after a further lease with
  no answer), whichever comes first in timeline order. A lease renewal or a result of epoch ``n``
  from the old holder that comes before either *contradicts* the revoke ("I am running it"): the
  takeover is void, epoch ``n+1`` is forgotten and the old holder keeps the task. So a holder
  that answers within a lease is never run twice; only one cut off (or stalled) for a whole lease
  after the revoke can be, and that ends as Debt (below).
* Batches: a claim, lease, release, start or state event may name many tasks; each (task, epoch)
  pair is judged on its own, exactly as if it came alone, in the event's timeline position.
* **Results**: only an epoch's winner may report its state. A second finished result from another
  epoch (a node that ran on as an island while another took its task over) is a **duplicate**:
  the task becomes Debt saying who ran it twice, never silently dropped.
* **Deps** are ordering only: a task is ready when every dep is Completed or Debt; a Failed or
  Skipped dep skips it ("blocked by").
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cheng_build.cis.node.protocol import Kind, Message


class TaskStatus(enum.Enum):
    PENDING = "Pending"
    CLAIMED = "Claimed"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    DEBT = "Debt"
    SKIPPED = "Skipped"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.DEBT, TaskStatus.SKIPPED)

    @property
    def ok(self) -> bool:
        """Dependents may start (Debt is a failure that blocks nothing)."""
        return self in (TaskStatus.COMPLETED, TaskStatus.DEBT)


@dataclass(frozen=True, slots=True)
class TaskPlan:
    """What the ledger needs of a task (parsed from the run's DAG by the caller)."""

    idx: int
    name: str
    deps: tuple[int, ...] = ()
    caps: tuple[str, ...] = ()
    mechanical: bool = True  # False: Confirmed / Arbitrated / Recommended wait for `confirm`


@dataclass(frozen=True, slots=True)
class Result:
    epoch: int
    node: str
    status: TaskStatus
    reason: str = ""
    exit_code: int | None = None
    island: bool = False


@dataclass
class TaskRec:
    plan: TaskPlan
    winners: dict[int, str] = field(default_factory=dict)
    lease_s: dict[int, float] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)  # takeover epochs not settled yet (revocation)
    released: set[int] = field(default_factory=set)  # epochs their holder gave up unstarted
    heard: float = 0.0  # local monotonic time the current holder was last heard
    running: bool = False
    results: list[Result] = field(default_factory=list)
    confirmed: bool = False
    skipped_by: str = ""  # a person's skip (control event) or the origin's "no capable node"

    @property
    def epoch(self) -> int:
        return max(self.winners, default=-1)

    @property
    def holder(self) -> str:
        return self.winners.get(self.epoch, "")

    def duplicate(self) -> str:
        """Who ran it twice, or ''."""
        if len(self.results) < 2:
            return ""  # the common case, asked for every task on every tick: keep it cheap
        done = [r for r in self.results if r.status is not TaskStatus.SKIPPED]
        nodes = {(r.epoch, r.node) for r in done}
        if len(nodes) < 2:
            return ""
        islands = {r.epoch for r in done if r.island}
        who = ", ".join(f"{n} (epoch {e}{', as an island' if e in islands else ''})"
                        for e, n in sorted(nodes))
        return f"ran more than once during a partition: {who}"


@dataclass
class RunRec:
    run_id: str
    name: str
    origin: str
    workspace: str
    dag_file: str
    tasks: list[TaskRec]
    declined: dict[str, str] = field(default_factory=dict)  # node -> why it takes nothing
    version: int = 0  # bumped by every event about this run: a copy of it may skip a quiet run


@dataclass(frozen=True, slots=True)
class TaskView:
    idx: int
    name: str
    status: TaskStatus
    node: str
    reason: str
    exit_code: int | None
    epoch: int


class Ledger:
    """Runs, claims, leases and results as the room's timeline says (see the module docstring)."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRec] = {}
        self.nodes: dict[str, Message] = {}  # node -> latest hello
        self.heard_node: dict[str, float] = {}
        self.rejected: list[str] = []  # why events were dropped: the reader logs and clears it
        self.version = 0  # bumped by every change: readers may cache what they derive from it

    # -- feeding --------------------------------------------------------------------------

    def add_run(self, msg: Message, plan: Sequence[TaskPlan]) -> RunRec | None:
        run_id = msg.text("run")
        self.version += 1
        if run_id in self.runs:  # a repost (retry of an island's queue): the first one counts
            return None
        rec = RunRec(run_id, msg.text("name"), msg.node, msg.text("workspace"), msg.text("dag_file"),
                     [TaskRec(p) for p in plan])
        self.runs[run_id] = rec
        return rec

    def _task(self, msg: Message, idx: int | None = None) -> TaskRec | None:
        run = self.runs.get(msg.text("run"))
        idx = msg.num("task") if idx is None else idx
        if run is not None and not run.tasks:
            return None  # a run followed without its plan (not this reader's to judge)
        if run is None or not 0 <= idx < len(run.tasks):
            self.rejected.append(f"{msg.kind.value} {msg.event_id} from {msg.node}: no such run/task")
            return None
        return run.tasks[idx]

    def _pairs(self, msg: Message) -> list[tuple[TaskRec, int, int]]:
        """(task, its index in the event, epoch) for each pair naming a task of a known run."""
        out = []
        for k, (idx, epoch) in enumerate(msg.items()):
            t = self._task(msg, idx)
            if t is not None:
                out.append((t, k, epoch))
        return out

    def apply(self, msg: Message, now: float) -> None:
        """One event, in timeline order (RUN events go through :meth:`add_run`)."""
        self.heard_node[msg.node] = now
        self.version += 1
        about = self.runs.get(str(msg.body.get("run", "")))
        if about is not None:
            about.version += 1
        if msg.kind is Kind.HELLO:
            self.nodes[msg.node] = msg
        elif msg.kind is Kind.DECLINE:
            run = self.runs.get(msg.text("run"))
            if run is not None:
                run.declined[msg.node] = msg.text("reason")
        elif msg.kind is Kind.CLAIM:
            riding = msg.riding()
            if riding is not None:  # the sender's results, as the state event just before
                self._results(riding, now)
            for t, _, e in self._pairs(msg):
                self._claim(t, e, msg, now)
        elif msg.kind is Kind.LEASE:
            for t, _, e in self._pairs(msg):
                self._contradict(t, e, msg.node, now)
                if t.winners.get(e) == msg.node and e == t.epoch:
                    t.heard = now
        elif msg.kind is Kind.RELEASE:
            for t, _, e in self._pairs(msg):
                # Only the holder's word: it settles the takeover of its epoch, or, if that was
                # void meanwhile (its renewal crossed the revoke), frees the task for epoch e+1.
                if t.winners.get(e) == msg.node:
                    t.pending.discard(e + 1)
                    t.released.add(e)
        elif msg.kind is Kind.START:
            for t, _, e in self._pairs(msg):
                if t.winners.get(e) == msg.node and e in t.pending:
                    t.pending.discard(e)
                    t.heard = now
        elif msg.kind is Kind.STATE:
            self._results(msg, now)
        elif msg.kind is Kind.CONTROL:
            tc = self._task(msg)
            if tc is not None and not self.status(tc).finished:
                if msg.text("action") == "confirm":
                    tc.confirmed = True
                else:
                    why = str(msg.body.get("reason") or "a person's decision")
                    tc.skipped_by = f"skipped by {msg.node}: {why}"

    def _results(self, msg: Message, now: float) -> None:
        results = msg.results()
        for t, k, e in self._pairs(msg):
            self._state(t, e, results[k], msg, now)

    def _contradict(self, t: TaskRec, e: int, node: str, now: float) -> None:
        """The holder of epoch ``e`` speaks for it while its takeover ``e+1`` is pending: it is
        running the task, so the takeover is void (see the module docstring)."""
        if e + 1 in t.pending and t.winners.get(e) == node and t.epoch == e + 1:
            t.pending.discard(e + 1)
            t.winners.pop(e + 1, None)
            t.lease_s.pop(e + 1, None)
            t.heard = now

    def _claim(self, t: TaskRec, e: int, msg: Message, now: float) -> None:
        if e in t.winners:
            return  # that epoch is taken: this claim lost
        if e == 0 and not t.winners:
            pass
        elif e == t.epoch + 1 and t.epoch in t.released and not self.status(t).finished:
            t.winners[e] = msg.node  # its holder gave it up unstarted: nothing to revoke
            t.lease_s[e] = int(msg.body["lease_ms"]) / 1000.0
            t.heard = now
            return
        elif e == t.epoch + 1 and t.plan.mechanical and not self.status(t).finished and t.winners:
            pass  # a takeover after a lapse (the claimant judged the lapse on its own clock)
        else:
            return
        t.winners[e] = msg.node
        t.lease_s[e] = int(msg.body["lease_ms"]) / 1000.0
        t.heard = now
        t.running = False
        if e > 0:
            t.pending.add(e)  # a takeover: it revokes epoch e-1 and waits to be settled

    def _state(self, t: TaskRec, e: int, body: Mapping[str, Any], msg: Message, now: float) -> None:
        self._contradict(t, e, msg.node, now)
        if t.winners.get(e) != msg.node:
            self.rejected.append(f"state {msg.event_id} from {msg.node}: it does not hold epoch {e}")
            return
        st = TaskStatus(str(body["state"]))
        if e == t.epoch:
            t.heard = now
        if st is TaskStatus.RUNNING:
            t.running = t.running or e == t.epoch
            return
        code = body.get("exit_code")
        r = Result(e, msg.node, st, str(body.get("reason") or "")[:500],
                   code if isinstance(code, int) and not isinstance(code, bool) else None,
                   bool(body.get("island")))
        if r not in t.results:
            t.results.append(r)

    # -- reading --------------------------------------------------------------------------

    def status(self, t: TaskRec) -> TaskStatus:
        dup = t.duplicate()
        if dup:
            return TaskStatus.DEBT
        if t.results:
            return t.results[0].status
        if t.skipped_by:
            return TaskStatus.SKIPPED
        if t.winners:
            return TaskStatus.RUNNING if t.running else TaskStatus.CLAIMED
        return TaskStatus.PENDING

    def blocked_by(self, run: RunRec, t: TaskRec) -> int | None:
        for d in t.plan.deps:
            st = self.effective(run, run.tasks[d])
            if st.finished and not st.ok:
                return d
        return None

    def effective(self, run: RunRec, t: TaskRec) -> TaskStatus:
        """The status with blocked tasks shown Skipped."""
        st = self.status(t)
        if not st.finished and not t.winners and self.blocked_by(run, t) is not None:
            return TaskStatus.SKIPPED
        return st

    def ready(self, run: RunRec, t: TaskRec) -> bool:
        """Unclaimed (or given up by its holder), not finished, every dep Completed/Debt, and a
        person said yes if it must. Claim it for :meth:`next_epoch`."""
        if (t.winners and t.epoch not in t.released) or self.effective(run, t).finished:
            return False
        if not t.plan.mechanical and not t.confirmed:
            return False
        return all(self.effective(run, run.tasks[d]).ok for d in t.plan.deps)

    @staticmethod
    def next_epoch(t: TaskRec) -> int:
        return t.epoch + 1

    def may_start(self, t: TaskRec, epoch: int, node: str) -> bool:
        """``node`` holds the task's current ``epoch`` and no revocation of it is pending."""
        return t.winners.get(epoch) == node and epoch == t.epoch and epoch not in t.pending \
            and not self.status(t).finished

    def lapsed(self, t: TaskRec, now: float) -> bool:
        """The holder has been silent past its lease (and the task may be taken over)."""
        if not t.winners or not t.plan.mechanical or self.status(t).finished:
            return False
        return now - t.heard > t.lease_s.get(t.epoch, 30.0)

    def view(self, run: RunRec) -> list[TaskView]:
        out = []
        for t in run.tasks:
            st = self.effective(run, t)
            reason = t.duplicate() or (t.results[0].reason if t.results else "") or t.skipped_by
            if st is TaskStatus.SKIPPED and not reason:
                b = self.blocked_by(run, t)
                reason = f"blocked by failed task {b}" if b is not None else ""
            node = t.results[0].node if t.results else t.holder
            if t.duplicate():
                node = ", ".join(sorted({r.node for r in t.results}))
            code = t.results[0].exit_code if t.results else None
            out.append(TaskView(t.plan.idx, t.plan.name, st, node, reason, code, t.epoch))
        return out

    def finished(self, run: RunRec) -> bool:
        return all(v.status.finished for v in self.view(run))

    def failed(self, run: RunRec) -> bool:
        return any(v.status is TaskStatus.FAILED for v in self.view(run))

    def capable(self, caps: Iterable[str]) -> list[str]:
        """Nodes whose latest hello has every capability in ``caps``."""
        need = set(caps)
        return sorted(n for n, h in self.nodes.items() if need <= set(h.body.get("caps") or ()))
