"""Our only door to py-libp2p (pinned ``libp2p==0.8.1``): host setup, dialling, stream I/O.

(Over 400 lines on purpose: every workaround for a py-libp2p defect lives behind this one door,
so the rest of the code never imports libp2p and an upgrade is reviewed in one file.)

Importing this module imports libp2p and trio (~0.5 s), so only the p2p fetch and serve paths
import it. Each workaround below names the upstream defect it avoids (numbered as in issue 6);
``tests/test_net_libp2p_adapter.py`` and ``tests/test_net_p2p.py`` hold a test per workaround.

1. py-libp2p's bitswap client closes its shared outbound stream after each batch of wants while
   the next wants are being written to it (~1 s stall per batch). We do not use its bitswap
   module: ``p2p/`` speaks the protocol itself and keeps one outbound stream per peer open for
   the whole session (see ``BitswapNode``).
2. ``host.connect`` -> ``Swarm.dial_peer`` waits its 250 ms "happy eyeballs" delay after the
   first address already succeeded. ``dial`` calls ``Swarm.dial_addr`` on the one address we
   were given instead.
3. mplex deadlocks under bitswap's concurrent streams; ``make_host`` offers yamux only.
4. py-libp2p's bitswap provider answers wants on the requester's stream; go and JS peers never
   read there. ``p2p/node.py`` always replies on a stream it opened itself.
5. py-libp2p's yamux grows a stream's receive window up to 16 MiB, beyond what its own frame
   handling accepts from a JS peer, and the connection drops on large transfers. ``cap_window``
   re-classes every bitswap stream as ``CappedYamuxStream``, which never grants more than
   ``MAX_RECV_WINDOW`` (and sends window updates go-yamux style, not after every read).

Found while building this (each commented where it is handled): the muxer negotiation ignores
the yamux class given in ``muxer_opt`` (hence per-stream re-classing); WINDOW_UPDATE after nearly
every read; reads on a dropped peer's streams are never ended and stopping a host does not close
its connections (``on_disconnect``, and ``BitswapNode.fetch`` hangs up); the ``libp2p`` logger
prints every failed dial through Python's last-resort handler (we add a ``NullHandler``); noise
reads the socket a few KiB at a time (``BufferedTCP``); the TCP listener binds with
``SO_REUSEPORT`` (``serve`` probes the port first); yamux frames do not fit a noise message, so
each goes out as two messages and two sends (``CappedYamuxStream.write``); each received noise
message crosses four layers of Python and each yamux frame a dozen trio operations
(``libp2p_rx.FastReadSession``, installed on every connection by ``make_host``); a write that
finds the send window closed polls it every 10 ms (``CappedYamuxStream.write`` waits for the
update instead); closing a connection sleeps 2 x 100 ms (``hang_up``); opening a stream takes
two round trips of multistream-select where one does (``libp2p_select``); worker threads wait
out the 5 ms GIL switch interval after every system call while the trio loop is busy
(``quick_gil_handoff``). ``libp2p_rx`` and ``libp2p_select`` are part of this door: only this
module imports them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.io import NoisePacketReadWriter, NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.exceptions import MuxedStreamError
from libp2p.stream_muxer.yamux import yamux as _yamux
from libp2p.transport.tcp.tcp import TCP

from cheng_build.cas import varint
from cheng_build.core.atomic import atomic_write_bytes
from cheng_build.core.errors import InputError, TransportError
from cheng_build.pkg.fetch import libp2p_noise as _noise
from cheng_build.pkg.fetch import libp2p_rx as _rx
from cheng_build.pkg.fetch import libp2p_select as _select
from cheng_build.pkg.fetch.libp2p_rx import FastReadSession

# py-libp2p configures its "libp2p" logger at import with no handler and propagation off, so
# Python's last-resort handler prints every failed dial attempt (four per unreachable peer) to
# stderr. What a user needs reaches them as our own errors and warnings; LIBP2P_DEBUG still
# turns its logging on (it then installs real handlers).
if not os.environ.get("LIBP2P_DEBUG"):
    logging.getLogger("libp2p").addHandler(logging.NullHandler())

YAMUX_PROTOCOL = TProtocol("/yamux/1.0.0")
# Defect 5: go-yamux and JS yamux both start at 256 KiB windows that grow on demand; we stop at
# 4 MiB (py-libp2p goes to 16 MiB), which is still a few full bitswap messages in flight.
MAX_RECV_WINDOW = 4 * 1024 * 1024

# Exceptions py-libp2p raises when a stream or connection goes away mid-read or mid-write.
STREAM_ERRORS: tuple[type[BaseException], ...] = (
    StreamError, MuxedStreamError, trio.BrokenResourceError, trio.ClosedResourceError,
    ConnectionError, EOFError,
)


class CappedYamuxStream(_yamux.YamuxStream):
    """A yamux stream with go-yamux's receive-window rule instead of py-libp2p's.

    Defect 5: py-libp2p auto-tunes the window up to 16 MiB; we keep what the sender may have in
    flight (granted but unsent, plus received but unread) at ``MAX_RECV_WINDOW``.
    Also (found here): with its default ``RELEASE_ON_READ`` py-libp2p sends a WINDOW_UPDATE frame
    after nearly every read, one noise-encrypted frame and syscall per ~10-60 KiB received. Like
    go-yamux we top the window up only once it has fallen by half.
    """

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        async with self.window_lock:
            buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
            delta = MAX_RECV_WINDOW - (self.recv_window + buffered)
            if delta < MAX_RECV_WINDOW // 2:
                return
            self.recv_window += delta
            self.target_recv_window = MAX_RECV_WINDOW
            self._pending_recv_release = 0
        await self.send_window_update(delta, skip_lock=True)


    async def write(self, data: bytes) -> None:
        """Send ``data`` as yamux frames that each fit one noise message, many per system call.

        Found here: py-libp2p's yamux cuts a write into 65,524-byte frames (+12 header), one
        byte string each, and noise encrypts and sends each frame on its own; a frame is larger
        than noise's 65,519-byte plaintext limit, so every frame becomes two noise messages and
        two ``send`` calls, the second of 17 bytes (a provider spent ~40 % of its CPU there and
        in the layers between). Here a write takes as much send window as it can (up to
        ``BULK_BYTES``), cuts it into ``FRAME_PAYLOAD``-byte frames, encrypts each as one noise
        message and sends them all with one write on the raw connection, under the muxer's own
        write lock (so no other frame can come between, and noise nonces stay in send order).
        The frames on the wire are ordinary yamux frames of go-yamux's size. Where the
        connection is not the noise + raw TCP stack this was written against, or the window is
        exhausted (yamux's own wait for a window update then applies), the stock path runs,
        still with frames that fit one noise message.
        """
        view = memoryview(data)
        total = len(view)
        sent = 0
        bulk = _bulk_path(self)
        if not hasattr(self, "_bulk_buf"):
            self._bulk_buf: bytearray | None = None
        while sent < total:
            n = 0
            if bulk is not None and not self.send_closed and not self.closed:
                async with self.rw_lock.write_lock(), self.window_lock:
                    if not self.send_closed and not self.closed:
                        n = min(self.send_window, total - sent, BULK_BYTES)
                        self.send_window -= n
            if n == 0 and bulk is not None and _rx.has_fast_reads(self) \
                    and not self.send_closed and not self.closed:
                # Window closed: wait for the peer's WINDOW_UPDATE, which the batched receive
                # path announces (``libp2p_rx``). Found here: yamux's own wait polls the
                # window every 10 ms; a provider spent ~0.3 s of a 64 MiB transfer asleep
                # there. The poll stays as the fallback (an update yamux's own loop handles).
                await _rx.window_opened(self, WINDOW_WAIT_S)
                if self.send_window > 0:
                    continue
            if n == 0:
                # Window closed (or no bulk path): yamux waits for the update and sends one frame.
                piece = bytes(view[sent:sent + FRAME_PAYLOAD])
                await super().write(piece)
                sent += len(piece)
                continue
            assert bulk is not None
            noise, raw = bulk
            # The sealed messages are laid out in one buffer kept by the stream (its pages are
            # already mapped: a fresh 1 MiB allocation per round costs more in page faults
            # than the copy itself), sent with one write, reused once the write returned.
            out = self._bulk_buf
            if out is None:
                out = self._bulk_buf = bytearray(BULK_BYTES + BULK_BYTES // FRAME_PAYLOAD * 64
                                                 + 64)
            pos = 0
            if not hasattr(self, "_seal"):
                self._seal = _noise.direct_encrypt(noise)
                self._stage = bytearray(HEADER_SIZE + FRAME_PAYLOAD)
            seal = self._seal
            async with self.conn._write_lock:
                if seal is not None:
                    # Each frame is laid out once (header + payload) and sealed straight into
                    # the send buffer.
                    stage = self._stage
                    with memoryview(stage) as sv, memoryview(out) as ov:
                        for off in range(sent, sent + n, FRAME_PAYLOAD):
                            size = min(FRAME_PAYLOAD, sent + n - off)
                            _YAMUX_HEADER.pack_into(stage, 0, 0, _yamux.TYPE_DATA, 0,
                                                    self.stream_id, size)
                            sv[HEADER_SIZE:HEADER_SIZE + size] = view[off:off + size]
                            sealed = HEADER_SIZE + size + _noise.TAG_SIZE
                            ov[pos:pos + 2] = sealed.to_bytes(2, "big")
                            seal(sv[:HEADER_SIZE + size], ov[pos + 2:pos + 2 + sealed])
                            pos += 2 + sealed
                else:
                    for off in range(sent, sent + n, FRAME_PAYLOAD):
                        chunk = view[off:min(off + FRAME_PAYLOAD, sent + n)]
                        header = _YAMUX_HEADER.pack(0, _yamux.TYPE_DATA, 0, self.stream_id,
                                                    len(chunk))
                        sealed_msg = noise.encrypt(header + chunk)
                        end = pos + 2 + len(sealed_msg)
                        out[pos:pos + 2] = len(sealed_msg).to_bytes(2, "big")
                        out[pos + 2:end] = sealed_msg
                        pos = end
                with memoryview(out) as mv:
                    await raw.write(mv[:pos])
            await trio.lowlevel.checkpoint()
            sent += n


# Yamux payload per frame so that header + payload is exactly one noise message (65,535 bytes
# of ciphertext = 16 bytes of tag + 65,519 of plaintext).
HEADER_SIZE = _yamux.HEADER_SIZE
FRAME_PAYLOAD = 65535 - 16 - HEADER_SIZE
# Send window taken (and bytes sent with one system call) per round of a bulk write.
BULK_BYTES = 1024 * 1024
# How long a bulk write waits for a window update before yamux's own (polling) wait takes over.
WINDOW_WAIT_S = 5.0
_YAMUX_HEADER = struct.Struct(_yamux.YAMUX_HEADER_FORMAT)


def _bulk_path(stream: _yamux.YamuxStream) -> tuple[Any, Any] | None:
    """(noise transport, raw connection) under a yamux stream, if they are the classes whose
    framing ``CappedYamuxStream.write`` reproduces (py-libp2p 0.8.1's noise over raw TCP)."""
    from libp2p.network.connection.raw_connection import RawConnection
    from libp2p.security.noise.io import NoisePacketReadWriter, NoiseTransportReadWriter
    session = getattr(stream.conn, "secured_conn", None)
    if session is None or type(session) not in (SecureSession, FastReadSession) \
            or not hasattr(stream.conn, "_write_lock"):
        return None
    noise = session.conn
    if type(noise) is not NoiseTransportReadWriter:
        return None
    packets = noise.read_writer
    if type(packets) is not NoisePacketReadWriter or packets.size_len_bytes != 2:
        return None
    raw = packets.read_write_closer
    if not isinstance(raw, RawConnection):
        return None
    return noise, raw


def _fast_reads(stream: _yamux.YamuxStream) -> None:
    """Re-class the noise session under ``stream`` as ``FastReadSession`` (once per connection)
    if ``make_host``'s hook has not (a connection made some other way): batched decryption
    only, since mid-connection we cannot tell where yamux's next frame starts."""
    session = getattr(stream.conn, "secured_conn", None)
    if type(session) is not SecureSession:
        return
    bulk = _bulk_path(stream)
    if bulk is not None:
        _rx.fast_session(session, bulk[1])


def cap_window(stream: INetStream) -> INetStream:
    """Make a stream's yamux receive window stop growing at ``MAX_RECV_WINDOW`` (defect 5).

    py-libp2p's muxer negotiation builds ``Yamux`` by name whatever class ``muxer_opt`` maps the
    yamux protocol to, and constructs ``YamuxStream`` inside its frame loop, so there is no
    factory to hand a subclass to; we re-class each bitswap stream as we open or accept it,
    before any data is read from it.
    """
    muxed = getattr(stream, "muxed_stream", None)
    if type(muxed) is _yamux.YamuxStream:
        _fast_reads(muxed)
        muxed.__class__ = CappedYamuxStream
        if muxed.target_recv_window > MAX_RECV_WINDOW:
            muxed.target_recv_window = MAX_RECV_WINDOW
    return stream


# What one socket read asks the kernel for on connections we dial (see BufferedTCP).
READ_CHUNK = 256 * 1024


class BufferedTrioTCPStream(TrioTCPStream):
    """A TCP stream that reads up to ``READ_CHUNK`` per system call and serves py-libp2p's small
    reads (a 2-byte noise length, then the rest of a frame, in several calls) from memory."""

    _rbuf: bytearray

    async def read(self, n: int | None = None) -> bytes:
        buf = self._rbuf
        if not buf:
            data = await super().read(READ_CHUNK)
            if n is None or len(data) <= n:
                return data
            buf += memoryview(data)[n:]
            return data[:n]
        if n is None or n >= len(buf):
            out = bytes(buf)
            buf.clear()
            return out
        out = bytes(buf[:n])
        del buf[:n]
        return out


class BufferedTCP(TCP):
    """py-libp2p's TCP transport whose dialled connections read in large chunks.

    Found here: a fetch spent a sixth of its CPU in ~7 KiB socket reads, because noise asks the
    socket for exactly the bytes of the frame part it parses next. Only the dialling side (the
    fetcher, which receives the bulk) is buffered; the connection object is py-libp2p's own.
    """

    async def dial(self, maddr: Any) -> Any:
        raw = await super().dial(maddr)
        stream = getattr(raw, "stream", None)
        if type(stream) is TrioTCPStream:
            stream.__class__ = BufferedTrioTCPStream
            cast(BufferedTrioTCPStream, stream)._rbuf = bytearray()
        return raw


# The GIL switch interval while a node runs (see quick_gil_handoff).
GIL_SWITCH_S = 0.0005


@contextlib.contextmanager
def quick_gil_handoff(interval: float = GIL_SWITCH_S) -> Iterator[None]:
    """Let worker threads take the GIL back sooner while a libp2p node runs (restored after).

    Found here: while py-libp2p's trio loop decrypts and parses (pure Python, busy), the
    threads that write received blocks to the store or read blocks to serve need the GIL back
    after every system call (mkdir, open, write, ...), and by default wait up to the 5 ms switch
    interval for it each time; the store's writer fell behind the network (a 64 MiB fetch spent
    ~0.7 s in ~800 file system calls that take ~0.1 ms alone). 0.5 ms keeps both moving:
    ~15 % more throughput on a loaded 2-core machine, at no measurable CPU cost.
    """
    old = sys.getswitchinterval()
    sys.setswitchinterval(min(old, interval))
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def load_identity(path: Path | None) -> Any:
    """An Ed25519 key pair; with ``path``, read from (or created at) that 32-byte seed file.

    A provider keeps its peer ID across restarts this way, so addresses written into locks and
    configs (``.../p2p/<peer id>``) stay valid.

    Raises:
        InputError: the file exists but is not a 32-byte seed.
    """
    if path is None:
        return create_new_key_pair()
    if path.exists():
        seed = path.read_bytes()
        if len(seed) != 32:
            raise InputError(f"peer identity {path} is not a 32-byte Ed25519 seed",
                             how="delete it to let a new identity be created")
    else:
        seed = os.urandom(32)
        atomic_write_bytes(path, seed, mode=0o600)
    return create_new_key_pair(seed)


def make_host(identity: Any = None) -> IHost:
    """A TCP host with noise and yamux only (defect 3: mplex is not offered)."""
    host = new_host(
        key_pair=identity or create_new_key_pair(),
        muxer_opt={YAMUX_PROTOCOL: _yamux.Yamux},
        transports=[BufferedTCP()],
    )
    _batch_receives(host)
    _select.install(host)  # one round trip per new outbound stream, not two
    return host


def _batch_receives(host: IHost) -> None:
    """Give every connection of ``host`` the batched receive path of ``libp2p_rx``.

    The swarm upgrades each new connection (dialled or accepted) through its upgrader; we wrap
    that one call on this host's upgrader, so between the muxer's construction and its start
    the noise session is re-classed and told which yamux reads it. Where py-libp2p's layout
    is not the one this was written against, nothing is wrapped and the stock path runs.
    """
    upgrader = getattr(host.get_network(), "upgrader", None)
    real = getattr(upgrader, "upgrade_connection", None)
    if real is None:
        return

    async def upgrade_connection(conn: Any, peer_id: ID) -> Any:
        muxed = await real(conn, peer_id)
        packets = getattr(getattr(conn, "conn", None), "read_writer", None)
        raw = getattr(packets, "read_write_closer", None)
        if type(getattr(conn, "conn", None)) is NoiseTransportReadWriter \
                and type(packets) is NoisePacketReadWriter and packets.size_len_bytes == 2 \
                and isinstance(raw, RawConnection):
            fast = _rx.fast_session(conn, raw)
            if fast is not None:
                _rx.attach(fast, muxed)
        return muxed

    upgrader.upgrade_connection = upgrade_connection  # type: ignore[union-attr]


def parse_peer_addr(text: str) -> tuple[Any, ID]:
    """Split ``/ip4/../tcp/../p2p/<id>`` into (transport multiaddr, peer ID).

    Raises:
        InputError: the text is not a multiaddr or lacks the ``/p2p/<peer id>`` part.
    """
    try:
        info = info_from_p2p_addr(multiaddr.Multiaddr(text))
    except Exception as exc:
        raise InputError(f"bad peer address '{text}'", why=str(exc) or type(exc).__name__,
                         how="write it as /ip4/<ip>/tcp/<port>/p2p/<peer id>") from exc
    if not info.addrs:
        raise InputError(f"peer address '{text}' has no transport part",
                         how="write it as /ip4/<ip>/tcp/<port>/p2p/<peer id>")
    return info.addrs[0], info.peer_id


async def dial(host: IHost, addr: Any, peer_id: ID) -> None:
    """Connect to ``peer_id`` at exactly ``addr``.

    Defect 2: ``host.connect`` waits 250 ms after a successful dial ("happy eyeballs" fallback
    timer that is not cancelled on success). We have one address per peer, so we dial it directly.

    Raises:
        TransportError: the dial failed (refused, wrong peer ID, handshake failure).
    """
    network = host.get_network()
    if network.connections.get(peer_id):
        return
    host.get_peerstore().add_addrs(peer_id, [addr], 600)
    try:
        await network.dial_addr(addr, peer_id)
    except Exception as exc:
        raise TransportError(f"cannot reach peer {addr}/p2p/{peer_id}",
                             why=str(exc) or type(exc).__name__) from exc


async def open_stream(host: IHost, peer_id: ID, protocols: Sequence[str]) -> INetStream:
    """Open an outbound stream speaking the first of ``protocols`` the peer accepts."""
    return cap_window(await host.new_stream(peer_id, [TProtocol(p) for p in protocols]))


# The most a hang-up waits for py-libp2p's close before leaving the rest to it.
HANG_UP_S = 2.0


async def hang_up(host: IHost, peer_id: ID) -> None:
    """Close every connection to ``peer_id``, as ``Swarm.close_peer`` does but without its
    two 100 ms sleeps.

    Found here: closing a connection sleeps 0.1 s at the end of ``Yamux.close`` and 0.1 s in
    ``SwarmConn._cleanup`` (to let stream handlers see their resets), so every fetch ended
    ~200 ms after its last block (a third of a 64 MiB fetch at 100 MB/s). Here the stock
    close runs until the muxer says it is closed (GO_AWAY sent, socket closed, every stream
    ended and its reader woken); then the rest of py-libp2p's clean-up is done without the
    sleeps: the connection leaves the swarm's records and the notifees (our node's
    ``on_disconnect`` among them) are told. Where a connection lacks the muxer's
    ``event_closed``, the stock close runs to its end.
    """
    network: Any = host.get_network()  # the swarm (``remove_conn`` is not on its interface)
    conns: list[Any] = list(network.get_connections(peer_id))
    if not conns:
        return
    events: list[Any] = [getattr(getattr(c, "muxed_conn", None), "event_closed", None)
                         for c in conns]
    with trio.move_on_after(HANG_UP_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(network.close_peer, peer_id)
            if any(e is None for e in events):
                return  # the nursery waits for the stock close
            for e in events:
                await e.wait()
            nursery.cancel_scope.cancel()
    for c in conns:
        muxed = getattr(c, "muxed_conn", None)
        if muxed is None or not getattr(muxed, "is_closed", False):
            continue
        with contextlib.suppress(Exception):
            network.remove_conn(c)
        with trio.move_on_after(HANG_UP_S), contextlib.suppress(Exception):
            await c._notify_disconnected()
    if not network.get_connections(peer_id):
        network.connections.pop(peer_id, None)


def on_disconnect(host: IHost, callback: Any) -> None:
    """Call ``callback(peer_id)`` when the last connection to a peer closes.

    Found here: when a peer's connection drops, py-libp2p does not end reads pending on that
    peer's yamux streams, so a stream handler would wait forever; the node cancels them instead.
    """
    from libp2p.abc import INotifee

    class _Notifee(INotifee):
        async def opened_stream(self, network: Any, stream: Any) -> None:
            return None

        async def closed_stream(self, network: Any, stream: Any) -> None:
            return None

        async def connected(self, network: Any, conn: Any) -> None:
            return None

        async def disconnected(self, network: Any, conn: Any) -> None:
            peer = conn.muxed_conn.peer_id
            if not network.connections.get(peer):
                callback(peer)

        async def listen(self, network: Any, multiaddr: Any) -> None:
            return None

        async def listen_close(self, network: Any, multiaddr: Any) -> None:
            return None

    host.get_network().register_notifee(_Notifee())


def listen_addrs(host: IHost) -> list[str]:
    """Full listen addresses, each ending in ``/p2p/<peer id>``."""
    pid = host.get_id().to_string()
    out = []
    for a in host.get_addrs():
        s = str(a)
        out.append(s if "/p2p/" in s else f"{s}/p2p/{pid}")
    return out


class FrameReader:
    """Reads ``uvarint(len) || body`` frames from a libp2p stream, buffering partial reads."""

    def __init__(self, stream: INetStream, max_size: int) -> None:
        self._stream = stream
        self._max = max_size
        self._buf = bytearray()

    async def _fill(self) -> bool:
        try:
            chunk = await self._stream.read(1 << 20)
        except STREAM_ERRORS:
            return False
        if not chunk:
            return False
        self._buf += chunk
        return True

    async def next(self) -> bytes | None:
        """The next frame's body, or ``None`` at end of stream.

        Raises:
            ValueError: a frame announces more than ``max_size`` bytes or the stream ends inside one.
        """
        while True:
            try:
                length, pos = varint.decode(self._buf)
                complete = True
            except varint.VarintTruncatedError:
                complete = False
            except varint.VarintError as exc:
                raise ValueError(f"bad frame length: {exc}") from None
            if complete:
                if length > self._max:
                    raise ValueError(f"frame of {length} bytes exceeds {self._max}")
                if len(self._buf) - pos >= length:
                    with memoryview(self._buf) as view:  # one copy out, not two
                        body = bytes(view[pos:pos + length])
                    del self._buf[:pos + length]
                    return body
            if not await self._fill():
                if self._buf:
                    raise ValueError("stream ended inside a frame")
                return None


__all__ = [
    "MAX_RECV_WINDOW", "STREAM_ERRORS", "CappedYamuxStream", "FrameReader", "cap_window", "dial",
    "hang_up", "listen_addrs", "load_identity", "make_host", "on_disconnect", "open_stream",
    "parse_peer_addr", "quick_gil_handoff", "unwrap_group",
]


def unwrap_group(exc: BaseException) -> BaseException:
    """The one real error inside trio's (nested) exception groups, else the group itself.

    py-libp2p's ``host.run`` and our nurseries each wrap what escapes them; a user should see
    our ``ChengError``, not three layers of ``ExceptionGroup``.
    """
    from cheng_build.core.errors import ChengError

    seen: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            seen.append(e)

    walk(exc)
    for e in seen:
        if isinstance(e, ChengError):
            return e
    real = [e for e in seen if not isinstance(e, trio.Cancelled)]
    return real[0] if len(real) == 1 else exc
