"""The client scheduler of bitswap: one ``FetchSession`` walks a DAG from its roots, asking the
peers of a :class:`~.node.BitswapNode` for what the store lacks.

Blocks already in the store are read locally (never requested again, so an interrupted fetch
resumes), missing ones are requested with ``want-block, send-dont-have`` from one peer at a time,
up to ``window`` blocks in flight per peer. A peer whose bytes hash to nothing we asked it for is
dropped (and named in ``SessionStats.dropped``), and whatever it still owed us is requested from
the remaining peers. A peer that says DONT_HAVE, disconnects or stays silent for ``stall_s`` loses
its blocks the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from cheng_build.core.errors import NotFoundError, TransportError
from cheng_build.pkg.fetch import bitswap as bs
from cheng_build.pkg.fetch import libp2p_adapter as lp
from cheng_build.pkg.fetch.blocks import child_cids, cid_text, dag_size, to_cid
from cheng_build.pkg.fetch.p2p.node import BitswapNode
from cheng_build.pkg.fetch.sink import BlockSink

if TYPE_CHECKING:
    from libp2p.peer.id import ID
    from multiaddr import Multiaddr

# Received blocks are handed to the store's worker thread about this many bytes at a time; it
# stages them as temp files and ``BlockSink`` makes them durable together (one hash per block:
# the one the node recognised it by).
PUT_BATCH_BYTES = 4 * 1024 * 1024


@dataclass
class SessionStats:
    """What one fetch session did; ``dropped`` names each peer dropped and why."""

    blocks_fetched: int = 0
    bytes_fetched: int = 0
    blocks_local: int = 0
    dropped: list[tuple[str, str]] = field(default_factory=list)
    first_block_at: float | None = None



class FetchSession:
    """One DAG fetch: what is wanted, from whom, and what came back verified."""

    def __init__(self, node: BitswapNode, roots: list[bytes], *, window: int, stall_s: float,
                 on_block: Callable[[int], None] | None,
                 on_total: Callable[[int], None] | None = None) -> None:
        self.node = node
        self.roots = roots
        self.window = window
        self.stall_s = stall_s
        self.on_block_cb = on_block
        self.on_total_cb = on_total
        self.stats = SessionStats()
        self.todo: deque[bytes] = deque()
        self.inflight: dict[bytes, ID] = {}
        self.asked: set[bytes] = set()
        self.refused: dict[bytes, set[ID]] = {}
        self.peers: list[ID] = []
        self.names: dict[ID, str] = {}
        self.last_seen: dict[ID, float] = {}
        self.changed = trio.Event()
        self.error: Exception | None = None
        self.unsaved: list[tuple[bytes, bytes | memoryview]] = []
        self.unsaved_bytes = 0
        self.save_wanted = trio.Event()
        self.saving = trio.Lock()
        self.sink = BlockSink(node.store)

    # callbacks from the node (synchronous, in the trio thread) --------------------------------

    def on_block(self, peer: ID, real: bytes, data: bytes | memoryview) -> None:
        if peer not in self.peers:
            return
        self.last_seen[peer] = trio.current_time()
        owner = self.inflight.get(real)
        if owner is None:
            if real and real in self.asked:
                return  # a duplicate of something another peer already gave us
            self._drop(peer, f"sent a block whose bytes hash to {self._show(real)}, "
                             "which is not a block we asked it for (corrupt or forged data)")
            return
        del self.inflight[real]
        blob = data  # a view of the received message: staged as is, never copied
        self.unsaved.append((real, blob))
        self.unsaved_bytes += len(blob)
        if self.unsaved_bytes >= PUT_BATCH_BYTES:
            self.save_wanted.set()
        self.stats.blocks_fetched += 1
        self.stats.bytes_fetched += len(blob)
        if self.stats.first_block_at is None:
            self.stats.first_block_at = trio.current_time()
        if self.on_total_cb is not None and real in self.roots:
            total = dag_size(real, blob)
            if total is not None:
                self.on_total_cb(total)
        if self.on_block_cb is not None:
            self.on_block_cb(len(blob))
        self._expand(real, blob)
        self._wake()

    def on_presence(self, peer: ID, cid_bytes: bytes, kind: bs.PresenceType) -> None:
        if peer not in self.peers:
            return
        self.last_seen[peer] = trio.current_time()
        if kind == bs.PresenceType.DONT_HAVE and self.inflight.get(cid_bytes) == peer:
            del self.inflight[cid_bytes]
            self.refused.setdefault(cid_bytes, set()).add(peer)
            self.todo.appendleft(cid_bytes)
            self._wake()

    def on_peer_lost(self, peer: ID, why: str) -> None:
        if peer in self.peers:
            self._release(peer)
            self.peers.remove(peer)
            self._wake()

    # internals --------------------------------------------------------------------------------

    @staticmethod
    def _show(cid_bytes: bytes) -> str:
        return cid_text(cid_bytes)

    def _wake(self) -> None:
        self.changed.set()

    def _release(self, peer: ID) -> None:
        for c, owner in list(self.inflight.items()):
            if owner == peer:
                del self.inflight[c]
                self.todo.appendleft(c)

    def _drop(self, peer: ID, why: str) -> None:
        name = self.names.get(peer, str(peer))
        self.stats.dropped.append((name, why))
        self._release(peer)
        if peer in self.peers:
            self.peers.remove(peer)
        self.node.hang_up_soon(peer)
        self._wake()

    def _expand(self, cid_bytes: bytes, data: bytes | memoryview) -> None:
        """Queue the children of a block we hold; walk cached subtrees locally (resume)."""
        stack = [(cid_bytes, data)]
        store = self.node.store
        while stack:
            c, d = stack.pop()
            for child in child_cids(c, d):
                if child in self.asked:
                    continue
                self.asked.add(child)
                cc = to_cid(child)
                if store.has(cc):
                    self.stats.blocks_local += 1
                    if child[:2] != b"\x01\x55":  # only dag-pb nodes have links to follow
                        stack.append((child, store.get(cc)))
                else:
                    self.todo.append(child)

    def _dispatch(self) -> None:
        if not self.peers:
            return
        load = {p: 0 for p in self.peers}
        for owner in self.inflight.values():
            if owner in load:
                load[owner] += 1
        # Wants go out in batches of at least ``refill`` per peer (while that many are to be
        # asked): one message, yamux frame, noise message and send per batch rather than per
        # received block, on both ends. The window still keeps >= 3/4 of it in flight.
        refill = max(1, self.window // 4)
        if len(self.todo) >= refill and all(self.window - load[p] < refill for p in self.peers):
            return
        batches: dict[ID, list[bs.WantEntry]] = {}
        skipped: list[bytes] = []
        while self.todo:
            c = self.todo[0]
            refused = self.refused.get(c, set())
            candidates = [p for p in self.peers if p not in refused]
            if not candidates:
                self.todo.popleft()
                skipped.append(c)
                continue
            best = min(candidates, key=lambda p: load[p])
            if load[best] >= self.window:
                break
            self.todo.popleft()
            if load[best] == 0:
                # It owed us nothing until now: its silence clock starts with this want.
                self.last_seen[best] = trio.current_time()
            load[best] += 1
            self.inflight[c] = best
            batches.setdefault(best, []).append(
                bs.WantEntry(c, priority=1, want_type=bs.WantType.BLOCK, send_dont_have=True))
        if skipped:
            self.error = NotFoundError(
                f"no peer has block {self._show(skipped[0])}"
                + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""),
                why="every reachable peer answered DONT_HAVE or was dropped")
        for peer, wants in batches.items():
            self.node.send_wants(peer, wants)

    async def run(self, peers: list[tuple[Multiaddr, ID]]) -> SessionStats:
        node = self.node
        store = node.store
        for root in self.roots:
            if root in self.asked:
                continue
            self.asked.add(root)
            if store.has(to_cid(root)):
                self.stats.blocks_local += 1
                self._expand(root, store.get(to_cid(root)))
            else:
                self.todo.append(root)
        if not self.todo:
            return self.stats
        dial_errors: list[str] = []
        for addr, pid in peers:
            if pid in self.names:
                continue  # a second address of a peer we already have
            try:
                await lp.dial(node.host, addr, pid)
            except TransportError as exc:
                dial_errors.append(exc.what)
                continue
            self.peers.append(pid)
            self.names[pid] = f"{addr}/p2p/{pid}"
        if not self.peers:
            raise TransportError("no peer could be reached", why="\n".join(dial_errors) or None,
                                 how="check --peers / PKG_PEERS and that the providers run")
        node.sessions.append(self)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._saver)
                try:
                    await self._loop()
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            # What arrived verified is kept even when the fetch fails: the next one resumes.
            with trio.CancelScope(shield=True):
                try:
                    await self._save()
                finally:
                    await trio.to_thread.run_sync(self.sink.close)
            node.sessions.remove(self)
        return self.stats

    async def _save(self) -> None:
        # Shielded: once blocks are taken off ``unsaved`` they must reach the store even if the
        # session is being cancelled (to_thread.run_sync raises Cancelled before it starts a
        # thread, which lost a whole batch of verified blocks when a fetch finished mid-save).
        with trio.CancelScope(shield=True):
            async with self.saving:
                items, self.unsaved, self.unsaved_bytes = self.unsaved, [], 0
                if items:
                    await trio.to_thread.run_sync(self.sink.stage, items)

    async def _saver(self) -> None:
        while True:
            await self.save_wanted.wait()
            self.save_wanted = trio.Event()
            await self._save()

    async def _loop(self) -> None:
        while self.todo or self.inflight:
            self._dispatch()
            if self.error is not None:
                raise self.error
            if not self.peers:
                raise NotFoundError(
                    f"{len(self.todo) + len(self.inflight)} blocks still missing",
                    why="every peer was dropped or disconnected:\n"
                        + "\n".join(f"{n}: {w}" for n, w in self.stats.dropped))
            self.changed = trio.Event()
            with trio.move_on_after(1.0):
                await self.changed.wait()
            now = trio.current_time()
            busy = {o for o in self.inflight.values()}
            for p in list(self.peers):
                if p in busy and now - self.last_seen.get(p, now) > self.stall_s:
                    self._drop(p, f"sent nothing for {self.stall_s:g} s while owing blocks")


async def fetch(node: BitswapNode, roots: list[bytes], peers: list[tuple[Multiaddr, ID]], *,
                window: int = 32, stall_s: float = 15.0,
                on_block: Callable[[int], None] | None = None,
                on_total: Callable[[int], None] | None = None) -> SessionStats:
    """Fetch the DAGs under binary CIDs ``roots`` from ``peers`` [(multiaddr, peer id)] through
    ``node`` (which must be running).

    Raises:
        TransportError: no peer could be reached.
        NotFoundError: blocks remain that no reachable peer would give us.
    """
    session = FetchSession(node, roots, window=window, stall_s=stall_s, on_block=on_block,
                           on_total=on_total)
    try:
        return await session.run(peers)
    finally:
        # Hang up on the peers we dialled for this session (unless another session uses
        # them): py-libp2p does not close connections when its host stops, and a provider
        # only learns we are gone when the connection closes.
        with trio.move_on_after(2.0) as scope:
            scope.shield = True
            for pid in session.names:
                if not any(pid in s.names for s in node.sessions if isinstance(s, FetchSession)):
                    await node.disconnect(pid)


__all__ = ["FetchSession", "SessionStats", "fetch"]
