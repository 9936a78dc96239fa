"""`cis run dag.toml --room:`: post a run to the room and follow it to the end.

The origin is not a node: it posts the run event (the DAG's TOML text, the workspace identity,
the DAG file's path inside the workspace: no file contents), then reads the room like any node
and mirrors every task's state and node into its local store, so ``cis status <run>``,
``cis debt`` and the web view show the run as they show a local one, with a node column.

Tasks nobody can take are settled by the origin, in the room, so every node agrees: after a
grace period (three hello intervals) a task whose capabilities no live node has, or a run whose
workspace every live node declined, is skipped with the reason (a ``control`` skip event).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from cheng_build.cis.node import protocol
from cheng_build.cis.node.awake import AwakeClock
from cheng_build.cis.node.feed import feed
from cheng_build.cis.node.ledger import Ledger, RunRec, TaskPlan, TaskStatus, TaskView
from cheng_build.cis.node.protocol import Kind, Message
from cheng_build.cis.node.room import Room, RoomError
from cheng_build.cis.node.trace import mark

GRACE_S = 15.0
# The origin only watches: reading the room at most this often lets one sync carry many events
# (every sync is work for the homeserver, once per client) at the cost of progress lagging by it.
# Scaled by the share of tasks still open: the last results are the ones a person waits for (the
# full pause cost up to a quarter second at the end of every run). Half a second: four origins of
# a 800-task benchmark made 81 syncs at a quarter (more than the four nodes' 71), 57-63 at half.
PACE_S = 0.5


@dataclass(frozen=True, slots=True)
class Outcome:
    views: list[TaskView]
    failed: bool
    debt: bool
    why: str = ""  # why the room could not run it at all


class Follower:
    """Post one run and follow it (see the module docstring)."""

    def __init__(self, room: Room, run_id: str, plan: tuple[TaskPlan, ...],
                 on_change: Callable[[list[TaskView], list[TaskView]], None],
                 log: Callable[[str], None], *, grace_s: float = GRACE_S, pace_s: float = PACE_S) -> None:
        self.room = room
        self.run_id = run_id
        self.plan = plan
        self.on_change = on_change
        self.log = log
        self.grace_s = grace_s
        self.pace_s = pace_s
        self.ledger = Ledger()
        self._skipped: set[int] = set()
        # Grace and liveness on the awake clock: a pause of this process is nobody's silence.
        self.clock = AwakeClock()

    def _dropped(self, why: str) -> None:
        self.log(f"dropped: {why}")

    def _plan_for(self, msg: Message) -> tuple[TaskPlan, ...]:
        return self.plan if msg.text("run") == self.run_id else ()

    async def follow(self, content: dict[str, object] | None, *, attach_only: bool = False) -> Outcome:
        stop = asyncio.Event()
        watch = asyncio.get_running_loop().create_task(self.clock.watch(stop))
        try:
            return await self._follow(content, attach_only)
        finally:
            stop.set()
            watch.cancel()

    async def _follow(self, content: dict[str, object] | None, attach_only: bool) -> Outcome:
        hist = await self.room.read(None, 0)
        feed(self.ledger, hist.events, self.clock.now(), self._plan_for, self._dropped)
        token = hist.token
        if self.run_id not in self.ledger.runs:
            if content is None:
                raise RoomError(f"run {self.run_id} is not in the room")
            mark("origin_history", len(hist.events))
            await self.room.send(Kind.RUN.etype, content, f"run-{self.run_id}")
            mark("origin_posted", self.run_id[-4:])
        posted = self.clock.now()
        last: list[TaskView] = []
        open_share = 1.0
        down = False
        news = False
        while True:
            run = self.ledger.runs.get(self.run_id)
            if run is not None:
                views = self.ledger.view(run)
                if views != last:
                    self.on_change(last, views)
                    last = views
                # From the views just made: Ledger.finished / failed would build them again.
                open_share = sum(not v.status.finished for v in views) / max(1, len(views))
                if not open_share:
                    mark("origin_done", self.run_id[-4:])
                    return Outcome(views, any(v.status is TaskStatus.FAILED for v in views),
                                   any(v.status is TaskStatus.DEBT for v in views), self._why(run))
                if not attach_only and self.clock.now() - posted > self.grace_s:
                    await self._settle_unrunnable(run)
            if news:  # the pace after news, taken only now: the news may have finished the run
                await asyncio.sleep(self.pace_s * open_share)
            try:
                batch = await self.room.read(token, 2.0)
            except RoomError as exc:
                if not exc.transient:
                    raise
                # The homeserver went away: the nodes go on as islands; keep asking.
                if not down:
                    self.log(f"{exc.what}; retrying")
                down = True
                await asyncio.sleep(1.0)
                continue
            down = False
            mark("origin_read", len(batch.events))
            token = batch.token
            feed(self.ledger, batch.events, self.clock.now(), self._plan_for, self._dropped)
            news = bool(batch.events)

    def _live(self, run: RunRec) -> list[str]:
        now = self.clock.now()
        out = []
        for n, hello in self.ledger.nodes.items():
            every = int(hello.body.get("hello_ms") or 5000) / 1000.0
            if now - self.ledger.heard_node.get(n, 0.0) <= 3 * every and n not in run.declined:
                out.append(n)
        return out

    def _why(self, run: RunRec) -> str:
        if run.declined and not self._live(run):
            return "; ".join(f"{n}: {why}" for n, why in sorted(run.declined.items()))
        return ""

    async def _settle_unrunnable(self, run: RunRec) -> None:
        live = self._live(run)
        for t in run.tasks:
            i = t.plan.idx
            if i in self._skipped or t.winners or self.ledger.effective(run, t).finished:
                continue
            capable = [n for n in live
                       if set(t.plan.caps) <= set(self.ledger.nodes[n].body.get("caps") or ())]
            if capable:
                continue
            if not live:
                why = ("no live node takes this run"
                       + (": " + "; ".join(f"{n}: {w}" for n, w in sorted(run.declined.items()))
                          if run.declined else " (no node said hello in the room)"))
            else:
                why = f"no live node has capabilit{'ies' if len(t.plan.caps) > 1 else 'y'} " \
                      f"{', '.join(t.plan.caps)} (nodes: {', '.join(live)})"
            self._skipped.add(i)
            body = protocol.content(Kind.CONTROL, self.room.user_id, run=self.run_id, task=i,
                                    action="skip", reason=why[:400])
            await self.room.send(Kind.CONTROL.etype, body, f"skip-{self.run_id}-{i}")

