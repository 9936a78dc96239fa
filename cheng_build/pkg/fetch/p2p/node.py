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
CIDs (``cas.cid.CID``; ``cas.blockstore.Blockstore`` or any object with those methods).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import trio
from libp2p.custom_types import TProtocol

from cheng_build.cas.cid import CID
from cheng_build.core.errors import DigestMismatchError
from cheng_build.pkg.fetch import bitswap as bs
from cheng_build.pkg.fetch import libp2p_adapter as lp
from cheng_build.pkg.fetch.blocks import BlockStore, block_cid, cid_text, to_cid

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream
    from libp2p.peer.id import ID

log = logging.getLogger(__name__)

def _cid(cid_bytes: bytes) -> CID:
    return to_cid(cid_bytes)


class SessionListener(Protocol):
    """What the node tells a running fetch session (:class:`.session.FetchSession`), synchronously
    in the trio thread: a block whose bytes hash to ``real``, a presence, a lost peer."""

    def on_block(self, peer: ID, real: bytes, data: bytes | memoryview) -> None: ...

    def on_presence(self, peer: ID, cid_bytes: bytes, kind: bs.PresenceType) -> None: ...

    def on_peer_lost(self, peer: ID, why: str) -> None: ...


@dataclass(slots=True)
class _PeerLink:
    """What we owe one peer, sent on our own outbound stream (defects 1 and 4)."""

    peer: ID
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



# Messages carrying at least this many block bytes are hashed on a worker thread (a bulk
# transfer); smaller ones inline, where the thread hop would only add latency (the first block).
THREAD_HASH_BYTES = 512 * 1024
# Wants we queue per peer; beyond this a peer is told DONT_HAVE (a bound on untrusted input:
# one 4 MiB message can carry ~100,000 wants).
MAX_QUEUED_WANTS = 16384
# Blocks read from the store per worker-thread hop when serving.
SERVE_READ_BATCH = 8


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

    def __init__(self, host: IHost, store: BlockStore, *, serve: bool = True,
                 max_peers: int | None = None) -> None:
        self.host = host
        self.store = store
        self.serving = serve
        self.max_peers = max_peers
        self._links: dict[ID, _PeerLink] = {}
        self._readers: dict[ID, set[trio.CancelScope]] = {}
        self.sessions: list[SessionListener] = []  # registered by each running session
        self._nursery: trio.Nursery | None = None
        self.blocks_served = 0
        self.streams_opened = 0  # outbound bitswap streams, all peers, since start
        self.bytes_served = 0
        for proto in bs.PROTOCOLS:
            host.set_stream_handler(TProtocol(proto), self._on_inbound)
        lp.on_disconnect(host, self._on_disconnect)

    @classmethod
    @asynccontextmanager
    async def running(cls, host: IHost, store: BlockStore, **kw: Any) -> AsyncIterator[BitswapNode]:
        node = cls(host, store, **kw)
        async with trio.open_nursery() as nursery:
            node._nursery = nursery
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()

    # --- inbound: the peer's stream, read only ------------------------------------------------

    async def _on_inbound(self, stream: INetStream) -> None:
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
                    if self.sessions and _payload(msg) >= THREAD_HASH_BYTES:
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

    def _on_disconnect(self, peer: ID) -> None:
        """The peer's last connection closed: stop reading from and serving it."""
        for scope in list(self._readers.get(peer, ())):
            scope.cancel()
        link = self._links.get(peer)
        if link is not None:
            link.alive = False
            link.wake.set()

    def _on_message(self, peer: ID, msg: bs.Message, reals: list[bytes] | None = None) -> None:
        """Act on one message; ``reals`` are its blocks' CIDs as their bytes hash (computed
        here when not given), 1.1+ blocks first, then 1.0.0 ones."""
        if msg.wants and self.serving:
            self._queue_wants(peer, msg)
        if msg.blocks or msg.blocks_v100:
            if reals is None:
                reals = _recognise(msg)
            datas = [b.data for b in msg.blocks] + list(msg.blocks_v100)
            for real, data in zip(reals, datas, strict=True):
                for s in list(self.sessions):
                    s.on_block(peer, real, data)
        for p in msg.presences:
            for s in list(self.sessions):
                s.on_presence(peer, p.cid, p.type)

    # --- serving ------------------------------------------------------------------------------

    def _queue_wants(self, peer: ID, msg: bs.Message) -> None:
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

    def _link(self, peer: ID) -> _PeerLink:
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
            for s in list(self.sessions):
                s.on_peer_lost(link.peer, "its bitswap stream failed")
            if stream is not None:
                try:
                    await stream.close()
                except lp.STREAM_ERRORS:
                    pass

    def send_wants(self, peer: ID, wants: Iterable[bs.WantEntry]) -> None:
        link = self._link(peer)
        link.wants.extend(wants)
        link.wake.set()

    def link_stats(self, peer: ID) -> _PeerLink | None:
        return self._links.get(peer)

    def hang_up_soon(self, peer: ID) -> None:
        """Disconnect from ``peer`` in the background (a session dropped it)."""
        assert self._nursery is not None, "BitswapNode used outside running()"
        self._nursery.start_soon(self.disconnect, peer)

    async def disconnect(self, peer: ID) -> None:
        link = self._links.pop(peer, None)
        if link is not None:
            link.alive = False
            link.wake.set()
        try:
            await lp.hang_up(self.host, peer)
        except Exception as exc:
            log.info("closing %s: %s", peer, exc)


__all__ = ["BitswapNode", "SessionListener"]
