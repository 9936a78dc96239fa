"""The room's HTTP/1.1 client (cis/node/http1.py) against a scripted server on loopback: framing
(Content-Length, chunked, answers cut into pieces), keep-alive reuse and the retry of a reused
connection the server closed, deadlines, TLS verification, and the Matrix room's mapping of
what comes back to RoomError. The same client against a real Synapse: test_cisnode_room.py."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import itertools
import json
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers_synapse import free_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build.cis.node.http1 import Client, HttpError
from cheng_build.cis.node.matrix import MatrixRoom
from cheng_build.cis.node.room import RoomError

pytestmark = pytest.mark.network


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    conn: int  # which connection (1, 2, ...) it came on
    nth: int  # its place on that connection (0: the first)


@dataclass(frozen=True)
class Reply:
    """What the server does with a request: write ``pieces`` one by one (each flushed), then
    close the connection when ``close``; ``hang``: never answer."""

    pieces: Sequence[bytes] = ()
    close: bool = False
    hang: bool = False


Script = Callable[[Seen], Reply]


def with_length(status: int, body: bytes, *, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}\r\n").encode() + body


def chunked(status: int, pieces: Sequence[bytes]) -> bytes:
    out = f"HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    for p in pieces:
        if p:  # a chunk of size 0 is the end
            out += f"{len(p):x}\r\n".encode() + p + b"\r\n"
    return out + b"0\r\n\r\n"


def always(reply: Reply) -> Script:
    return lambda _s: reply


def ok(doc: Any = None) -> Reply:
    return Reply([with_length(200, json.dumps({} if doc is None else doc).encode())])


@dataclass
class Loopback:
    """A scripted HTTP/1.1 server on 127.0.0.1 (asyncio, on the test's own loop)."""

    script: Script
    seen: list[Seen] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _server: asyncio.Server | None = None
    url: str = ""

    @property
    def connections(self) -> int:
        return len(self._writers)

    async def __aenter__(self) -> Loopback:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        conn = next(self._ids)
        try:
            for nth in itertools.count():
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, *rest = head.decode("latin-1").split("\r\n")
                method, target, _version = line.split(" ")
                headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in rest if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(method, target, headers, body, conn, nth)
                self.seen.append(seen)
                reply = self.script(seen)
                if reply.hang:
                    await asyncio.Event().wait()  # cancelled when the server closes
                for piece in reply.pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)  # let each piece go out on its own
                if reply.close:
                    return
        finally:
            writer.close()


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 60))  # a bound on every test, never an assertion


def room(url: str, **client: Any) -> MatrixRoom:
    return MatrixRoom(Client(url, **client), "tok-1", "@me:test", "!room:test", "f1")


# --- framing and what a request carries ---------------------------------------------------------


def test_a_request_carries_method_path_query_auth_and_json() -> None:
    async def main() -> None:
        async with Loopback(lambda s: ok({"event_id": "$e1"})) as srv:
            r = room(srv.url)
            assert await r.send("org.cheng.cis.test", {"k": "v é", "n": [1, 2]}, "txn/1 x") == "$e1"
            got = await r.read("s1 2&3", 0.5)
            await r.close()
        put, sync = srv.seen
        assert put.method == "PUT"
        assert put.target == "/_matrix/client/v3/rooms/%21room%3Atest/send/org.cheng.cis.test/txn%2F1%20x"
        assert put.headers["authorization"] == "Bearer tok-1"
        assert put.headers["content-type"] == "application/json"
        assert put.headers["host"] == srv.url.removeprefix("http://")
        assert json.loads(put.body) == {"k": "v é", "n": [1, 2]}
        path, _, query = sync.target.partition("?")
        assert sync.method == "GET" and path == "/_matrix/client/v3/sync" and sync.body == b""
        from urllib.parse import parse_qs

        assert parse_qs(query) == {"filter": ["f1"], "timeout": ["500"], "set_presence": ["offline"],
                                   "since": ["s1 2&3"]}
        assert got.events == () and got.token == "s1 2&3"

    run(main)


def test_a_chunked_answer_and_one_with_length_read_the_same() -> None:
    doc = {"joined": {"@a:test": {}, "@b:test": {"display_name": "B" * 5000}}}
    raw = json.dumps(doc).encode()

    async def main() -> None:
        for reply in (Reply([chunked(200, [raw[:7], raw[7:4000], raw[4000:]])]),
                      Reply([with_length(200, raw)]),
                      Reply([chunked(200, [raw])[:50], chunked(200, [raw])[50:]])):  # head cut in two
            async with Loopback(always(reply)) as srv:
                r = room(srv.url)
                assert await r.members() == frozenset({"@a:test", "@b:test"})
                await r.close()

    run(main)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_values, cuts=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=6),
       wire=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=6), use_chunks=st.booleans())
def test_any_json_in_any_pieces_comes_back_exactly(doc: Any, cuts: list[int], wire: list[int],
                                                   use_chunks: bool) -> None:
    """Whatever JSON the server sends, cut into whatever chunks, its bytes cut into whatever
    writes (head and chunk-size lines included), the client returns exactly it."""
    body = json.dumps(doc).encode()
    at = sorted({c % (len(body) + 1) for c in cuts})
    chunks = [body[a:b] for a, b in zip([0, *at], [*at, len(body)], strict=True)]
    raw = chunked(200, chunks) if use_chunks else with_length(200, body)
    w = sorted({c % (len(raw) + 1) for c in wire})
    pieces = [raw[a:b] for a, b in zip([0, *w], [*w, len(raw)], strict=True) if b > a]

    async def main() -> None:
        async with Loopback(lambda _s: Reply(pieces)) as srv:
            c = Client(srv.url)
            got = await c.request("GET", "/x")
            await c.close()
        assert got.status == 200 and got.body == body
        assert json.loads(got.body) == doc

    run(main)


# --- keep-alive -----------------------------------------------------------------------------------


def test_connections_are_reused_and_concurrent_requests_get_their_own() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        def script(s: Seen) -> Reply:
            return Reply(hang=True) if s.target.startswith("/hold") and not gate.is_set() else ok()

        async with Loopback(script) as srv:
            c = Client(srv.url)
            for _ in range(3):
                assert (await c.request("GET", "/a")).status == 200
            assert srv.connections == 1  # one connection for three requests one after another
            gate.set()
            await asyncio.gather(*(c.request("GET", f"/b{i}") for i in range(3)))
            assert srv.connections == 3  # three at once: the idle one and two new
            await asyncio.gather(*(c.request("GET", f"/c{i}") for i in range(3)))
            assert srv.connections == 3  # and all three went back to the pool
            await c.close()

    run(main)


def test_a_connection_the_server_closes_after_answering_is_not_reused() -> None:
    async def main() -> None:
        async with Loopback(lambda _s: Reply([with_length(200, b"{}", extra="Connection: close\r\n")],
                                             close=True)) as srv:
            c = Client(srv.url)
            for _ in range(3):
                assert (await c.request("GET", "/a")).status == 200
            await c.close()
        assert srv.connections == 3 and {s.nth for s in srv.seen} == {0}

    run(main)


def test_a_reused_connection_closed_by_the_server_is_retried_once_on_a_fresh_one() -> None:
    """The keep-alive race: the server closes an idle connection just as the next request goes
    out on it (here: it reads the request and closes without answering). An idempotent request
    is sent again on a new connection; a POST (by default) is not, its failure is the caller's."""

    async def main() -> None:
        async with Loopback(lambda s: Reply(close=True) if s.nth == 1 else ok({"n": s.conn})) as srv:
            c = Client(srv.url)
            assert (await c.request("GET", "/one")).body == b'{"n": 1}'
            again = await c.request("PUT", "/two", body=b"{}")  # on conn 1 (dropped), then conn 2
            assert again.body == b'{"n": 2}'
            assert [(s.method, s.conn, s.nth) for s in srv.seen] == [("GET", 1, 0), ("PUT", 1, 1),
                                                                      ("PUT", 2, 0)]
            with pytest.raises(HttpError, match="before an answer"):
                await c.request("POST", "/three", body=b"{}")  # conn 2's second request: dropped
            assert srv.seen[-1].target == "/three" and srv.connections == 2  # not sent again
            # ...unless the caller says repeating it is harmless (the room's filter POST):
            assert (await c.request("POST", "/four", body=b"{}", idempotent=True)).body == b'{"n": 3}'
            assert [s.target for s in srv.seen].count("/four") == 1
            await c.close()

    run(main)


def test_only_one_retry_and_none_on_a_fresh_connection() -> None:
    async def main() -> None:
        async with Loopback(lambda s: ok() if s.conn == 1 else Reply(close=True)) as srv:
            c = Client(srv.url)
            await c.request("GET", "/warm")  # conn 1 answers and goes idle; every later one drops
            srv.script = lambda s: Reply(close=True)
            with pytest.raises(HttpError):
                await c.request("GET", "/x")
            assert [s.conn for s in srv.seen if s.target == "/x"] == [1, 2]  # reused, then one fresh
            with pytest.raises(HttpError):
                await c.request("GET", "/y")  # fresh (the pool is empty): no retry
            assert [s.conn for s in srv.seen if s.target == "/y"] == [3]
            await c.close()

    run(main)


# --- failures -------------------------------------------------------------------------------------


def test_rate_limits_and_overload_are_transient_and_refusals_say_why() -> None:
    answers = {
        "/429": Reply([with_length(429, b'{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":100}')]),
        "/503": Reply([with_length(503, b"<html>busy</html>")]),
        "/500": Reply([chunked(500, [b'{"errcode":"M_UNKNOWN"}'])]),
        "/403": Reply([with_length(403, b'{"errcode":"M_FORBIDDEN","error":"You are not invited"}')]),
        "/404": Reply([with_length(404, b"<html>no such page</html>")]),
        "/200-not-json": Reply([with_length(200, b"<html>a proxy's page</html>")]),
        "/200-a-list": Reply([with_length(200, b"[1, 2]")]),
    }

    async def main() -> None:
        async with Loopback(lambda s: answers[s.target.removeprefix("/_matrix/client/v3")]) as srv:
            r = room(srv.url)
            for path in ("/429", "/503", "/500"):
                with pytest.raises(RoomError) as busy:
                    await r._request("GET", path)
                assert busy.value.transient and busy.value.what == f"homeserver answered HTTP {path[1:]}"
            with pytest.raises(RoomError) as refused:
                await r._request("GET", "/403")
            assert not refused.value.transient
            assert refused.value.what == "homeserver refused: M_FORBIDDEN: You are not invited"
            with pytest.raises(RoomError) as missing:
                await r._request("GET", "/404")
            assert not missing.value.transient and missing.value.what == "homeserver refused: 404"
            assert await r._request("GET", "/200-not-json") == {}
            assert await r._request("GET", "/200-a-list") == {}
            await r.close()
        assert srv.connections == 1  # an error status is an answer: the connection stays usable

    run(main)


def test_a_refused_connection_is_transient() -> None:
    async def main() -> None:
        r = room(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(RoomError) as down:
            await r.members()
        assert down.value.transient and down.value.what.startswith("homeserver unreachable: cannot connect")
        await r.close()

    run(main)


def test_a_server_that_never_answers_meets_the_read_deadline() -> None:
    """A homeserver that accepted the connection and went silent: the request fails (transient)
    after its expected time plus the margin (short here), instead of hanging the node."""

    async def main() -> None:
        async with Loopback(lambda _s: Reply(hang=True)) as srv:
            r = room(srv.url, read_margin_s=0.2)
            with pytest.raises(RoomError) as silent:
                await r.read("s1", 0.1)  # a long-poll: its own 0.1 s + 0.2 s
            assert silent.value.transient and "no complete answer within 0.3 s" in silent.value.what
            await r.close()

    run(main)


@pytest.mark.parametrize("reply, why", [
    (Reply([b"HTTP/1.1 abc nonsense\r\n\r\n"], close=True), "mid-answer"),
    (Reply([b"SSH-2.0-OpenSSH_9.6\r\n"], close=True), "mid-answer"),
    (Reply([b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\": 1"], close=True), "mid-answer"),
    (Reply([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], close=True), "mid-answer"),
    (Reply(close=True), "before an answer"),
])
def test_malformed_or_cut_answers_are_errors_not_data(reply: Reply, why: str) -> None:
    async def main() -> None:
        async with Loopback(lambda _s: reply) as srv:
            c = Client(srv.url)
            with pytest.raises(HttpError, match=why):
                await c.request("GET", "/x")
            await c.close()

    run(main)


def test_an_oversize_answer_is_refused() -> None:
    async def main() -> None:
        async with Loopback(lambda _s: Reply([chunked(200, [b"x" * 3000] * 4)])) as srv:
            c = Client(srv.url, max_body=10_000)
            with pytest.raises(HttpError, match="over 10000 bytes"):
                await c.request("GET", "/big")
            await c.close()

    run(main)


def test_a_bad_homeserver_url_is_a_clear_refusal() -> None:
    from cheng_build.cis.node import matrix

    for url in ("http://", "ftp://example.org", "http://127.0.0.1:99999"):
        with pytest.raises(RoomError) as bad:
            asyncio.run(matrix.connect(url, "a", password="x", room="r"))
        assert not bad.value.transient and bad.value.what.startswith("homeserver ")


# --- https ------------------------------------------------------------------------------------------


def _cert(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (a DNS name or an IP address)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, pem = tmp / f"{name}.crt", tmp / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def test_https_verifies_the_certificate_and_the_host_name(tmp_path: Path) -> None:
    """Over TLS: a certificate the client trusts, for the host it dialled, answers; the same
    server is refused by the system's CAs (self-signed), and a trusted certificate for another
    name is refused (the host name is checked, not only the signature)."""
    good, good_key = _cert(tmp_path, "127.0.0.1")
    other, other_key = _cert(tmp_path, "other.test")

    def trusting(crt: Path) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(crt))
        return ctx

    async def serve(crt: Path, key: Path) -> tuple[Loopback, asyncio.Server, str]:
        srv = Loopback(lambda _s: ok({"tls": True}))
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(crt), str(key))
        server = await asyncio.start_server(srv._serve, "127.0.0.1", 0, ssl=tls)
        return srv, server, f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def main() -> None:
        srv, server, url = await serve(good, good_key)
        c = Client(url, ssl_context=trusting(good))
        assert (await c.request("GET", "/x")).body == b'{"tls": true}'
        assert (await c.request("GET", "/y")).status == 200 and srv.connections == 1  # kept alive
        await c.close()
        with pytest.raises(HttpError, match="certificate verify failed"):
            await Client(url).request("GET", "/x")  # the system's CAs do not know it
        server.close()
        srv2, server2, url2 = await serve(other, other_key)
        with pytest.raises(HttpError, match="certificate verify failed"):
            await Client(url2, ssl_context=trusting(other)).request("GET", "/x")
        assert srv2.seen == [] and len(srv.seen) == 2  # nothing was sent to a server not verified
        server2.close()
        for w in [*srv._writers, *srv2._writers]:
            w.close()

    run(main)


# --- start-up -----------------------------------------------------------------------------------------


def test_the_room_module_imports_neither_aiohttp_nor_mautrix_nor_a_tls_context() -> None:
    """`cis run --room:` with a kept session imports matrix.py and http1.py only: neither
    aiohttp nor mautrix (imported by matrix_join.py, the first login only), and no TLS context
    is built for a plain-http homeserver."""
    code = ("import sys; import cheng_build.cli.cis_node, cheng_build.cis.node.origin, "
            "cheng_build.cis.node.agent, cheng_build.cis.node.matrix as m; "
            "from cheng_build.cis.node import http1; "
            "print(sorted({k.split('.')[0] for k in sys.modules} & {'aiohttp', 'mautrix', 'yarl'}), "
            "http1._tls_default is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True"]


def test_bytes_after_an_answer_never_become_the_next_answer() -> None:
    """A server that sends a second, unasked answer after the first: the connection is not
    reused, so the next request gets its own answer, not the stray one."""

    async def main() -> None:
        stray = with_length(200, b'{"stray": true}')
        async with Loopback(lambda s: Reply([with_length(200, b'{"n": %d}' % s.conn) + stray])) as srv:
            c = Client(srv.url)
            assert (await c.request("GET", "/a")).body == b'{"n": 1}'
            assert (await c.request("GET", "/b")).body == b'{"n": 2}'
            await c.close()

    run(main)
