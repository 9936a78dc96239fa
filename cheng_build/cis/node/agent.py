"""The node agent (`cis node`): follow the room, claim what this node can run, run it, report.

One asyncio loop, three kinds of coroutine:

* the **reader** long-polls the room and feeds each event, in timeline order, to the ledger;
* the **flusher** drains the outbox (every event this node posts goes there first, so nothing is
  lost while the homeserver is away: island mode) in order;
* one **runner** per won task runs it through the local engine in a worker thread.

Between them, :meth:`Agent._tick` decides: claim ready tasks this node is capable of, in one
batch event per run (at most ``jobs`` running, plus work claimed ahead: ``ahead_s`` seconds of it
at this node's task time, at least ``jobs`` tasks, at most a fair share of the work left (ready,
held or claimed, divided by the live nodes) and ``batch``; picked in a node-specific order so
racing nodes collide less), take over tasks whose lease lapsed, renew the leases of all held
tasks in one event per run, answer revocations, and start won tasks (only under a fresh lease:
see :mod:`.revoke`). A node claims nothing while it is an island: it cannot see the
timeline, so it cannot know. Results are queued one by one and merged into batch events on the
way out (:mod:`.coalesce`), after a short linger that lets neighbours join, or ride in a claim of
their run going out anyway.

(Over 400 lines on purpose: the three coroutines share the agent's claim state; the rules they
apply live apart, in :mod:`.ledger`.)
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cheng_build.cis.node import protocol, revoke, trace
from cheng_build.cis.node.awake import AwakeClock
from cheng_build.cis.node.coalesce import Group, claims_first, coalesce, ride
from cheng_build.cis.node.flag import Flag, relay
from cheng_build.cis.node.island import NodeOutbox
from cheng_build.cis.node.ledger import Ledger, RunRec, TaskRec, TaskStatus
from cheng_build.cis.node.protocol import Kind, ProtocolError
from cheng_build.cis.node.revoke import Held
from cheng_build.cis.node.room import Batch, Room, RoomError
from cheng_build.cis.node.trace import mark

Log = Callable[[str], None]
_LINGERS = (Kind.STATE, Kind.LEASE)  # results and renewals wait a moment for neighbours
_LINGER_TYPES = frozenset(k.etype for k in _LINGERS)
_Cand = tuple[tuple[bool, int, bytes], RunRec, TaskRec, int]  # (claim order, run, task, epoch to claim)


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
    # Work claimed ahead of the running tasks, in seconds at this node's task time: it hides the
    # claim round trip (~0.1-0.2 s on a loaded homeserver) behind work in hand, and sizes claims
    # by time, not count: a few long tasks, or many short ones in few large claim events.
    ahead_s: float = 2.0
    batch: int = 256  # most tasks claimed ahead of the running ones (a fair share, capped)
    linger_s: float = 0.1  # results and renewals wait this long for neighbours to merge with
    linger_max: int = 32  # ...or until this many are queued
    # While this node has a job's worth of won tasks waiting, news cannot make it start anything
    # sooner: results linger longer (fewer, larger events) and the room is read less often
    # (every read is a sync the homeserver answers: with 8 clients, most of its work), but never
    # longer than half the work in hand lasts (see Agent._pace), nor past its own claim's PUT.
    busy_linger_s: float = 1.0  # capped at a tenth of the lease: renewals linger too
    task_guess_s: float = 0.2  # a task's wall time, until this node has timed its own



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
        self.held: dict[tuple[str, int], Held] = {}
        self.token: str | None = None
        self.island = False
        self.counters = Counters()
        # Leases are judged on the awake clock (pauses of this process do not count as anyone's
        # silence), up to the moment the room was last read through (``_fresh``): a holder is
        # silent only if the timeline, read after the lease ran out, has nothing from it.
        self.clock = AwakeClock()
        self._fresh = self.clock.now()
        self._own_seen = -math.inf  # monotonic time an event of this node was last read back
        self._wake = Flag()
        # A claim or renewal of this node was PUT: read it back now (it wins tasks, or makes
        # waiting ones fresh again: news that can start a task sooner).
        self._claim_sent = Flag()
        self._task_s = cfg.task_guess_s  # moving average of a task's wall time here
        self._timed = 0  # tasks timed into it
        self._queued = Flag()
        self._urgent = Flag()  # a claim, hello...: no linger
        self._relay: tuple[asyncio.Event, asyncio.Task[None]] | None = None
        self._lingering = 0
        # Awake-clock time the oldest result or renewal still queued began to linger (None:
        # none queued). A claim going at once does not take them along (see _flusher).
        self._linger_from: float | None = None
        self._full = False  # linger_max reached: everything queued goes now
        self._runners: set[asyncio.Task[None]] = set()
        self._prefer: dict[tuple[str, int], tuple[frozenset[str], str, bytes]] = {}
        self._scanned: tuple[tuple[int, float, frozenset[str]], list[_Cand], list[_Cand],
                             set[tuple[str, int]], int] | None = None
        self._open: dict[str, list[TaskRec]] = {}  # per run: the tasks a scan still walks
        self._renew_due = math.inf  # monotonic time the first held lease is due for renewal
        self._answered = -1  # the ledger version revocations were last answered at

    # -- posting --------------------------------------------------------------------------

    def post(self, kind: Kind, run: str = "", idx: int | None = None, **fields: object) -> None:
        body = protocol.content(kind, self.node, **({"run": run} if run else {}),
                                **({"task": idx} if idx is not None else {}), **fields)
        self._put(kind, body, run, idx)

    def post_batch(self, kind: Kind, run: str, pairs: list[list[int]], **fields: object) -> None:
        """One event for many (task, epoch) pairs of ``run`` (split where it would pass 16 KB)."""
        if kind in (Kind.CLAIM, Kind.LEASE):
            fields["at_ms"] = int(time.monotonic() * 1000)  # read back by this node only
        if kind is Kind.CLAIM:
            mark("claim", run[-4:], len(pairs))
        for body in protocol.split(kind, self.node, run, pairs, **fields):
            self._put(kind, body, run, None)

    def _put(self, kind: Kind, body: dict[str, object], run: str, idx: int | None) -> None:
        self.outbox.put(kind.etype, body, run, idx)
        self._queued.set()
        if kind in _LINGERS:
            self._lingering += 1
            if self._linger_from is None:
                self._linger_from = time.monotonic()
            if self._lingering >= self._linger_max():
                self._full = True
                self._urgent.set()
        else:
            self._urgent.set()
        self._wake.set()

    async def _flush(self, *, drain: bool = True, urgent_only: bool = False) -> None:
        """Deliver the queue in order. ``drain=False``: one pass over what is queued now; what
        is posted meanwhile waits for the next linger (a drain sent each result the moment the
        previous PUT came back: one small event per PUT while tasks finished fast).
        ``urgent_only``: only the claims (and other events that never linger) at the head of the
        order; the results and renewals behind them stay queued for their own linger."""
        answered = False  # only an answer of the homeserver ends island mode, never an empty queue
        while batch := self.outbox.pending():
            held: list[Group] = []  # urgent_only: left to linger
            for g in ride(claims_first(coalesce(batch))):
                if urgent_only and (g.etype in _LINGER_TYPES or any(
                        o.run == g.run and o.tasks & g.tasks for o in held)):
                    held.append(g)  # lingers (an event never overtakes one about the same task)
                    continue
                txn = self.outbox.txn_id(g.entries[0]) + (f"-{g.entries[-1]}" if len(g.entries) > 1 else "")
                try:
                    await self.room.send(g.etype, g.body, txn)
                except RoomError as exc:
                    if not exc.transient:
                        answered = True
                        # A refusal (e.g. removed from the room) is not fixed by retrying: drop it.
                        self.log(f"event refused, dropped: {exc.what}")
                        self.outbox.sent_many(g.entries)
                        if g.etype == Kind.CLAIM.etype:
                            for idx, _ in protocol.parse(g.etype, self.node, g.body).items():
                                self.claims.pop((str(g.body.get("run")), idx), None)
                        continue
                    self._go_island(exc)
                    return
                self.outbox.sent_many(g.entries)
                mark("put", g.etype.rsplit(".", 1)[-1], len(g.entries))
                if g.etype in (Kind.CLAIM.etype, Kind.LEASE.etype):
                    self._claim_sent.set()
                answered = True
            if not drain:
                break
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
            if self.ledger.rejected:  # e.g. a result from a node that does not hold the task
                for why in self.ledger.rejected:
                    self.log(f"refused: {why}")
                self.ledger.rejected.clear()
            if msg.kind is Kind.CLAIM:
                for idx, epoch in msg.items():
                    self._claim_seen(msg.text("run"), idx, epoch, msg.node)
            if msg.node == self.node:
                self._own_seen = time.monotonic()
                if msg.kind in (Kind.CLAIM, Kind.LEASE) and "at_ms" in msg.body:
                    self._confirmed(msg)
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
        mark("run_added", run_id[-4:], len(parsed.plan))
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
                mark("won", run[-4:], idx)
                h = self.held[key] = Held(run, idx, epoch, time.monotonic(), won=self.clock.now())
                self._renew_due = min(self._renew_due, h.renewed + self.cfg.lease_s / 3)
            else:
                self.counters.lost += 1  # someone was first: back off
        elif mine is not None and rec.winners.get(mine, self.node) != self.node:
            pass  # ours will be seen (and lose) shortly

    def _confirmed(self, msg: protocol.Message) -> None:
        """Own claim / renewal seen in the timeline: the lease of its tasks is fresh from when it
        was queued (``at_ms``, this machine's monotonic clock: a lower bound of when it landed)."""
        at = msg.num("at_ms") / 1000.0
        for idx, epoch in msg.items():
            h = self.held.get((msg.text("run"), idx))
            if h is not None and h.epoch == epoch:
                h.confirmed = max(h.confirmed, at)
                mark("confirmed", msg.text("run")[-4:], idx, f"{at:.6f}")

    def _rec(self, run: str, idx: int) -> TaskRec | None:
        r = self.ledger.runs.get(run)
        return r.tasks[idx] if r is not None and 0 <= idx < len(r.tasks) else None

    # -- deciding -------------------------------------------------------------------------

    def _capable(self, t: TaskRec) -> bool:
        return all(c in self.cfg.caps for c in t.plan.caps)

    def _scan(self, live: frozenset[str]) -> tuple[list[_Cand], list[_Cand], set[tuple[str, int]], int]:
        """Ready and lapsed tasks this node could claim, the keys of the ready ones, and how many
        it could run are held by a node whose lease has not lapsed (this one included). The
        scan walks every open task of every run, so it is kept while nothing it reads changed
        (the ledger, the read horizon, the live nodes): ticks woken by this node's own posts
        reuse it."""
        key = (self.ledger.version, self._fresh, live)
        if self._scanned is not None and self._scanned[0] == key:
            return self._scanned[1], self._scanned[2], self._scanned[3], self._scanned[4]
        ready: list[_Cand] = []
        lapsed: list[_Cand] = []
        held = 0
        for pos, (run_id, run) in enumerate(self.ledger.runs.items()):
            if self.parsed.get(run_id) is None:
                continue
            tasks = self._open.get(run_id)
            if tasks is None:
                tasks = [t for t in run.tasks if not t.plan.caps or self._capable(t)]
            still: list[TaskRec] = []
            for t in tasks:
                if t.results or t.skipped_by:
                    continue  # finished for good (results and skips are never taken back)
                still.append(t)
                if t.winners:
                    epoch = t.epoch
                    if epoch not in t.released:
                        # Held by someone: never ready, only possibly lapsed (the cheap part of
                        # Ledger.lapsed first: most holders were heard within their lease).
                        if self._fresh - t.heard > t.lease_s.get(epoch, 30.0) \
                                and t.winners[epoch] != self.node and self.ledger.lapsed(t, self._fresh):
                            lapsed.append(((False, pos, b""), run, t, epoch + 1))
                        else:
                            held += 1
                        continue
                if self.ledger.ready(run, t):
                    ready.append((self._order(pos, run, t, live), run, t, self.ledger.next_epoch(t)))
                elif self.ledger.lapsed(t, self._fresh) and t.holder != self.node:
                    lapsed.append(((False, pos, b""), run, t, t.epoch + 1))
            # The next scan walks only what is still open: a long run's finished bulk, and the
            # tasks this node is not capable of, are left behind once.
            self._open[run_id] = still
        ready.sort(key=lambda c: c[0])
        keys = {(c[1].run_id, c[2].plan.idx) for c in ready}
        self._scanned = (key, ready, lapsed, keys, held)
        return ready, lapsed, keys, held

    def _order(self, pos: int, run: RunRec, t: TaskRec, live: frozenset[str]) -> tuple[bool, int, bytes]:
        """Claim order: first the tasks this node is the rendezvous choice for among the live
        nodes able to take them (highest hash of node/run/task), then the rest, in this node's
        hash order. Racing nodes thus mostly claim disjoint sets; the rest is stealing.
        Within each, the older run first (``pos``, its place in the timeline): claims, results
        and renewals are one event per run, so a node that works through one run at a time
        posts one event where interleaving four runs posted four."""
        key = (run.run_id, t.plan.idx)
        got = self._prefer.get(key)
        if got is None or got[0] != live:
            able = [n for n in live if n not in run.declined
                    and set(t.plan.caps) <= set(self.ledger.nodes[n].body.get("caps") or ())
                    ] if t.plan.caps else [n for n in live if n not in run.declined]
            choice = max(able or [self.node], key=lambda n: _hash(n, run.run_id, t.plan.idx))
            got = self._prefer[key] = (live, choice, _hash(self.node, run.run_id, t.plan.idx))
        return got[1] != self.node, pos, got[2]

    def _live_nodes(self) -> frozenset[str]:
        """Nodes heard within three hello intervals, this one included."""
        now = self.clock.now()
        heard = self.ledger.heard_node
        live = {n for n, hello in self.ledger.nodes.items()
                if now - heard.get(n, -math.inf) <= 3 * int(hello.body.get("hello_ms") or 5000) / 1000}
        return frozenset(live | {self.node})

    def _tick(self) -> None:
        now = time.monotonic()
        self._answer_revokes()
        # Renew held leases, all of them in one event per run; not as an island (a renewal is
        # about now: late ones would only pile up in the queue; the first tick after the heal
        # renews). Renewals go on the plain monotonic clock: after a pause they are due at once.
        # (``_renew_due``: no held task's renewal is due before it; ticks come about once per
        # task, so the walk over everything held is saved on the others.)
        if not self.island and now >= self._renew_due:
            third = self.cfg.lease_s / 3
            if any(now - h.renewed >= third for h in self.held.values()):
                by_run: dict[str, list[list[int]]] = defaultdict(list)
                for h in self.held.values():
                    h.renewed = now
                    by_run[h.run].append([h.idx, h.epoch])
                for run_id, pairs in by_run.items():
                    self.post_batch(Kind.LEASE, run_id, pairs)
            self._renew_due = min((h.renewed for h in self.held.values()), default=math.inf) + third
        self._settle_takeovers()
        self._start_won()
        if self.island or self.token is None:
            return
        if self.cfg.jobs + self.cfg.batch - len(self.held) - len(self.claims) <= 0:
            return  # full whatever the scan would say (``room`` below is at most this)
        live = self._live_nodes()
        ready_all, lapsed_all, ready_keys, held_all = self._scan(live)
        # What this node claimed or holds is not a candidate. The scan is kept across ticks, so
        # only its size is corrected here (claims and held are few; the ready tasks many).
        mine = self.claims.keys() | self.held.keys()
        lapsed = [c for c in lapsed_all if (c[1].run_id, c[2].plan.idx) not in mine]
        n_ready = len(ready_all) - sum(1 for k in mine if k in ready_keys)
        # Work ahead of the running tasks hides the claim round trip behind work and makes few,
        # large claim events; capped by a fair share, so a node never hoards what others could
        # run. The share is of the work left (ready, held by live nodes, claimed by this one), not
        # of the ready tasks alone: as others' claims drain the ready ones, a share of those alone
        # shrank with every claim and a run ended in a storm of one-task claims (traced: a third
        # of all claim events), each an event for the homeserver and every reader, and a round trip.
        by_time = math.ceil(self.cfg.ahead_s * self.cfg.jobs / max(self._task_s, 1e-3))
        fair = math.ceil((n_ready + held_all + len(self.claims)) / len(live))
        ahead = max(self.cfg.jobs, min(self.cfg.batch, by_time, fair - self.cfg.jobs))
        room = self.cfg.jobs + ahead - len(self.held) - len(self.claims)
        waiting = len(self.claims) + sum(1 for h in self.held.values() if not h.started)
        if room <= 0 or (waiting and room < ahead // 2 and not lapsed):
            return  # enough in hand: top up in a batch once half of it is gone (few, large claims)
        ready = (c for c in ready_all if (c[1].run_id, c[2].plan.idx) not in mine)
        claim: dict[str, list[list[int]]] = defaultdict(list)
        for _, run, t, epoch in itertools.islice(itertools.chain(lapsed, ready), room):  # takeovers first
            self.claims[(run.run_id, t.plan.idx)] = epoch
            self.counters.claimed += 1
            if epoch and t.epoch not in t.released:
                self.counters.takeovers += 1
                self.log(f"task {t.plan.idx} {t.plan.name} of {run.run_id}: {t.holder} silent past "
                         f"its lease, claiming epoch {epoch} (revokes epoch {epoch - 1})")
            claim[run.run_id].append([t.plan.idx, epoch])
        # A claim goes at once (the results of its run queued so far ride in it): a top-up that
        # lingered with the results (up to a second) let a busy node's 20-100 ms tasks run out
        # before it was even sent (traced: nodes then sat idle ~40% of a room run, waiting).
        for run_id, pairs in claim.items():
            self.post_batch(Kind.CLAIM, run_id, pairs, lease_ms=int(self.cfg.lease_s * 1000))

    def _answer_revokes(self) -> None:
        # Only news in the ledger can call for an answer: what answer() acts on was acted on
        # when it was read (a held task is dropped or marked answered), and a task this node
        # wins comes with a ledger change itself.
        if self.ledger.version == self._answered:
            return
        self._answered = self.ledger.version
        release, contradict = revoke.answer(self.held, self._rec, self.node, self.log)
        for run_id, pairs in release.items():
            self.post_batch(Kind.RELEASE, run_id, pairs)
        for run_id, pairs in contradict.items():
            self.post_batch(Kind.LEASE, run_id, pairs)

    def _settle_takeovers(self) -> None:
        if not self.island:
            for run_id, pairs in revoke.due_starts(self.held, self._rec, self.clock.now(),
                                                   self.cfg.lease_s).items():
                self.post_batch(Kind.START, run_id, pairs)

    def _startable(self, h: Held) -> bool:
        rec = self._rec(h.run, h.idx)
        return rec is not None and revoke.startable(self.ledger, rec, h, self.node, self.cfg.lease_s)

    def _start_won(self) -> None:
        busy = sum(1 for h in self.held.values() if h.started)
        if busy >= self.cfg.jobs:
            return
        pos = {run_id: i for i, run_id in enumerate(self.ledger.runs)}  # older run first (see _order)
        for h in sorted(self.held.values(), key=lambda h: (pos.get(h.run, 0), h.idx)):
            if busy >= self.cfg.jobs:
                break
            if h.started or not self._startable(h):
                continue
            h.started = True
            busy += 1
            job = asyncio.get_running_loop().create_task(self._run(h))
            self._runners.add(job)
            job.add_done_callback(self._runners.discard)
        if busy < self.cfg.jobs and trace.enabled():  # why no job runs, for the timeline
            waiting = [h for h in self.held.values() if not h.started]
            mark("idle", len(waiting), sum(1 for h in waiting if not self._startable(h)),
                 sum(1 for h in waiting if time.monotonic() - h.confirmed >= revoke.FRESH * self.cfg.lease_s),
                 len(self.claims))

    async def _run(self, h: Held) -> None:
        from cheng_build.cis.node.localrun import Outcome, run_task

        parsed = self.parsed[h.run]
        assert parsed is not None
        self.log(f"running task {h.idx} {parsed.dag.tasks[h.idx].name} of {h.run} (epoch {h.epoch})")
        rec = self._rec(h.run, h.idx)
        confirmed = bool(rec and rec.confirmed)
        mark("start", h.run[-4:], h.idx)
        began = time.monotonic()
        try:
            out = await asyncio.to_thread(run_task, self.cfg.home, parsed.dag, h.idx, self.node,
                                          confirmed=confirmed)
        except Exception as exc:  # the engine could not even start it: report, never hang
            out = Outcome(TaskStatus.FAILED, None, f"the node could not run it: {exc}"[:300], "")
        self.counters.ran += 1
        # The mean of the tasks timed so far, then a moving average of the last ~8: the guess
        # is gone after the first task (claims are sized by it: see ahead_s).
        self._timed += 1
        self._task_s += (time.monotonic() - began - self._task_s) / min(self._timed, 8)
        mark("end", h.run[-4:], h.idx)
        self.post(Kind.STATE, h.run, h.idx, epoch=h.epoch, state=out.status.value,
                  exit_code=out.exit_code, reason=out.reason, island=self.island,
                  local_run=out.local_run)
        self.held.pop((h.run, h.idx), None)
        # The next won task starts now, not at the next tick (a hop through the loop's wake-up
        # per task: traced 0.1-0.2 s of each node's room run).
        self._start_won()
        if not self.held and not self.claims:
            # Nothing running, won or claimed: no result of this node can join this one, so it
            # goes now (the last results of a run would otherwise wait out a linger each).
            self._full = True
            self._urgent.set()
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

    def _relay_stop(self, stop: asyncio.Event) -> asyncio.Task[None]:
        """The coroutines wait on the agent's own flags (see :mod:`.flag`): ``stop`` sets them
        all, through one task per ``stop`` event."""
        if self._relay is None or self._relay[0] is not stop:
            flags = (self._wake, self._claim_sent, self._queued, self._urgent)
            self._relay = (stop, asyncio.get_running_loop().create_task(relay(stop, flags)))
        return self._relay[1]

    async def _reader(self, stop: asyncio.Event) -> None:
        self._relay_stop(stop)
        backoff = 0.2
        while not stop.is_set():
            asked = self.clock.now()
            self._claim_sent.clear()  # one PUT before this read is in it; one during it may not be
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
            mark("read", len(batch.events))
            self.ingest(batch, asked if batch.events else self.clock.now())
            if batch.events and self._busy():
                mark("pace", f"{self._pace():.3f}")
                await self._claim_sent.wait(self._pace())

    def _linger_max(self) -> int:
        """Queued events that end a linger early: three times as many while busy (its results
        then go out about once per busy linger, in a few large events, not every 32 tasks)."""
        return self.cfg.linger_max * (3 if self._busy() else 1)

    def _pace(self) -> float:
        """How long a busy node lets news gather before it reads again: the more work its won
        tasks hold, the longer (no news of others can start one sooner), but never past that
        work (nor past the PUT of its own claim or renewal: reading those back is what starts
        its next tasks, see ``_claim_sent``), and at most a tenth of the lease, so that a
        revocation is answered well within it."""
        return min(self.cfg.lease_s / 10, self._cover())

    def _cover(self) -> float:
        """Seconds of work in hand: the won tasks not started yet, at this node's task time."""
        waiting = sum(1 for h in self.held.values() if not h.started)
        return waiting / self.cfg.jobs * self._task_s

    def _busy_linger(self) -> float:
        return min(self.cfg.busy_linger_s, self.cfg.lease_s / 10)

    def _linger_left(self) -> float:
        """Seconds the queued results and renewals may still wait (a full linger when none is
        queued: the wait then ends early on whatever is posted urgently)."""
        linger = self._busy_linger() if self._busy() else self.cfg.linger_s
        if self._linger_from is None:
            return linger
        return max(0.0, self._linger_from + linger - time.monotonic())

    def _busy(self) -> bool:
        """A job's worth of won tasks waits beyond the running ones: no news can start one sooner."""
        return len(self.held) >= 2 * self.cfg.jobs and not self.island

    async def _flusher(self, stop: asyncio.Event) -> None:
        """Deliver the outbox in order, on its own: a slow PUT never delays starting a task.
        Results and renewals linger a moment first so that neighbours merge into one event;
        a claim (or anything else) goes at once."""
        self._relay_stop(stop)
        while not stop.is_set():
            self._queued.clear()
            if not self._urgent.is_set():
                await self._urgent.wait(self._linger_left())
            self._urgent.clear()
            # A claim goes at once; the results queued before it keep lingering to their own
            # deadline, so that a busy node sends about one results event per linger, not one
            # with every claim (traced: as many state events as claims, each paid by the
            # homeserver and by every syncing client).
            urgent_only = not self._full and self._linger_left() > 0 and not self.island
            if not urgent_only:
                self._full = False
                self._lingering = 0
                self._linger_from = None
            await self._flush(drain=False, urgent_only=urgent_only)
            left = self.outbox.queued()
            if left and not self.island:
                if not urgent_only and self._linger_from is None:
                    self._linger_from = time.monotonic()  # posted during the pass: linger anew
                if left >= self._linger_max():
                    self._full = True
                    self._urgent.set()
                continue  # linger (or go at once) for what is left
            # An island retries every half second; otherwise wait for the next post.
            await self._queued.wait(0.5 if self.island else 5.0)

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (running tasks finish and report first)."""
        loop = asyncio.get_running_loop()
        reader = loop.create_task(self._reader(stop))
        flusher = loop.create_task(self._flusher(stop))
        watch = loop.create_task(self.clock.watch(stop))
        stopping = self._relay_stop(stop)
        last_hello = time.monotonic()
        try:
            while not stop.is_set():
                for job in (reader, flusher):
                    if job.done():
                        job.result()  # a refusal ends the node with its reason
                self._wake.clear()
                self._tick()
                # Any event of this node tells the others it is alive (the ledger hears a node
                # on each of its events): a hello is due only after a quiet interval.
                if time.monotonic() - max(last_hello, self._own_seen) >= self.cfg.hello_s:
                    last_hello = time.monotonic()
                    self._hello()
                await self._wake.wait(0.25 if self.island else 1.0)
        finally:
            if self._runners:
                await asyncio.gather(*self._runners, return_exceptions=True)
            for job in (reader, flusher, watch, stopping):
                job.cancel()
                try:
                    await job
                except (asyncio.CancelledError, RoomError):
                    pass
            await self._flush()  # what the last tasks reported
            self.outbox.close()


def _hash(node: str, run: str, idx: int) -> bytes:
    return hashlib.blake2s(f"{node}/{run}/{idx}".encode(), digest_size=8).digest()


async def _sleep_or(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
