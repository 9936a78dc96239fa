"""``cheng-pkg serve``: a read-only provider of a package cache over bitswap and HTTP.

Two doors onto one block store (``<root>/blocks/``):

- libp2p (TCP, noise, yamux) speaking bitswap 1.2.0 (``pkg/fetch/p2p/node.py``); the peer identity is
  kept in ``<root>/peer.key`` (a 32-byte Ed25519 seed, mode 0600) so the addresses we print stay
  valid across restarts;
- HTTP, following the IPFS trustless gateway convention
  (https://specs.ipfs.tech/http-gateways/trustless-gateway/):
  ``GET|HEAD /ipfs/<cid>?format=raw`` one block (``application/vnd.ipld.raw``) and
  ``?format=car`` the whole DAG as a CAR v1 stream (``application/vnd.ipld.car``), also chosen
  by the ``Accept`` header. Nothing can be written through either door.

Every block is verified as it is read from the store, so a corrupted cache is never served.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from multiformats import CID

from cheng_build.cas.car import header_bytes, section_parts
from cheng_build.cas.cid import parse_cid
from cheng_build.core.errors import ChengError, InputError, NotFoundError, UsageError
from cheng_build.pkg.fetch.blocks import BlockStore, walk

log = logging.getLogger(__name__)

RAW = "application/vnd.ipld.raw"
CAR = "application/vnd.ipld.car"


def _format(query: str, accept: str) -> str | None:
    fmt = parse_qs(query).get("format", [None])[0]
    if fmt in ("raw", "car"):
        return fmt
    if fmt is not None:
        return "?"
    for part in accept.split(","):
        kind = part.split(";")[0].strip()
        if kind == RAW:
            return "raw"
        if kind == CAR:
            return "car"
    return None


# Bytes of CAR per HTTP chunk (one system call each).
CAR_CHUNK = 2 * 1024 * 1024


def _send_chunk(sock: socket.socket, parts: list[bytes], size: int) -> None:
    """Send one HTTP/1.1 chunk made of ``parts`` (``size`` bytes in all), vectored."""
    views = [memoryview(b"%x\r\n" % size), *(memoryview(p) for p in parts), memoryview(b"\r\n")]
    i = 0
    while i < len(views):
        sent = sock.sendmsg(views[i:i + 512])  # IOV_MAX is 1024 on Linux
        while sent:
            n = len(views[i])
            if sent >= n:
                sent -= n
                i += 1
            else:
                views[i] = views[i][sent:]
                sent = 0


class GatewayHandler(BaseHTTPRequestHandler):
    """The trustless gateway's requests: ``GET``/``HEAD /ipfs/<cid>`` as ``raw`` or ``car``;
    :func:`make_gateway_handler` binds a subclass to its store."""

    protocol_version = "HTTP/1.1"
    server_version = "cheng-pkg-gateway"
    store: ClassVar[BlockStore]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _fail(self, code: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _target(self) -> tuple[CID, str] | None:
        parts = urlsplit(self.path)
        segs = parts.path.split("/")
        if len(segs) != 3 or segs[1] != "ipfs" or not segs[2]:
            self._fail(404, "only /ipfs/<cid> is served")
            return None
        try:
            cid = parse_cid(segs[2])
        except ChengError:
            self._fail(400, f"not a CID: {segs[2]}")
            return None
        fmt = _format(parts.query, self.headers.get("Accept", ""))
        if fmt is None or fmt == "?":
            self._fail(406, "a trustless gateway serves only ?format=raw or ?format=car")
            return None
        return cid, fmt

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        target = self._target()
        if target is None:
            return
        cid, fmt = target
        try:
            if not self.store.has(cid):
                self._fail(404, f"block {cid} is not in this cache")
                return
            if fmt == "raw":
                self._send_raw(cid)
            else:
                self._send_car(cid)
        except ChengError as exc:
            self._fail(404 if isinstance(exc, NotFoundError) else 500, exc.what)

    def _immutable_headers(self, etag: str) -> None:
        self.send_header("Cache-Control", "public, max-age=29030400, immutable")
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Content-Type-Options", "nosniff")

    def _send_raw(self, cid: CID) -> None:
        data = self.store.get(cid)
        self.send_response(200)
        self.send_header("Content-Type", RAW)
        self.send_header("Content-Length", str(len(data)))
        self._immutable_headers(f"{cid}.raw")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_car(self, cid: CID) -> None:
        root = bytes(cid)
        blocks = walk(self.store, root)
        first = next(blocks)  # fail with 404/500 before the status line if the root is bad
        self.send_response(200)
        self.send_header("Content-Type", f"{CAR}; version=1; order=dfs; dups=n")
        self._immutable_headers(f"{cid}.car")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            self.wfile.write(b"0\r\n\r\n")
            return
        self._stream_car(cid, [header_bytes(root), *section_parts(*first)], blocks)

    def _stream_car(self, cid: CID, parts: list[bytes],
                    blocks: Iterator[tuple[bytes, bytes]]) -> None:
        # Each HTTP chunk goes out as one sendmsg of its pieces (chunk size line, section
        # lengths, CIDs, block bytes as read from the store): no concatenated copy of the
        # data in Python. wfile is unbuffered (wbufsize 0), so nothing written through it
        # can be overtaken by a direct send on the socket.
        size = sum(len(p) for p in parts)
        try:
            for c, data in blocks:
                pieces = section_parts(c, data)
                parts += pieces
                size += sum(len(p) for p in pieces)
                if size >= CAR_CHUNK:
                    _send_chunk(self.connection, parts, size)
                    parts, size = [], 0
        except ChengError as exc:
            # Mid-stream we can only cut the body short: the client sees a truncated CAR
            # (no final chunk) and must not trust it.
            log.warning("CAR for %s cut short: %s", cid, exc.what)
            self.close_connection = True
            return
        if parts:
            _send_chunk(self.connection, parts, size)
        self.wfile.write(b"0\r\n\r\n")

    def _read_only(self) -> None:
        self._fail(405, "this gateway is read-only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _read_only


def make_gateway_handler(store: BlockStore) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``store``."""
    return type("Gateway", (GatewayHandler,), {"store": store})


class Gateway:
    """An HTTP trustless gateway over ``store`` on its own threads; ``close()`` stops it."""

    def __init__(self, store: BlockStore, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = make_gateway_handler(store)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}", why=exc.strerror or str(exc)) from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        # An AF_INET server's address is (str, int); typeshed allows bytes for AF_UNIX ones.
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def parse_hostport(text: str) -> tuple[str, int]:
    """``127.0.0.1:8080`` -> (host, port).

    Raises:
        UsageError: not ``host:port``.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"bad --http address '{text}'", how="write it as 127.0.0.1:<port>")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class Listening:
    """What ``serve`` is reachable at, handed to ``on_ready`` once both doors are open."""

    p2p: tuple[str, ...]
    http: str | None


def open_store(root: Path) -> BlockStore:
    """The cache's block store.

    Raises:
        InputError: ``root`` is not a directory.
    """
    if not root.is_dir():
        raise InputError(f"cache root {root} does not exist", how="pass --root:<cache dir>")
    from cheng_build.cas.blockstore import Blockstore

    return Blockstore(root)


def serve(root: Path, listen: str, *, http: str | None = None, max_peers: int | None = None,
          on_ready: Callable[[Listening], None] | None = None,
          stop: Callable[[], Any] | None = None, store: BlockStore | None = None,
          protocols: Mapping[str, Callable[[Any], Any]] | None = None) -> None:
    """Serve ``root`` until interrupted, or until the awaitable ``stop()`` returns.

    ``store`` replaces the cache's own block store (an embedding program's, or a test's);
    ``protocols`` adds libp2p stream handlers (protocol id -> ``async handler(stream)``) on the
    same host, e.g. cheng-storage's proof challenges.

    Raises:
        InputError: ``root`` is not a cache.
        UsageError: an address cannot be listened on.
    """
    store = store if store is not None else open_store(root)
    gateway = Gateway(store, *parse_hostport(http)) if http else None
    try:
        _serve_p2p(store, root, listen, max_peers, gateway, on_ready, stop, protocols or {})
    finally:
        if gateway is not None:
            gateway.close()


def _check_port_free(listen: str) -> None:
    """Refuse a TCP port another process listens on.

    py-libp2p binds with SO_REUSEPORT, so a second provider on a busy port would start "fine"
    and the kernel would split incoming connections between the two. A plain probe bind (with
    SO_REUSEADDR, so a port in TIME_WAIT after a restart is not mistaken for busy) tells.
    """
    import socket

    parts = listen.strip("/").split("/")
    if len(parts) < 4 or parts[0] not in ("ip4", "ip6") or parts[2] != "tcp" or parts[3] == "0":
        return
    family = socket.AF_INET6 if parts[0] == "ip6" else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((parts[1], int(parts[3])))
    except OSError as exc:
        raise UsageError(f"cannot listen on {listen}", why=exc.strerror or str(exc),
                         how="pick another port, or /tcp/0 for any free one") from None
    finally:
        probe.close()


def _serve_p2p(store: BlockStore, root: Path, listen: str, max_peers: int | None,
               gateway: Gateway | None, on_ready: Callable[[Listening], None] | None,
               stop: Callable[[], Any] | None,
               protocols: Mapping[str, Callable[[Any], Any]]) -> None:
    import multiaddr
    import trio

    from cheng_build.pkg.fetch import libp2p_adapter as lp
    from cheng_build.pkg.fetch.p2p.node import BitswapNode

    try:
        maddr = multiaddr.Multiaddr(listen)
    except Exception as exc:
        raise UsageError(f"bad --listen address '{listen}'", why=str(exc),
                         how="write it as /ip4/127.0.0.1/tcp/<port>") from exc
    _check_port_free(listen)

    async def main() -> None:
        host = lp.make_host(lp.load_identity(root / "peer.key"))
        from libp2p.custom_types import TProtocol

        for proto, handler in protocols.items():
            host.set_stream_handler(TProtocol(proto), handler)
        try:
            async with host.run(listen_addrs=[maddr]), \
                    BitswapNode.running(host, store, max_peers=max_peers):
                if on_ready is not None:
                    on_ready(Listening(tuple(lp.listen_addrs(host)),
                                       gateway.url if gateway else None))
                if stop is not None:
                    await stop()
                else:
                    await trio.sleep_forever()
        except OSError as exc:
            raise UsageError(f"cannot listen on {listen}", why=exc.strerror or str(exc)) from exc

    try:
        with lp.quick_gil_handoff():
            trio.run(main)
    except BaseExceptionGroup as eg:
        raise lp.unwrap_group(eg) from None


__all__ = ["Gateway", "Listening", "make_gateway_handler", "open_store", "parse_hostport", "serve"]
