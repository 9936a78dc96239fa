"""The node agent (`cis node`): follow the room, claim what this node can run, run it, report.

One asyncio loop, three kinds of coroutine:

* the **reader** long-polls the room and feeds each event, in timeline order, to the ledger;
* the **flusher** drains the outbox (every event this node posts goes there first, so nothing is
  lost while the homeserver is away: island mode) in order;
* one **runner** per won task runs it through the local engine in a worker thread.

Between them, :meth:`Agent._tick` decides: claim ready tasks this node is capable of (at most
``jobs`` running and ``max(jobs, 4)`` more claimed ahead, picked in a node-specific order so
racing nodes collide less), take over tasks whose lease lapsed, renew leases of held tasks, start won ones.
A node claims nothing while it is an island: it cannot see the timeline, so it cannot know.

(Over 400 lines on purpose: the three coroutines share the agent's claim state; the rules they
apply live apart, in :mod:`.ledger`.)
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cheng_build.cis.node import protocol
from cheng_build.cis.node.awake import AwakeClock
from cheng_build.cis.node.island import NodeOutbox
from cheng_build.cis.node.ledger import Ledger, RunRec, TaskRec, TaskStatus
from cheng_build.cis.node.protocol import Kind, ProtocolError
from cheng_build.cis.node.room import Batch, Room, RoomError

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    home: Path  # this node's CIS_HOME: its store, outbox and task directories
    workspace: Path
    workspace_id: str
    caps: tuple[str, ...]
    jobs: int = 4
    lease_s: float = 10.0
    hello_s: float = 5.0
    poll_s: float = 10.0


@dataclass
class _Held:
    run: str
    idx: int
    epoch: int
    renewed: float
    started: bool = False


@dataclass
class Counters:
    claimed: int = 0
    won: int = 0
    lost: int = 0
    ran: int = 0
    takeovers: int = 0
    dropped: list[str] = field(default_factory=list)


class Agent:
    def __init__(self, room: Room, cfg: NodeConfig, log: Log, *, session: str | None = None) -> None:
        from cheng_build.cis.node.localrun import ParsedRun  # the engine, only where tasks run

        self.room = room
        self.cfg = cfg
        self.node = room.user_id
        self.log = log
        self.ledger = Ledger()
        self.outbox = NodeOutbox(cfg.home, session or os.urandom(4).hex())
        self.parsed: dict[str, ParsedRun | None] = {}
        self.claims: dict[tuple[str, int], int] = {}  # claimed, not yet seen in the timeline
        self.held: dict[tuple[str, int], _Held] = {}
        self.token: str | None = None
        self.island = False
        self.counters = Counters()
        # Leases are judged on the awake clock (pauses of this process do not count as anyone's
        # silence), up to the moment the room was last read through (``_fresh``): a holder is
        # silent only if the timeline, read after the lease ran out, has nothing from it.
        self.clock = AwakeClock()
        self._fresh = self.clock.now()
        self._wake = asyncio.Event()
        self._queued = asyncio.Event()
        self._runners: set[asyncio.Task[None]] = set()

    # -- posting --------------------------------------------------------------------------

    def post(self, kind: Kind, run: str = "", idx: int | None = None, **fields: object) -> None:
        body = protocol.content(kind, self.node, **({"run": run} if run else {}),
                                **({"task": idx} if idx is not None else {}), **fields)
        self.outbox.put(kind.etype, body, run, idx)
        self._queued.set()
        self._wake.set()

    async def _flush(self) -> None:
        answered = False  # only an answer of the homeserver ends island mode, never an empty queue
        while batch := self.outbox.pending():
            for entry, etype, body in batch:
                try:
                    await self.room.send(etype, body, self.outbox.txn_id(entry))
                except RoomError as exc:
                    if not exc.transient:
                        answered = True
                        # A refusal (e.g. removed from the room) is not fixed by retrying: drop it.
                        self.log(f"event refused, dropped: {exc.what}")
                        self.outbox.sent(entry)
                        if etype == Kind.CLAIM.etype:
                            self.claims.pop((str(body.get("run")), int(body.get("task", -1))), None)
                        continue
                    self._go_island(exc)
                    return
                self.outbox.sent(entry)
                answered = True
        if answered:
            self._back_online()

    def _go_island(self, exc: RoomError) -> None:
        if not self.island:
            self.log(f"island mode: {exc.what}; running what this node holds, "
                     f"{self.outbox.queued()} event(s) queued")
        self.island = True

    def _back_online(self) -> None:
        if self.island:
            self.log("back online: queued events delivered")
        self.island = False

    # -- reading --------------------------------------------------------------------------

    def ingest(self, batch: Batch, fresh: float | None = None) -> None:
        """Apply ``batch``; ``fresh``: the awake-clock time up to which it holds every event of the
        room (the read's start, or its return for an empty long poll); None: now."""
        now = self.clock.now()
        if batch.gap:
            self.log("the homeserver skipped events (sync gap): filled from /messages; "
                     "claims inside it are settled in that order, duplicates end as debt")
        for ev in batch.events:
            try:
                msg = protocol.parse(ev.type, ev.sender, ev.content, ev.event_id)
            except ProtocolError as exc:
                self.counters.dropped.append(str(exc))
                self.log(f"dropped: {exc}")
                continue
            if msg.kind is Kind.RUN:
                self._add_run(msg)
                continue
            self.ledger.apply(msg, now)
            if msg.kind is Kind.CLAIM:
                self._claim_seen(msg.text("run"), msg.num("task"), msg.num("epoch"), msg.node)
        self.token = batch.token
        self._fresh = max(self._fresh, now if fresh is None else fresh)
        self._wake.set()

    def _add_run(self, msg: protocol.Message) -> None:
        from cheng_build.cis.node.localrun import parse_run
        from cheng_build.core.errors import ChengError

        run_id = msg.text("run")
        if run_id in self.ledger.runs:
            return
        why = ""
        dag_file = PurePosixPath(msg.text("dag_file"))
        if msg.text("workspace") != self.cfg.workspace_id:
            why = (f"workspace {msg.text('workspace')} is not held here (this node has "
                   f"{self.cfg.workspace_id} at {self.cfg.workspace})")
        elif dag_file.is_absolute() or ".." in dag_file.parts or not dag_file.parts:
            why = f"dag_file {str(dag_file)!r} is not a path inside the workspace"
        else:
            why = self._same_dag(dag_file, protocol.dag_text(msg.body))
        parsed = None
        if not why:
            try:
                parsed = parse_run(protocol.dag_text(msg.body), self.cfg.workspace / dag_file.parent)
            except ChengError as exc:
                why = f"its DAG is refused: {exc}"
        if parsed is None:
            # Followed (its events still apply), never run here.
            self.ledger.add_run(msg, ())
            self.parsed[run_id] = None
            self.log(f"run {run_id} ({msg.text('name')}): taking nothing: {why}")
            if msg.node != self.node:
                self.post(Kind.DECLINE, run_id, reason=why[:500])
            return
        self.ledger.add_run(msg, parsed.plan)
        self.parsed[run_id] = parsed
        self.log(f"run {run_id} ({msg.text('name')}): {len(parsed.plan)} tasks from {msg.node}")

    def _same_dag(self, dag_file: PurePosixPath, text: str) -> str:
        """Trust check: a room member may post any run, but a node runs only a DAG that is the
        shared checkout's own file, byte for byte: commands nobody committed never run here."""
        local = self.cfg.workspace / dag_file
        try:
            mine = local.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return f"no readable {dag_file} in this workspace ({exc.__class__.__name__})"
        if mine != text:
            return (f"its DAG differs from {dag_file} in this workspace: only the checkout's own "
                    "DAG runs here")
        return ""

    def _claim_seen(self, run: str, idx: int, epoch: int, who: str) -> None:
        key = (run, idx)
        rec = self._rec(run, idx)
        if rec is None:
            return
        mine = self.claims.get(key)
        if who == self.node and mine == epoch:
            del self.claims[key]
            if rec.winners.get(epoch) == self.node:
                self.counters.won += 1
                self.held[key] = _Held(run, idx, epoch, time.monotonic())
            else:
                self.counters.lost += 1  # someone was first: back off
        elif mine is not None and rec.winners.get(mine, self.node) != self.node:
            pass  # ours will be seen (and lose) shortly

    def _rec(self, run: str, idx: int) -> TaskRec | None:
        r = self.ledger.runs.get(run)
        return r.tasks[idx] if r is not None and 0 <= idx < len(r.tasks) else None

    # -- deciding -------------------------------------------------------------------------

    def _capable(self, t: TaskRec) -> bool:
        return set(t.plan.caps) <= set(self.cfg.caps)

    def _order(self, run: str, idx: int) -> str:
        return hashlib.blake2s(f"{self.node}/{run}/{idx}".encode(), digest_size=8).hexdigest()

    def _tick(self) -> None:
        now = time.monotonic()
        self._drop_taken_over()
        # Renew held leases; not as an island (a renewal is about now: late ones would only pile
        # up in the queue; the first tick after the heal renews). Renewals go on the plain
        # monotonic clock: after a pause of this process they are due at once.
        for h in self.held.values() if not self.island else ():
            if now - h.renewed >= self.cfg.lease_s / 3:
                h.renewed = now
                self.post(Kind.LEASE, h.run, h.idx, epoch=h.epoch)
        self._start_won()
        if self.island or self.token is None:
            return
        # Claims ahead of the running ones hide the claim round trip (~0.1-0.3 s on a busy
        # homeserver) behind work; a few, so a node never hoards what others could run now.
        room = self.cfg.jobs + max(self.cfg.jobs, 4) - len(self.held) - len(self.claims)
        if room <= 0:
            return
        cands: list[tuple[str, RunRec, TaskRec, int]] = []
        for run_id, run in self.ledger.runs.items():
            if self.parsed.get(run_id) is None:
                continue
            for t in run.tasks:
                key = (run_id, t.plan.idx)
                if key in self.claims or key in self.held or not self._capable(t):
                    continue
                if self.ledger.ready(run, t):
                    cands.append((self._order(run_id, t.plan.idx), run, t, 0))
                elif self.ledger.lapsed(t, self._fresh) and t.holder != self.node:
                    cands.append(("", run, t, t.epoch + 1))  # takeovers first
        cands.sort(key=lambda c: c[0])
        for _, run, t, epoch in cands[:room]:
            self.claims[(run.run_id, t.plan.idx)] = epoch
            self.counters.claimed += 1
            if epoch:
                self.counters.takeovers += 1
                self.log(f"task {t.plan.idx} {t.plan.name} of {run.run_id}: {t.holder} silent past "
                         f"its lease, claiming epoch {epoch}")
            self.post(Kind.CLAIM, run.run_id, t.plan.idx, epoch=epoch,
                      lease_ms=int(self.cfg.lease_s * 1000))

    def _drop_taken_over(self) -> None:
        """A held task whose epoch another node won a takeover of (this node looked silent: a
        pause, a slow homeserver) is dropped unless it already started: the other node runs it,
        and one execution stays one. One that started runs on; its result is a duplicate (Debt)."""
        for key, h in list(self.held.items()):
            rec = self._rec(h.run, h.idx)
            if h.started or rec is None or rec.epoch <= h.epoch:
                continue
            del self.held[key]
            self.log(f"task {h.idx} of {h.run}: taken over by {rec.holder} (epoch {rec.epoch}) "
                     "before it started here: not running it")

    def _start_won(self) -> None:
        busy = sum(1 for h in self.held.values() if h.started)
        for h in sorted(self.held.values(), key=lambda h: h.idx):
            if busy >= self.cfg.jobs:
                break
            if h.started:
                continue
            h.started = True
            busy += 1
            job = asyncio.get_running_loop().create_task(self._run(h))
            self._runners.add(job)
            job.add_done_callback(self._runners.discard)

    async def _run(self, h: _Held) -> None:
        from cheng_build.cis.node.localrun import Outcome, run_task

        parsed = self.parsed[h.run]
        assert parsed is not None
        self.log(f"running task {h.idx} {parsed.dag.tasks[h.idx].name} of {h.run} (epoch {h.epoch})")
        rec = self._rec(h.run, h.idx)
        confirmed = bool(rec and rec.confirmed)
        try:
            out = await asyncio.to_thread(run_task, self.cfg.home, parsed.dag, h.idx, self.node,
                                          confirmed=confirmed)
        except Exception as exc:  # the engine could not even start it: report, never hang
            out = Outcome(TaskStatus.FAILED, None, f"the node could not run it: {exc}"[:300], "")
        self.counters.ran += 1
        self.post(Kind.STATE, h.run, h.idx, epoch=h.epoch, state=out.status.value,
                  exit_code=out.exit_code, reason=out.reason, island=self.island,
                  local_run=out.local_run)
        self.held.pop((h.run, h.idx), None)
        self.log(f"task {h.idx} of {h.run}: {out.status.value}"
                 + (f" ({out.reason})" if out.reason else "") + (" [island]" if self.island else ""))

    # -- the loop -------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the room's history (raises RoomError: the caller says why and exits)."""
        self.ingest(await self.room.read(None, 0))
        self._hello()

    def _hello(self) -> None:
        self.post(Kind.HELLO, caps=list(self.cfg.caps), workspace=self.cfg.workspace_id,
                  jobs=self.cfg.jobs, hello_ms=int(self.cfg.hello_s * 1000))

    async def _reader(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            asked = self.clock.now()
            try:
                batch = await self.room.read(self.token, self.cfg.poll_s)
            except RoomError as exc:
                if not exc.transient:
                    raise
                self._go_island(exc)
                await _sleep_or(stop, backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.2
            if self.island and not self.outbox.queued():
                self._back_online()
            # A batch holds every event up to when the read was asked; an empty long poll
            # says the room was quiet until it returned.
            self.ingest(batch, asked if batch.events else self.clock.now())

    async def _flusher(self, stop: asyncio.Event) -> None:
        """Deliver the outbox in order, on its own: a slow PUT never delays starting a task."""
        while not stop.is_set():
            self._queued.clear()
            await self._flush()
            # An island retries every half second; otherwise wait for the next post.
            await _wait_any(self._queued, stop, 0.5 if self.island else 5.0)

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (running tasks finish and report first)."""
        loop = asyncio.get_running_loop()
        reader = loop.create_task(self._reader(stop))
        flusher = loop.create_task(self._flusher(stop))
        watch = loop.create_task(self.clock.watch(stop))
        last_hello = time.monotonic()
        try:
            while not stop.is_set():
                for job in (reader, flusher):
                    if job.done():
                        job.result()  # a refusal ends the node with its reason
                self._wake.clear()
                self._tick()
                if time.monotonic() - last_hello >= self.cfg.hello_s:
                    last_hello = time.monotonic()
                    self._hello()
                await _wait_any(self._wake, stop, 0.25 if self.island else 1.0)
        finally:
            if self._runners:
                await asyncio.gather(*self._runners, return_exceptions=True)
            for job in (reader, flusher, watch):
                job.cancel()
                try:
                    await job
                except (asyncio.CancelledError, RoomError):
                    pass
            await self._flush()  # what the last tasks reported
            self.outbox.close()


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def _wait_any(a: asyncio.Event, b: asyncio.Event, seconds: float) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
