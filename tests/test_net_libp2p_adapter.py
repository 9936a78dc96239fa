"""One test per py-libp2p 0.8.1 workaround in ``libp2p_adapter`` (defects numbered as in issue 6).

Each would fail if its workaround were removed: they check the mechanism, never a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import multiaddr  # runtime dependencies (libp2p's): a plain import, never a skip
import pytest
import trio

from cheng_build.core.errors import InputError, TransportError
from cheng_build.pkg.fetch import libp2p_adapter as lp

pytestmark = pytest.mark.network
PROTO = "/cheng-test/bulk/1"
LISTEN = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


@asynccontextmanager
async def _stream_to_server(handler: Callable[[Any], Awaitable[None]]) -> AsyncIterator[Any]:
    """Two hosts on loopback; ``handler`` serves PROTO on the first, and the block gets the
    second host's stream to it."""
    from libp2p.custom_types import TProtocol

    a, b = lp.make_host(), lp.make_host()
    a.set_stream_handler(TProtocol(PROTO), handler)
    async with a.run([LISTEN]), b.run([]):
        addr, pid = lp.parse_peer_addr(lp.listen_addrs(a)[0])
        await lp.dial(b, addr, pid)
        yield await b.new_stream(pid, [TProtocol(PROTO)])


async def _read_to_end(s: Any, size: int, sink: Callable[[bytes], None]) -> None:
    """Feed every read of ``s`` to ``sink`` until the stream ends or is reset."""
    while True:
        try:
            d = await s.read(size)
        except lp.STREAM_ERRORS:
            return
        if not d:
            return
        sink(d)


def _bulk_transfer(nbytes: int, capped: bool) -> tuple[str, int, int, int]:
    """Send ``nbytes`` over one stream; return (stream class, bytes read, peak receive window,
    WINDOW_UPDATE frames the receiver sent)."""
    async def main():
        async def handler(s) -> None:
            for _ in range(nbytes >> 20):
                await s.write(b"x" * (1 << 20))
            await s.close()

        async with _stream_to_server(handler) as s:
            if capped:
                lp.cap_window(s)
            updates = 0
            real_update = s.muxed_stream.send_window_update

            async def counting(increment: int, skip_lock: bool = False) -> None:
                nonlocal updates
                updates += increment > 0
                await real_update(increment, skip_lock)

            s.muxed_stream.send_window_update = counting
            got = peak = 0

            def take(d: bytes) -> None:
                nonlocal got, peak
                got += len(d)
                ms = s.muxed_stream
                peak = max(peak, ms.target_recv_window, ms.recv_window)

            await _read_to_end(s, 1 << 20, take)
            return type(s.muxed_stream).__name__, got, peak, updates

    return trio.run(main)


def test_defect5_capped_stream_never_grants_a_16_mib_window() -> None:
    kind, got, peak, updates = _bulk_transfer(24 << 20, capped=True)
    assert kind == "CappedYamuxStream" and got == 24 << 20
    assert peak <= lp.MAX_RECV_WINDOW
    # go-yamux rule: a top-up only after half the window was consumed.
    assert updates <= (24 << 20) // (lp.MAX_RECV_WINDOW // 2) + 2


def test_defect5_is_real_uncapped_windows_grow_past_the_cap_and_update_per_read() -> None:
    # The control for the test above: without cap_window py-libp2p grows the window to 16 MiB
    # and sends a WINDOW_UPDATE after nearly every read.
    _, got, peak, updates = _bulk_transfer(24 << 20, capped=False)
    assert got == 24 << 20 and peak > 2 * lp.MAX_RECV_WINDOW
    assert updates > 4 * ((24 << 20) // (lp.MAX_RECV_WINDOW // 2) + 2)


def test_defect2_dial_does_not_go_through_happy_eyeballs_dial_peer() -> None:
    async def main():
        a, b = lp.make_host(), lp.make_host()
        async with a.run([LISTEN]), b.run([]):
            net = b.get_network()

            async def forbidden(*args, **kw):
                raise AssertionError("Swarm.dial_peer waits 250 ms after success (defect 2)")

            net.dial_peer = forbidden
            addr, pid = lp.parse_peer_addr(lp.listen_addrs(a)[0])
            await lp.dial(b, addr, pid)
            assert net.connections.get(pid)
            await lp.dial(b, addr, pid)  # already connected: a no-op

    trio.run(main)


def test_defect3_only_yamux_is_offered_and_negotiated() -> None:
    from libp2p.stream_muxer.yamux.yamux import Yamux

    async def main():
        a, b = lp.make_host(), lp.make_host()
        async with a.run([LISTEN]), b.run([]):
            addr, pid = lp.parse_peer_addr(lp.listen_addrs(a)[0])
            await lp.dial(b, addr, pid)
            conn = b.get_network().connections[pid][0]
            assert isinstance(conn.muxed_conn, Yamux)
            upgrader = b.get_network().upgrader
            offered = list(upgrader.muxer_multistream.transports)
            assert offered == [lp.YAMUX_PROTOCOL]

    trio.run(main)


def test_dial_failure_is_a_transport_error_naming_the_peer() -> None:
    async def main():
        b = lp.make_host()
        other = lp.make_host()
        async with b.run([]):
            addr = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/1")
            with pytest.raises(TransportError, match="cannot reach peer"):
                await lp.dial(b, addr, other.get_id())

    trio.run(main)


@pytest.mark.parametrize("bad", ["nonsense", "/ip4/127.0.0.1/tcp/4001", "/p2p/xyz"])
def test_peer_addresses_must_name_transport_and_peer(bad: str) -> None:
    with pytest.raises(InputError):
        lp.parse_peer_addr(bad)


def test_identity_persists_and_rejects_a_bad_seed(tmp_path) -> None:
    key = tmp_path / "peer.key"
    a = lp.load_identity(key)
    b = lp.load_identity(key)
    assert a.public_key.serialize() == b.public_key.serialize()
    assert (key.stat().st_mode & 0o777) == 0o600
    key.write_bytes(b"short")
    with pytest.raises(InputError):
        lp.load_identity(key)


@pytest.mark.parametrize("sizes", [[2, 65535, 2, 100_000], [1] * 50 + [None], [None, 7, 300_000]])
def test_buffered_tcp_reads_return_the_same_bytes_in_fewer_system_calls(sizes) -> None:
    payload = bytes(range(256)) * 2000  # 512,000 bytes

    async def main():
        a, b = trio.socket.socketpair()
        sa, sb = trio.SocketStream(a), trio.SocketStream(b)
        reader = lp.BufferedTrioTCPStream(sb)
        reader._rbuf = bytearray()
        calls = 0
        real = sb.receive_some

        async def counting(n=None):
            nonlocal calls
            calls += 1
            return await real(n)

        sb.receive_some = counting
        async with trio.open_nursery() as n:
            n.start_soon(sa.send_all, payload)
            got = bytearray()
            reads = 0
            i = 0
            while len(got) < len(payload):
                want = sizes[i % len(sizes)]
                i += 1
                chunk = await reader.read(want)
                reads += 1
                assert want is None or len(chunk) <= want
                got += chunk
        await sa.aclose()
        await sb.aclose()
        return bytes(got), calls, reads

    got, calls, reads = trio.run(main)
    assert got == payload
    assert calls <= reads
    if any(x is not None and x < 1000 for x in sizes):
        assert calls < reads  # small reads were served from memory


def _sender_writes(capped: bool, nbytes: int = 3 << 20) -> tuple[bytes, int, int]:
    """The sender re-classes (or not) its stream and writes ``nbytes`` of varied data; return
    (bytes received, raw connection writes, noise messages encrypted) on the sender's side."""
    import hashlib

    from libp2p.network.connection.raw_connection import RawConnection
    from libp2p.security.noise.io import NoiseTransportReadWriter

    payload = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(nbytes // 32))
    counts = {"raw": 0, "sealed": 0}
    sender_conns: set[int] = set()
    real_write, real_encrypt = RawConnection.write, NoiseTransportReadWriter.encrypt

    async def counting_write(self, data) -> None:  # type: ignore[no-untyped-def]
        counts["raw"] += id(self) in sender_conns
        await real_write(self, data)

    def counting_encrypt(self, data):  # type: ignore[no-untyped-def]
        counts["sealed"] += id(self.read_writer.read_write_closer) in sender_conns
        return real_encrypt(self, data)

    from cheng_build.pkg.fetch import libp2p_noise

    real_seal = libp2p_noise.DirectSeal.__call__

    def counting_seal(self, plain, out):  # type: ignore[no-untyped-def]
        counts["sealed"] += 1  # only bulk writes seal directly, and only the sender bulk-writes
        return real_seal(self, plain, out)

    async def main() -> bytes:
        received = bytearray()
        done = trio.Event()

        async def handler(s) -> None:
            await _read_to_end(s, 1 << 20, received.extend)
            done.set()

        async with _stream_to_server(handler) as s:
            if capped:
                lp.cap_window(s)
            session = s.muxed_stream.conn.secured_conn
            sender_conns.add(id(session.conn.read_writer.read_write_closer))
            await s.write(payload)
            await s.close()
            with trio.fail_after(30):
                await done.wait()
        return bytes(received)

    RawConnection.write, NoiseTransportReadWriter.encrypt = counting_write, counting_encrypt
    libp2p_noise.DirectSeal.__call__ = counting_seal  # type: ignore[method-assign]
    try:
        got = trio.run(main)
    finally:
        RawConnection.write, NoiseTransportReadWriter.encrypt = real_write, real_encrypt
        libp2p_noise.DirectSeal.__call__ = real_seal  # type: ignore[method-assign]
    assert got == payload
    return got, counts["raw"], counts["sealed"]


def test_bulk_write_sends_whole_noise_messages_many_per_system_call() -> None:
    _, raw, sealed = _sender_writes(capped=True)
    frames = -(-(3 << 20) // lp.FRAME_PAYLOAD)
    # About one noise message per yamux frame (a few more where the receiver's window cut a
    # round short, plus stream set-up), many messages per raw write.
    assert frames <= sealed <= frames + frames // 4
    assert raw <= sealed // 4


def test_bulk_write_is_needed_stock_yamux_splits_each_frame_in_two_messages_and_writes() -> None:
    # The control: py-libp2p's own write makes two noise messages and two raw writes per frame.
    _, raw, sealed = _sender_writes(capped=False)
    frames = -(-(3 << 20) // (65536 - 12))
    assert sealed >= 2 * frames and raw >= 2 * frames


def test_quick_gil_handoff_applies_while_a_node_runs_and_is_restored() -> None:
    import sys

    before = sys.getswitchinterval()
    seen: list[float] = []
    with pytest.raises(RuntimeError), lp.quick_gil_handoff():
        seen.append(sys.getswitchinterval())
        raise RuntimeError("the fetch failed")
    assert seen == [min(before, lp.GIL_SWITCH_S)] and sys.getswitchinterval() == before


def test_a_p2p_fetch_runs_with_the_quick_gil_handoff(tmp_path) -> None:
    import sys

    from helpers_net import DictStore, Provider, make_package

    from cheng_build.cas.cid import parse_cid
    from cheng_build.pkg.fetch.p2p.run import fetch_p2p

    cache, cid = make_package(tmp_path, size=600_000)
    prov = Provider(cache)
    seen: list[float] = []
    before = sys.getswitchinterval()
    try:
        fetch_p2p(DictStore(), [bytes(parse_cid(cid))], [prov.p2p],
                  on_block=lambda n: seen.append(sys.getswitchinterval()))
    finally:
        prov.stop()
    assert seen and set(seen) == {min(before, lp.GIL_SWITCH_S)}
    assert sys.getswitchinterval() == before


def test_fast_read_session_delivers_every_byte_in_order() -> None:
    import hashlib

    payload = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(70_000))

    async def main() -> tuple[str, str, bytes]:
        async def handler(s) -> None:
            for off in range(0, len(payload), 100_000):  # writes that straddle noise messages
                await s.write(payload[off:off + 100_000])
            await s.close()

        async with _stream_to_server(handler) as s:
            before = type(s.muxed_stream.conn.secured_conn).__name__
            lp.cap_window(s)
            after = type(s.muxed_stream.conn.secured_conn).__name__
            got = bytearray()
            await _read_to_end(s, 7_777, got.extend)  # odd sizes: reads end inside messages
            return before, after, bytes(got)

    before, after, got = trio.run(main)
    assert (before, after) == ("FastReadSession", "FastReadSession")  # re-classed on connect
    assert got == payload
