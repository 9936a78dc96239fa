"""A small asyncio HTTP/1.1 client: what the Matrix room's JSON requests need, no more.

Why not aiohttp (which mautrix uses): importing it costs ~0.12 s of CPU even after asyncio (its
connector builds SSL contexts at import, its client pulls in multidict, yarl, attrs...), paid at
the start of every ``cis run --room:`` for a handful of JSON requests. Here the socket is
asyncio's streams and the framing (Content-Length, chunked, keep-alive, malformed answers) is h11,
python-hyper's sans-IO HTTP/1.1 state machine (~8 ms to import, no dependencies).

- Keep-alive: a finished connection goes back to a small idle pool; concurrent requests (a
  node's ``/sync`` long-poll while its flusher PUTs events) each take a connection of their own.
- ``https://``: certificates are verified against the system's CAs with ``server_hostname``
  checked; the default SSL context (loading the CA bundle) is built on first use only.
- Deadlines: connecting gets ``connect_timeout_s``; the exchange after it must finish within the
  request's own expected duration (``expect_s``: a long-poll's ``timeout``) plus
  ``read_margin_s``, so a homeserver that died without closing the socket cannot hang a node
  forever, while a slow but live one (a big ``/messages``, a loaded server) is given time.
- A reused idle connection may have been closed by the server meanwhile (its keep-alive timeout
  raced our request): when it fails before any byte of an answer came back, the request is sent
  again once on a fresh connection, but only if repeating it is harmless (``idempotent``:
  by default the methods RFC 9110 calls idempotent).

An HTTP error status is an answer (:class:`Response`); :class:`HttpError` is for everything
below HTTP (no connection, a reset, a passed deadline, a malformed or oversize answer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

import h11

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping, Sequence

CONNECT_TIMEOUT_S = 20.0
# 60 s: the read timeout reverse proxies in front of homeservers commonly use (nginx's default),
# so no live homeserver behind one takes longer to start an answer; a dead one costs a node a
# minute instead of hanging it.
READ_MARGIN_S = 60.0
MAX_IDLE = 4  # a node uses two or three at once (sync, send, a members check)
# A Matrix event is at most 64 KiB and one answer carries at most ~1000 of them.
MAX_BODY = 128 << 20
_READ = 1 << 16
# RFC 9110 §9.2.2: repeating these has the same effect as sending them once.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})

_tls_default: ssl.SSLContext | None = None


class HttpError(Exception):
    """The exchange failed below HTTP; the message says how, for a one-line error."""


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer."""

    status: int
    headers: tuple[tuple[str, str], ...]  # names lower-case, in the order received
    body: bytes


class _Stale(Exception):
    """A connection failed before any byte of the answer: on a reused one, the server had
    closed it while it was idle (the request never reached it, or was never answered)."""


@dataclass(slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    state: h11.Connection

    def alive(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


def _tls() -> ssl.SSLContext:
    global _tls_default
    if _tls_default is None:
        import ssl

        _tls_default = ssl.create_default_context()  # CERT_REQUIRED, check_hostname
    return _tls_default


class Client:
    """Requests to one origin (``http://host:port/prefix`` or ``https://...``).

    Raises:
        ValueError: ``base_url`` is not an http(s) URL with a host (a usage mistake).
    """

    def __init__(self, base_url: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 read_margin_s: float = READ_MARGIN_S, max_idle: int = MAX_IDLE,
                 max_body: int = MAX_BODY, ssl_context: ssl.SSLContext | None = None) -> None:
        url = urlsplit(base_url)
        port = url.port  # a ValueError for a port that is not one
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http:// or https:// URL: {base_url!r}")
        self._tls = url.scheme == "https"
        self._host = url.hostname
        self._port = port or (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = host if port is None else f"{host}:{port}"
        self._prefix = url.path.rstrip("/")
        self._ssl = ssl_context
        self._connect_timeout_s = connect_timeout_s
        self._read_margin_s = read_margin_s
        self._max_idle = max_idle
        self._max_body = max_body
        self._idle: deque[_Conn] = deque()
        self._closed = False

    async def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                      body: bytes | None = None, headers: Sequence[tuple[str, str]] = (),
                      expect_s: float = 0.0, idempotent: bool | None = None) -> Response:
        """Send ``method path?query`` (``path`` after the base URL's own path, already quoted;
        ``query`` is encoded here) with ``body``, and read the whole answer.

        ``expect_s``: how long the server may legitimately take (a long-poll's timeout); the
        answer must be complete within it plus the client's ``read_margin_s``.
        ``idempotent``: may a reused connection that failed be retried (default: by method)?

        Raises:
            HttpError: no connection, a reset, no complete answer in time, a malformed answer.
        """
        if self._closed:
            raise RuntimeError("request on a closed http1.Client")
        target = self._prefix + path
        if query:
            target += "?" + urlencode(query, quote_via=quote)
        head = [("Host", self._authority), *headers]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(("Content-Length", str(len(body or b""))))
        try:
            req = h11.Request(method=method, target=target, headers=head)
        except h11.LocalProtocolError as exc:  # a header or target that is not HTTP
            raise ValueError(f"bad request {method} {target!r}: {exc}") from exc
        retry = method in _IDEMPOTENT if idempotent is None else idempotent
        conn, reused = await self._take(fresh=False)
        while True:
            try:
                answer = await self._exchange(conn, req, body or b"", expect_s)
            except _Stale as exc:
                conn.close()
                if not (reused and retry):
                    raise HttpError(str(exc)) from exc.__cause__
                # The most recently used idle connection was dead: the older ones are too.
                self._drop_idle()
                conn, reused = await self._take(fresh=True)
                continue
            except BaseException:  # a failure, a deadline, a cancel: its state is unknown
                conn.close()
                raise
            self._give_back(conn)
            return answer

    async def _take(self, *, fresh: bool) -> tuple[_Conn, bool]:
        while self._idle and not fresh:
            conn = self._idle.pop()  # the most recently used: the likeliest to be open still
            if conn.alive():
                return conn, True
            conn.close()
        return await self._open(), False

    async def _open(self) -> _Conn:
        where = f"{self._host}:{self._port}"
        ctx = (self._ssl or _tls()) if self._tls else None
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=ctx, server_hostname=self._host if ctx else None,
                    limit=_READ)
        except TimeoutError as exc:
            raise HttpError(f"cannot connect to {where}: no answer within "
                            f"{self._connect_timeout_s:g} s") from exc
        except OSError as exc:  # refused, unreachable, no such host, a certificate refused
            raise HttpError(f"cannot connect to {where}: {exc.strerror or exc}") from exc
        return _Conn(reader, writer, h11.Connection(h11.CLIENT))

    async def _exchange(self, conn: _Conn, req: h11.Request, body: bytes, expect_s: float) -> Response:
        limit = expect_s + self._read_margin_s
        got = False  # any byte of the answer yet (after one, nothing is retried)
        try:
            async with asyncio.timeout(limit):
                out = conn.state.send(req) or b""
                if body:
                    out += conn.state.send(h11.Data(data=body)) or b""
                out += conn.state.send(h11.EndOfMessage()) or b""
                conn.writer.write(out)
                await conn.writer.drain()
                status, size = 0, 0
                head: tuple[tuple[str, str], ...] = ()
                parts: list[bytes] = []
                while True:
                    event = conn.state.next_event()
                    if event is h11.NEED_DATA:
                        data = await conn.reader.read(_READ)
                        got = got or bool(data)
                        conn.state.receive_data(data)  # b"": the server closed its side
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                        head = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
                    elif isinstance(event, h11.Data):
                        size += len(event.data)
                        if size > self._max_body:
                            raise HttpError(f"an answer over {self._max_body} bytes")
                        parts.append(bytes(event.data))
                    elif isinstance(event, h11.EndOfMessage):
                        return Response(status, head, b"".join(parts))
                    elif isinstance(event, h11.ConnectionClosed):
                        raise h11.RemoteProtocolError("the server closed the connection")
                    # h11.InformationalResponse (1xx): the real answer follows
        except TimeoutError as exc:
            raise HttpError(f"no complete answer within {limit:g} s") from exc
        except (OSError, h11.ProtocolError) as exc:
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if not got:
                raise _Stale(f"the connection failed before an answer ({why})") from exc
            raise HttpError(f"the connection failed mid-answer ({why})") from exc

    def _give_back(self, conn: _Conn) -> None:
        st = conn.state
        if (self._closed or len(self._idle) >= self._max_idle or st.our_state is not h11.DONE
                or st.their_state is not h11.DONE or st.trailing_data[0]):
            # The server said close, or sent more than its answer (it would be taken for the
            # next request's), or the pool is full.
            conn.close()
            return
        st.start_next_cycle()
        self._idle.append(conn)

    def _drop_idle(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def close(self) -> None:
        """Close the idle connections; one in use is closed when its request ends."""
        self._closed = True
        idle = list(self._idle)
        self._drop_idle()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):  # a TLS close waits for the peer's; never long
                await asyncio.gather(*(c.writer.wait_closed() for c in idle), return_exceptions=True)
