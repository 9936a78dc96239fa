"""The batched receive path (``libp2p_rx``), the event-driven window wait and ``hang_up``.

Real py-libp2p hosts on 127.0.0.1; each test checks a mechanism (frames that bypass yamux's
loop, polls that do not happen, sleeps that are not waited out), never a time.
"""

from __future__ import annotations

import hashlib
from typing import Any

import multiaddr
import pytest
import trio

from cheng_build.pkg.fetch import libp2p_adapter as lp
from cheng_build.pkg.fetch import libp2p_noise
from cheng_build.pkg.fetch import libp2p_rx as rx

pytestmark = pytest.mark.network
PROTO = "/cheng-test/rx/1"
LISTEN = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def _payload(seed: int, size: int) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d:%d" % (seed, i)).digest()
        i += 1
    return bytes(out[:size])


async def _read_all(s: Any, size: int) -> bytes:
    got = bytearray()
    while True:
        try:
            d = await s.read(size)
        except lp.STREAM_ERRORS:
            break
        if not d:
            break
        got += d
    return bytes(got)


def test_concurrent_streams_arrive_whole_and_most_frames_bypass_yamux_loop(monkeypatch) -> None:
    """Three streams written at once (frames interleave on the wire) each arrive byte for byte;
    yamux's own frame loop sees only the frames that open and close streams."""
    from libp2p.custom_types import TProtocol

    sizes = [3 << 20, 1_000_003, 200_001]
    payloads = [_payload(i, n) for i, n in enumerate(sizes)]
    headers_seen = {"stock": 0}
    real_read = rx.FastReadSession.read

    async def counting_read(self: Any, n: int | None = None) -> bytes:
        if self._mux is not None and n == rx.HEADER_SIZE and self._body_left == 0:
            headers_seen["stock"] += 1  # yamux's loop asks for its next frame's header
        return await real_read(self, n)

    monkeypatch.setattr(rx.FastReadSession, "read", counting_read)

    async def main() -> list[bytes]:
        a, b = lp.make_host(), lp.make_host()

        async def handler(s: Any) -> None:
            index = int((await s.read(1))[0])
            await s.write(payloads[index])
            await s.close()

        a.set_stream_handler(TProtocol(PROTO), handler)
        results: list[bytes] = [b""] * len(sizes)
        async with a.run([LISTEN]), b.run([]):
            addr, pid = lp.parse_peer_addr(lp.listen_addrs(a)[0])
            await lp.dial(b, addr, pid)
            session = b.get_network().connections[pid][0].muxed_conn.secured_conn
            assert type(session) is rx.FastReadSession and session._mux is not None
            # noiseprotocol's ChaCha20-Poly1305 (the pinned stack): decrypted from views
            assert isinstance(session._decrypt, libp2p_noise.DirectOpen)

            async def one(i: int) -> None:
                s = lp.cap_window(await b.new_stream(pid, [TProtocol(PROTO)]))
                await s.write(bytes([i]))
                results[i] = await _read_all(s, 100_000)

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for i in range(len(sizes)):
                        nursery.start_soon(one, i)
        return results

    got = trio.run(main)
    assert got == payloads
    data_frames = sum(-(-n // lp.FRAME_PAYLOAD) for n in sizes)
    # Each stream costs yamux's loop a few frames (ACK, FIN, window updates with flags, the
    # identify exchange); the DATA frames themselves went around it.
    assert headers_seen["stock"] < data_frames // 2


def test_a_bulk_write_waits_for_the_window_update_without_yamux_polling(monkeypatch) -> None:
    """A slow reader closes the sender's window; the sender sleeps until the update arrives
    (announced by the receive path), never in yamux's 10 ms poll."""
    from libp2p.custom_types import TProtocol

    payload = _payload(7, 2 * lp.MAX_RECV_WINDOW)
    waits = {"event": 0, "poll": 0}
    real_wait = rx.window_opened

    async def counting_wait(stream: Any, timeout_s: float) -> None:
        waits["event"] += 1
        await real_wait(stream, timeout_s)

    real_sleep = trio.sleep
    monkeypatch.setattr(rx, "window_opened", counting_wait)

    async def main() -> bytes:
        a, b = lp.make_host(), lp.make_host()
        done = trio.Event()

        async def handler(s: Any) -> None:
            lp.cap_window(s)
            await s.write(payload)
            # py-libp2p counts each time its own write found the window closed and polled.
            waits["poll"] = s.muxed_stream._zero_window_waits
            await s.close()
            done.set()

        a.set_stream_handler(TProtocol(PROTO), handler)
        async with a.run([LISTEN]), b.run([]):
            addr, pid = lp.parse_peer_addr(lp.listen_addrs(a)[0])
            await lp.dial(b, addr, pid)
            s = lp.cap_window(await b.new_stream(pid, [TProtocol(PROTO)]))
            got = bytearray()
            with trio.fail_after(60):
                while True:
                    await real_sleep(0.01)  # a slow reader: the sender's window runs out
                    try:
                        d = await s.read(256 * 1024)
                    except lp.STREAM_ERRORS:
                        break
                    if not d:
                        break
                    got += d
                await done.wait()
        return bytes(got)

    assert trio.run(main) == payload
    assert waits["event"] >= 1  # the window did close ...
    assert waits["poll"] == 0  # ... and nobody polled it


def _close_with(close: str, monkeypatch: Any) -> tuple[bool, bool, int, int]:
    """Dial, then close with ``close`` ("hang_up" or py-libp2p's "close_peer"); return (gone
    here, gone on the other end, notifications, 0.1 s sleeps waited out to their end)."""
    real_sleep = trio.sleep
    slept = {"n": 0}

    async def counting_sleep(seconds: float) -> None:
        await real_sleep(seconds)
        slept["n"] += seconds >= 0.1  # counted only once the sleep ran to its end

    async def main() -> tuple[bool, bool, int, int]:
        a, b = lp.make_host(), lp.make_host()
        told: list[Any] = []
        lp.on_disconnect(b, told.append)
        async with a.run([LISTEN]), b.run([]):
            addr, pid = lp.parse_peer_addr(lp.listen_addrs(a)[0])
            await lp.dial(b, addr, pid)
            assert b.get_network().get_connections(pid)
            monkeypatch.setattr(trio, "sleep", counting_sleep)
            try:
                with trio.fail_after(10):
                    if close == "hang_up":
                        await lp.hang_up(b, pid)
                    else:
                        await b.get_network().close_peer(pid)
                during = slept["n"]
            finally:
                monkeypatch.setattr(trio, "sleep", real_sleep)
            here_gone = not b.get_network().get_connections(pid)
            with trio.fail_after(10):  # the other end sees the socket close
                while a.get_network().get_connections(b.get_id()):
                    await real_sleep(0.01)
            await lp.hang_up(b, pid)  # nothing left to close: a no-op
            return here_gone, True, len(told), during

    return trio.run(main)


def test_hang_up_closes_both_ends_tells_the_notifees_and_waits_out_no_sleep(monkeypatch) -> None:
    here_gone, there_gone, told, slept = _close_with("hang_up", monkeypatch)
    assert here_gone and there_gone and told == 1
    assert slept == 0


def test_hang_up_is_needed_close_peer_waits_out_its_sleeps(monkeypatch) -> None:
    # The control: py-libp2p's own close does the same, sleeping 0.1 s twice on the way.
    here_gone, there_gone, told, slept = _close_with("close_peer", monkeypatch)
    assert here_gone and there_gone and told == 1
    assert slept >= 2


def _negotiate(protocols: list[str], served: str, pipelined: bool) -> tuple[str, list[bytes]]:
    """Open a stream proposing ``protocols`` to a host serving ``served``; return (the protocol
    agreed, what the initiator wrote before it first read)."""
    from libp2p.custom_types import TProtocol
    from libp2p.protocol_muxer.multiselect_client import MultiselectClient

    from cheng_build.pkg.fetch import libp2p_select

    async def main() -> tuple[str, list[bytes]]:
        a, b = lp.make_host(), lp.make_host()
        assert type(b.multiselect_client) is libp2p_select.PipelinedSelect
        upgrader = b.get_network().upgrader
        for layer in (upgrader.security_multistream, upgrader.muxer_multistream):
            assert type(layer._selector.multiselect_client) is libp2p_select.PipelinedSelect
        if not pipelined:
            b.multiselect_client = MultiselectClient()

        async def handler(s: Any) -> None:
            await s.write(b"ok")
            await s.close()

        a.set_stream_handler(TProtocol(served), handler)
        async with a.run([LISTEN]), b.run([]):
            addr, pid = lp.parse_peer_addr(lp.listen_addrs(a)[0])
            await lp.dial(b, addr, pid)
            real_new = b.get_network().new_stream
            first: list[bytes] = []  # per stream: what it wrote before its first read

            async def counting_new(peer: Any) -> Any:
                s = await real_new(peer)
                real_write, real_read = s.write, s.read
                state = {"read": False}

                async def w(data: bytes) -> None:
                    if not state["read"]:
                        first.append(bytes(data))
                    await real_write(data)

                async def r(n: int | None = None) -> bytes:
                    state["read"] = True
                    return await real_read(n)

                s.write, s.read = w, r
                return s

            b.get_network().new_stream = counting_new
            with trio.fail_after(20):
                s = await b.new_stream(pid, [TProtocol(p) for p in protocols])
                got = await _read_all(s, 100)
            assert got == b"ok"
            return str(s.get_protocol()), first

    return trio.run(main)


def test_pipelined_select_sends_header_and_proposal_before_it_reads() -> None:
    proto, first = _negotiate(["/cheng-test/a/1"], "/cheng-test/a/1", True)
    assert proto == "/cheng-test/a/1"
    assert any(b"/multistream/1.0.0\n" in w and b"/cheng-test/a/1\n" in w for w in first)


def test_pipelined_select_is_needed_stock_select_waits_for_the_header_first() -> None:
    proto, first = _negotiate(["/cheng-test/a/1"], "/cheng-test/a/1", False)
    assert proto == "/cheng-test/a/1"
    assert not any(b"/cheng-test/a/1" in w for w in first)  # proposed only after a read


def test_pipelined_select_falls_back_to_the_next_protocol_on_na() -> None:
    proto, _ = _negotiate(["/cheng-test/a/1", "/cheng-test/b/1"], "/cheng-test/b/1", True)
    assert proto == "/cheng-test/b/1"


def _noise_pair() -> tuple[Any, Any]:
    """Two noiseprotocol connections (what py-libp2p's noise transport holds) after an NN
    handshake, each wrapped the way ``libp2p_noise`` finds its cipher states."""
    from types import SimpleNamespace

    from noise.connection import NoiseConnection

    a = NoiseConnection.from_name(b"Noise_NN_25519_ChaChaPoly_SHA256")
    b = NoiseConnection.from_name(b"Noise_NN_25519_ChaChaPoly_SHA256")
    a.set_as_initiator()
    b.set_as_responder()
    a.start_handshake()
    b.start_handshake()
    b.read_message(a.write_message())
    a.read_message(b.write_message())
    assert a.handshake_finished and b.handshake_finished
    return SimpleNamespace(noise_state=a), SimpleNamespace(noise_state=b)


@pytest.mark.parametrize("sizes", [[0, 1, 65519], [12 + 65507, 5, 300, 4096]])
def test_direct_seal_and_open_match_noise_and_keep_its_nonces_in_step(sizes: list[int]) -> None:
    a, b = _noise_pair()
    seal, opener = libp2p_noise.direct_encrypt(a), libp2p_noise.direct_decrypt(b)
    assert seal is not None and opener is not None
    for i, size in enumerate(sizes):
        msg = _payload(i, size)
        if i % 2 == 0:  # sealed directly, opened by noise itself
            out = bytearray(size + libp2p_noise.TAG_SIZE)
            seal(memoryview(msg), memoryview(out))
            assert b.noise_state.decrypt(bytes(out)) == msg
        else:  # sealed by noise itself, opened directly from a view
            sealed = a.noise_state.encrypt(msg)
            assert opener(memoryview(bytearray(b"xx" + sealed))[2:]) == msg
    # Both paths advanced the same counters: one more round each way still agrees.
    assert b.noise_state.decrypt(a.noise_state.encrypt(b"end")) == b"end"
    tampered = bytearray(a.noise_state.encrypt(b"forged?"))
    tampered[0] ^= 1
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        opener(memoryview(tampered))
