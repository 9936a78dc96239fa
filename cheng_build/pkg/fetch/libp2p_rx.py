"""The receive side of a py-libp2p 0.8.1 noise + yamux connection, in batches.

Part of the door to py-libp2p: only ``libp2p_adapter`` imports this module.

Found here: py-libp2p receives each yamux frame (<= 64 KiB) in its connection task through
about a dozen trio operations (a ``fail_after`` scope, the muxer's stream lock, two
``read_exactly`` loops through the noise session, ~8 debug-log f-strings formatted whether
logging is on or not); on a 64 MiB fetch that was half of the fetcher's CPU. Each received noise
message also crossed four layers of Python before yamux saw it.

``FastReadSession`` is py-libp2p's noise session with a different ``read``:

- it reads the socket up to ``READ_CHUNK`` bytes a time and decrypts every whole noise message
  received, with the session's own noise transport object (one reader task per connection, so
  nonces stay in order), into one plaintext buffer;
- once the yamux muxer runs on it (``attach``), each time the muxer's frame loop asks for the
  next 12-byte frame header, the session first hands every *plain* frame at the front of the
  buffer to yamux's own state directly: a DATA frame without flags for an open stream is
  appended to that stream's buffer (its receive window charged as yamux does), a WINDOW_UPDATE
  without flags for a known stream credits its send window; each stream's reader is woken once
  per batch. Any other frame (opening, closing or resetting a stream, ping, go-away, a frame
  larger than the window allows, a stream we do not know) is returned to yamux's loop as is,
  which handles it with py-libp2p's own logic: the protocol rules stay py-libp2p's.

Frames are the same bytes on the wire; only who copies them into the stream buffer changes.
"""

from __future__ import annotations

import struct
from typing import Any

import trio
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux import yamux as _yamux

from cheng_build.pkg.fetch import libp2p_noise as _noise

# What one socket read asks the kernel for.
READ_CHUNK = 256 * 1024
_HEADER = struct.Struct(_yamux.YAMUX_HEADER_FORMAT)
HEADER_SIZE = _yamux.HEADER_SIZE


class FastReadSession(SecureSession):
    """py-libp2p's noise session whose reads decrypt in batches and feed yamux directly."""

    _raw: Any  # the raw TCP connection under noise
    _rbuf: bytearray  # received ciphertext not yet decrypted (a partial noise message)
    _plain: bytearray  # decrypted bytes not yet handed out, from ``_ppos`` on
    _ppos: int
    _mux: Any  # the yamux muxer reading this session, once ``attach`` saw it start
    _body_left: int  # bytes of a DATA frame's body yamux's loop has still to read

    def _decrypt_from(self, data: bytes | bytearray) -> int:
        """Decrypt every whole noise message at the front of ``data`` onto ``_plain``; return
        the bytes of ``data`` used."""
        plain = self._plain
        if self._ppos:
            del plain[:self._ppos]
            self._ppos = 0
        decrypt = self._decrypt
        pos, end = 0, len(data)
        with memoryview(data) as view:
            while end - pos >= 2:
                length = data[pos] << 8 | data[pos + 1]
                if end - pos - 2 < length:
                    break
                plain += decrypt(view[pos + 2:pos + 2 + length])
                pos += 2 + length
        return pos

    async def _more(self) -> bool:
        """Add at least one noise message's plaintext to ``_plain``; False at end of stream."""
        while True:
            rbuf = self._rbuf
            if rbuf:
                used = self._decrypt_from(rbuf)
                if used:
                    del rbuf[:used]
                    return True
            data = await self._raw.read(READ_CHUNK)
            if not data:
                return False
            if rbuf:
                rbuf += data
                continue
            # The common case: nothing was left over, so the messages are decrypted straight
            # from what the socket returned and only a trailing partial message is kept.
            used = self._decrypt_from(data)
            if used < len(data):
                rbuf += memoryview(data)[used:]
            if used:
                return True

    def _decrypt(self, message: memoryview) -> bytes:
        """One noise transport message's plaintext, through the session's own noise object
        (noise accepts only ``bytes``: one copy of the message first)."""
        return self.conn.decrypt(bytes(message))


    async def read(self, n: int | None = None) -> bytes:
        if n == 0:
            return b""
        mux = self._mux
        if mux is not None and self._body_left == 0 and n == HEADER_SIZE:
            await self._deliver_plain_frames(mux)
        if len(self._plain) == self._ppos and not await self._more():
            return b""
        plain, pos = self._plain, self._ppos
        k = len(plain) - pos if n is None else min(n, len(plain) - pos)
        with memoryview(plain) as view:
            out = bytes(view[pos:pos + k])
        self._ppos = pos + k
        if mux is not None:
            if self._body_left:
                self._body_left -= k
            elif n == HEADER_SIZE and k == HEADER_SIZE:
                _, typ, _, _, length = _HEADER.unpack(out)
                if typ == _yamux.TYPE_DATA:  # yamux's loop reads this many body bytes next
                    self._body_left = length
        return out

    async def _deliver_plain_frames(self, mux: Any) -> None:
        """Hand the plain DATA and WINDOW_UPDATE frames at the front of the plaintext to yamux's
        stream state; return at the first other frame (or end of stream) with its header
        buffered, for yamux's own loop to read."""
        woken: set[int] = set()
        try:
            while not mux.event_shutting_down.is_set():
                plain, pos = self._plain, self._ppos
                avail = len(plain) - pos
                if avail < HEADER_SIZE:
                    _wake(mux, woken)  # let the readers work while we wait for the socket
                    if not await self._more():
                        return
                    continue
                version, typ, flags, sid, length = _HEADER.unpack_from(plain, pos)
                if version != 0 or flags != 0:
                    return
                if typ == _yamux.TYPE_DATA:
                    stream = mux.streams.get(sid)
                    buf = mux.stream_buffers.get(sid)
                    if stream is None or buf is None or stream.closed or stream.recv_closed \
                            or length > stream.recv_window or length > _yamux.MAX_WINDOW_SIZE:
                        return
                    if avail < HEADER_SIZE + length:
                        _wake(mux, woken)
                        if not await self._more():
                            return
                        continue  # parse again: the stream may have changed meanwhile
                    with memoryview(plain) as view:
                        buf += view[pos + HEADER_SIZE:pos + HEADER_SIZE + length]
                    stream.recv_window -= length
                    woken.add(sid)
                elif typ == _yamux.TYPE_WINDOW_UPDATE:
                    stream = mux.streams.get(sid)
                    if stream is None:
                        return
                    stream.send_window += length
                    opened = getattr(stream, "_window_opened", None)
                    if opened is not None:
                        opened.set()
                else:
                    return
                self._ppos = pos + HEADER_SIZE + (length if typ == _yamux.TYPE_DATA else 0)
        finally:
            _wake(mux, woken)


def _wake(mux: Any, sids: set[int]) -> None:
    for sid in sids:
        event = mux.stream_events.get(sid)
        if event is not None:
            event.set()
    sids.clear()


def fast_session(session: Any, raw: Any) -> FastReadSession | None:
    """Re-class ``session`` (py-libp2p's noise ``SecureSession`` over ``raw``) as
    ``FastReadSession``; bytes the stock session had buffered are kept, in order."""
    if type(session) is FastReadSession:
        return session
    if type(session) is not SecureSession:
        return None
    leftover = session._drain(None) if session.low_watermark != session.high_watermark else b""
    fast: FastReadSession = session  # type: ignore[assignment]  # re-classed on the last line
    fast._raw = raw
    fast._rbuf = bytearray()
    fast._plain = bytearray(leftover)
    fast._ppos = 0
    fast._mux = None
    fast._body_left = 0
    direct = _noise.direct_decrypt(session.conn)
    if direct is not None:
        fast._decrypt = direct  # type: ignore[method-assign]
    session.__class__ = FastReadSession
    return fast


def attach(session: FastReadSession, muxed: Any) -> None:
    """Feed plain frames to ``muxed`` (py-libp2p's ``Yamux`` on ``session``, not yet started:
    nothing of its frames has been read, so the next read is a frame header)."""
    if type(muxed) is _yamux.Yamux and muxed.secured_conn is session:
        session._mux = muxed
        session._body_left = 0


def has_fast_reads(stream: Any) -> bool:
    """Whether ``stream``'s connection is read by a ``FastReadSession`` fed to its muxer (so
    ``window_opened`` hears of every plain WINDOW_UPDATE)."""
    session = getattr(stream.conn, "secured_conn", None)
    return type(session) is FastReadSession and session._mux is stream.conn


async def window_opened(stream: Any, timeout_s: float) -> None:
    """Wait until a WINDOW_UPDATE credits ``stream``'s send window (or ``timeout_s`` passed)."""
    deadline = trio.current_time() + timeout_s
    try:
        while stream.send_window <= 0 and not stream.closed and trio.current_time() < deadline:
            event = stream._window_opened = trio.Event()
            # A close or reset reaches the stream through yamux's own loop, which does not
            # set the event: look again every 50 ms.
            with trio.move_on_after(0.05):
                await event.wait()
    finally:
        stream._window_opened = None
