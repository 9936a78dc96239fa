"""Bitswap over py-libp2p: one ``BitswapNode`` per host serves a store and runs fetch sessions.

We speak bitswap 1.2.0 ourselves (codec in ``bitswap.py``) on top of py-libp2p streams rather
than using py-libp2p's bitswap module, whose client and provider have defects 1 and 4 of issue 6
(see ``libp2p_adapter.py``). Like go and JS peers, a node sends every message on one stream it
opened to that peer and kept open, and only reads the streams the peer opened.

A fetch session walks the DAG from a root: blocks already in the store are read locally (never
requested again, so an interrupted fetch resumes), missing ones are requested with
``want-block, send-dont-have`` from one peer at a time, up to ``window`` blocks in flight per
peer. A received block's CID is recomputed from its prefix and bytes; a peer whose bytes hash to
nothing we asked it for is dropped (and named in ``SessionStats.dropped``), and whatever it still
owed us is requested from the remaining peers. A peer that says DONT_HAVE, disconnects or stays
silent for ``stall_s`` loses its blocks the same way.

The store is duck-typed: ``has(cid)``, ``get(cid) -> bytes``, ``put(cid, data)`` with
multiformats CIDs (``cas.blockstore.Blockstore`` or any object with those methods).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
from multiformats import CID

from cheng_build.core.errors import DigestMismatchError, NotFoundError, TransportError
from cheng_build.pkg.fetch import bitswap as bs
from cheng_build.pkg.fetch import libp2p_adapter as lp
from cheng_build.pkg.fetch.blocks import BlockStore, block_cid, child_cids, cid_text, dag_size, to_cid
from cheng_build.pkg.fetch.sink import BlockSink

log = logging.getLogger(__name__)

def _cid(cid_bytes: bytes) -> CID:
    return to_cid(cid_bytes)


@dataclass(slots=True)
class _PeerLink:
    """What we owe one peer, sent on our own outbound stream (defects 1 and 4)."""

    peer: Any
    wake: trio.Event = field(default_factory=trio.Event)
    wants: list[bs.WantEntry] = field(default_factory=list)
    presences: list[bs.Presence] = field(default_factory=list)
    serve: OrderedDict[bytes, bs.WantEntry] = field(default_factory=OrderedDict)
    alive: bool = True
    streams_opened: int = 0


@dataclass(slots=True)
class _Read:
    """A batch of blocks being read for a peer on a worker thread."""

    done: trio.Event = field(default_factory=trio.Event)
    result: tuple[list[tuple[bytes, bytes]], list[bytes]] = ([], [])


@dataclass
class SessionStats:
    """What one fetch session did; ``dropped`` names each peer dropped and why."""

    blocks_fetched: int = 0
    bytes_fetched: int = 0
    blocks_local: int = 0
    dropped: list[tuple[str, str]] = field(default_factory=list)
    first_block_at: float | None = None


# Messages carrying at least this many block bytes are hashed on a worker thread (a bulk
# transfer); smaller ones inline, where the thread hop would only add latency (the first block).
THREAD_HASH_BYTES = 512 * 1024
# Wants we queue per peer; beyond this a peer is told DONT_HAVE (a bound on untrusted input:
# one 4 MiB message can carry ~100,000 wants).
MAX_QUEUED_WANTS = 16384
# Blocks read from the store per worker-thread hop when serving.
SERVE_READ_BATCH = 8
# Received blocks are handed to the store's worker thread about this many bytes at a time; it
# stages them as temp files and ``BlockSink`` makes them durable together (one hash per block:
# the one that recognised it here).
PUT_BATCH_BYTES = 4 * 1024 * 1024


def _real_cid(prefix: bytes, data: bytes | memoryview) -> bytes:
    """The CID ``data`` hashes to under ``prefix``; empty when the prefix is not one we verify."""
    try:
        return block_cid(prefix, data)
    except (bs.WireError, DigestMismatchError):
        return b""


def _payload(msg: bs.Message) -> int:
    return sum(len(b.data) for b in msg.blocks) + sum(len(d) for d in msg.blocks_v100)


def _recognise(msg: bs.Message) -> list[bytes]:
    """The real CID of each block in ``msg`` (1.1+ blocks, then 1.0.0 ones): one hash each."""
    return [*(_real_cid(b.prefix, b.data) for b in msg.blocks),
            *(_real_cid(b"\x00\x70\x12\x20", d) for d in msg.blocks_v100)]


class BitswapNode:
    """The bitswap protocol on one host: serve ``store`` to peers, fetch into it.

    Use as ``async with BitswapNode.running(host, store) as node:`` inside ``host.run(...)``.
    """

    def __init__(self, host: Any, store: BlockStore, *, serve: bool = True,
                 max_peers: int | None = None) -> None:
        self.host = host
        self.store = store
        self.serving = serve
        self.max_peers = max_peers
        self._links: dict[Any, _PeerLink] = {}
        self._readers: dict[Any, set[trio.CancelScope]] = {}
        self._sessions: list[FetchSession] = []
        self._nursery: trio.Nursery | None = None
        self.blocks_served = 0
        self.streams_opened = 0  # outbound bitswap streams, all peers, since start
        self.bytes_served = 0
        for proto in bs.PROTOCOLS:
            host.set_stream_handler(proto, self._on_inbound)
        lp.on_disconnect(host, self._on_disconnect)

    @classmethod
    @asynccontextmanager
    async def running(cls, host: Any, store: BlockStore, **kw: Any) -> AsyncIterator[BitswapNode]:
        node = cls(host, store, **kw)
        async with trio.open_nursery() as nursery:
            node._nursery = nursery
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()

    # --- inbound: the peer's stream, read only ------------------------------------------------

    async def _on_inbound(self, stream: Any) -> None:
        peer = stream.muxed_conn.peer_id
        if self.max_peers is not None and peer not in self._links \
                and len(self._links) >= self.max_peers:
            await stream.reset()
            return
        reader = lp.FrameReader(lp.cap_window(stream), bs.MAX_MESSAGE_SIZE)
        scope = trio.CancelScope()
        self._readers.setdefault(peer, set()).add(scope)
        try:
            with scope:
                while True:
                    try:
                        body = await reader.next()
                    except ValueError as exc:
                        log.info("bad framing from %s: %s", peer, exc)
                        break
                    if body is None:
                        break
                    try:
                        msg = bs.decode(body)
                    except bs.WireError as exc:
                        log.info("bad bitswap message from %s: %s", peer, exc)
                        break
                    reals = None
                    if self._sessions and _payload(msg) >= THREAD_HASH_BYTES:
                        # Hash on a worker thread (the hash releases the GIL): py-libp2p's
                        # connection task keeps receiving and decrypting the next frames
                        # meanwhile, on the other core.
                        reals = await trio.to_thread.run_sync(_recognise, msg)
                    self._on_message(peer, msg, reals)
        finally:
            # A stream ending says nothing about the peer: JS bitswap sends every message on a
            # stream of its own and closes it. Only a disconnect retires the peer.
            self._readers[peer].discard(scope)
            if not self._readers[peer]:
                del self._readers[peer]
            with trio.move_on_after(1.0):  # a dead connection must not hold this task
                try:
                    await stream.close()
                except lp.STREAM_ERRORS:
                    pass

    def _on_disconnect(self, peer: Any) -> None:
        """The peer's last connection closed: stop reading from and serving it."""
        for scope in list(self._readers.get(peer, ())):
            scope.cancel()
        link = self._links.get(peer)
        if link is not None:
            link.alive = False
            link.wake.set()

    def _on_message(self, peer: Any, msg: bs.Message, reals: list[bytes] | None = None) -> None:
        """Act on one message; ``reals`` are its blocks' CIDs as their bytes hash (computed
        here when not given), 1.1+ blocks first, then 1.0.0 ones."""
        if msg.wants and self.serving:
            self._queue_wants(peer, msg)
        if msg.blocks or msg.blocks_v100:
            if reals is None:
                reals = _recognise(msg)
            datas = [b.data for b in msg.blocks] + list(msg.blocks_v100)
            for real, data in zip(reals, datas, strict=True):
                for s in list(self._sessions):
                    s.on_block(peer, real, data)
        for p in msg.presences:
            for s in list(self._sessions):
                s.on_presence(peer, p.cid, p.type)

    # --- serving ------------------------------------------------------------------------------

    def _queue_wants(self, peer: Any, msg: bs.Message) -> None:
        link = self._link(peer)
        if msg.full:
            link.serve.clear()
        for e in msg.wants:
            if e.cancel:
                link.serve.pop(e.cid, None)
                continue
            try:
                cid = _cid(e.cid)
                have = self.store.has(cid)
            except Exception:
                have = False
            if not have:
                if e.send_dont_have:
                    link.presences.append(bs.Presence(e.cid, bs.PresenceType.DONT_HAVE))
                continue
            if e.want_type == bs.WantType.HAVE:
                link.presences.append(bs.Presence(e.cid, bs.PresenceType.HAVE))
            elif len(link.serve) < MAX_QUEUED_WANTS:
                link.serve[e.cid] = e
            elif e.send_dont_have:
                link.presences.append(bs.Presence(e.cid, bs.PresenceType.DONT_HAVE))
        link.wake.set()

    def _read_blocks(self, cids: list[bytes]) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """Read (and, in the store, verify) blocks; runs in a worker thread."""
        found: list[tuple[bytes, bytes]] = []
        missing: list[bytes] = []
        for c in cids:
            try:
                found.append((c, self.store.get(_cid(c))))
            except Exception as exc:  # gone or corrupt on our side: tell the peer we lack it
                log.info("cannot serve %s: %s", cid_text(c), exc)
                missing.append(c)
        return found, missing

    # --- outbound: our own stream per peer ----------------------------------------------------

    def _link(self, peer: Any) -> _PeerLink:
        link = self._links.get(peer)
        if link is None or not link.alive:
            link = _PeerLink(peer)
            self._links[peer] = link
            assert self._nursery is not None, "BitswapNode used outside running()"
            self._nursery.start_soon(self._sender, link)
        return link

    def _read_ahead(self, link: _PeerLink) -> _Read | None:
        """Start reading the next batch ``link`` wants; ``None`` when it wants nothing more."""
        if not link.serve:
            return None
        take = [link.serve.popitem(last=False)[0]
                for _ in range(min(SERVE_READ_BATCH, len(link.serve)))]
        job = _Read()

        async def run() -> None:
            job.result = await trio.to_thread.run_sync(self._read_blocks, take)
            job.done.set()

        assert self._nursery is not None
        self._nursery.start_soon(run)
        return job

    async def _sender(self, link: _PeerLink) -> None:
        stream = None
        ahead: _Read | None = None
        try:
            while True:
                await link.wake.wait()
                link.wake = trio.Event()
                if not link.alive:
                    break
                while link.wants or link.presences or link.serve or ahead is not None:
                    if stream is None:
                        stream = await lp.open_stream(self.host, link.peer, bs.PROTOCOLS)
                        link.streams_opened += 1
                        self.streams_opened += 1
                    if link.wants or link.presences:
                        msg = bs.Message(wants=tuple(link.wants), presences=tuple(link.presences))
                        link.wants.clear()
                        link.presences.clear()
                        await stream.write(bs.frame(msg))
                    # Reading and verifying happen on a worker thread, one batch ahead of the
                    # batch being written, so the disk and the socket work at the same time.
                    if ahead is None:
                        ahead = self._read_ahead(link)
                    if ahead is None:
                        continue
                    await ahead.done.wait()
                    items, lacking = ahead.result
                    ahead = self._read_ahead(link)
                    link.presences.extend(bs.Presence(c, bs.PresenceType.DONT_HAVE) for c in lacking)
                    for m in bs.pack_blocks(items):
                        await stream.write(bs.frame(m))
                        self.blocks_served += len(m.blocks)
                        self.bytes_served += sum(len(b.data) for b in m.blocks)
                    await trio.sleep(0)
        except Exception as exc:  # any failure ends this link; sessions re-route its wants
            log.info("stream to %s failed: %s", link.peer, exc)
        finally:
            link.alive = False
            if self._links.get(link.peer) is link:
                del self._links[link.peer]
            for s in list(self._sessions):
                s.on_peer_lost(link.peer, "its bitswap stream failed")
            if stream is not None:
                try:
                    await stream.close()
                except lp.STREAM_ERRORS:
                    pass

    def send_wants(self, peer: Any, wants: Iterable[bs.WantEntry]) -> None:
        link = self._link(peer)
        link.wants.extend(wants)
        link.wake.set()

    def link_stats(self, peer: Any) -> _PeerLink | None:
        return self._links.get(peer)

    async def disconnect(self, peer: Any) -> None:
        link = self._links.pop(peer, None)
        if link is not None:
            link.alive = False
            link.wake.set()
        try:
            await self.host.get_network().close_peer(peer)
        except Exception as exc:
            log.info("closing %s: %s", peer, exc)

    # --- fetching -----------------------------------------------------------------------------

    async def fetch(self, roots: list[bytes], peers: list[tuple[Any, Any]], *, window: int = 32,
                    stall_s: float = 15.0,
                    on_block: Callable[[int], None] | None = None,
                    on_total: Callable[[int], None] | None = None) -> SessionStats:
        """Fetch the DAGs under binary CIDs ``roots`` from ``peers`` [(multiaddr, peer id)].

        Raises:
            TransportError: no peer could be reached.
            NotFoundError: blocks remain that no reachable peer would give us.
        """
        session = FetchSession(self, roots, window=window, stall_s=stall_s, on_block=on_block,
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
                    if not any(pid in s.names for s in self._sessions):
                        await self.disconnect(pid)


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
        self.inflight: dict[bytes, Any] = {}
        self.asked: set[bytes] = set()
        self.refused: dict[bytes, set[Any]] = {}
        self.peers: list[Any] = []
        self.names: dict[Any, str] = {}
        self.last_seen: dict[Any, float] = {}
        self.changed = trio.Event()
        self.error: Exception | None = None
        self.unsaved: list[tuple[bytes, bytes]] = []
        self.unsaved_bytes = 0
        self.save_wanted = trio.Event()
        self.saving = trio.Lock()
        self.sink = BlockSink(node.store)

    # callbacks from the node (synchronous, in the trio thread) --------------------------------

    def on_block(self, peer: Any, real: bytes, data: bytes | memoryview) -> None:
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

    def on_presence(self, peer: Any, cid_bytes: bytes, kind: bs.PresenceType) -> None:
        if peer not in self.peers:
            return
        self.last_seen[peer] = trio.current_time()
        if kind == bs.PresenceType.DONT_HAVE and self.inflight.get(cid_bytes) == peer:
            del self.inflight[cid_bytes]
            self.refused.setdefault(cid_bytes, set()).add(peer)
            self.todo.appendleft(cid_bytes)
            self._wake()

    def on_peer_lost(self, peer: Any, why: str) -> None:
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

    def _release(self, peer: Any) -> None:
        for c, owner in list(self.inflight.items()):
            if owner == peer:
                del self.inflight[c]
                self.todo.appendleft(c)

    def _drop(self, peer: Any, why: str) -> None:
        name = self.names.get(peer, str(peer))
        self.stats.dropped.append((name, why))
        self._release(peer)
        if peer in self.peers:
            self.peers.remove(peer)
        self.node._nursery.start_soon(self.node.disconnect, peer)  # type: ignore[union-attr]
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
                cc = _cid(child)
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
        batches: dict[Any, list[bs.WantEntry]] = {}
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

    async def run(self, peers: list[tuple[Any, Any]]) -> SessionStats:
        node = self.node
        store = node.store
        for root in self.roots:
            if root in self.asked:
                continue
            self.asked.add(root)
            if store.has(_cid(root)):
                self.stats.blocks_local += 1
                self._expand(root, store.get(_cid(root)))
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
        node._sessions.append(self)
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
            node._sessions.remove(self)
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


__all__ = ["BitswapNode", "FetchSession", "SessionStats"]
