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

(Over 400 lines on purpose: :func:`serve` runs both doors and what rides on them (the DHT
announcer, registry gossip) as one lifecycle over one read-only store.)
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cheng_build.cas.car import header_bytes, section_parts
from cheng_build.cas.cid import CID, parse_cid
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


def _send_chunk(sock: Any, parts: list[bytes], size: int) -> None:
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


# (path, query) -> (status, content type, extra headers, body), or None when not ours: what
# ``serve`` adds beside /ipfs/ (the registry protocol's GETs, ``pkg/remote/registry_proto.py``).
ExtraRoute = Callable[[str, dict[str, list[str]]], "tuple[int, str, dict[str, str], bytes] | None"]


def _send_raw(h: BaseHTTPRequestHandler, cid: CID, data: bytes) -> None:
    """Answer with one block (``?format=raw``)."""
    h.send_response(200)
    h.send_header("Content-Type", RAW)
    h.send_header("Content-Length", str(len(data)))
    h.send_header("Cache-Control", "public, max-age=29030400, immutable")
    h.send_header("ETag", f'"{cid}.raw"')
    h.send_header("X-Content-Type-Options", "nosniff")
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(data)


def _send_extra(h: BaseHTTPRequestHandler, code: int, ctype: str, headers: Mapping[str, str],
                body: bytes) -> None:
    """Answer with what an extra route returned."""
    h.send_response(code)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def _send_car(h: BaseHTTPRequestHandler, store: BlockStore, cid: CID) -> None:
    """Answer with the DAG under ``cid`` as a chunked CAR v1 stream."""
    root = bytes(cid)
    blocks = walk(store, root)
    first = next(blocks)  # fail with 404/500 before the status line if the root is bad
    h.send_response(200)
    h.send_header("Content-Type", f"{CAR}; version=1; order=dfs; dups=n")
    h.send_header("Cache-Control", "public, max-age=29030400, immutable")
    h.send_header("ETag", f'"{cid}.car"')
    h.send_header("X-Content-Type-Options", "nosniff")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    if h.command == "HEAD":
        h.wfile.write(b"0\r\n\r\n")
        return

    # Each HTTP chunk goes out as one sendmsg of its pieces (chunk size line, section
    # lengths, CIDs, block bytes as read from the store): no concatenated copy of the
    # data in Python. wfile is unbuffered (wbufsize 0), so nothing written through it
    # can be overtaken by a direct send on the socket.
    parts: list[bytes] = [header_bytes(root), *section_parts(*first)]
    size = sum(len(p) for p in parts)
    try:
        for c, data in blocks:
            pieces = section_parts(c, data)
            parts += pieces
            size += sum(len(p) for p in pieces)
            if size >= CAR_CHUNK:
                _send_chunk(h.connection, parts, size)
                parts, size = [], 0
    except ChengError as exc:
        # Mid-stream we can only cut the body short: the client sees a truncated CAR
        # (no final chunk) and must not trust it.
        log.warning("CAR for %s cut short: %s", cid, exc.what)
        h.close_connection = True
        return
    if parts:
        _send_chunk(h.connection, parts, size)
    h.wfile.write(b"0\r\n\r\n")


def make_gateway_handler(store: BlockStore,
                         extra: ExtraRoute | None = None) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``store`` (and ``extra`` routes, tried first)."""

    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "cheng-pkg-gateway"

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

        def _extra(self) -> bool:
            if extra is None:
                return False
            parts = urlsplit(self.path)
            got = extra(parts.path, parse_qs(parts.query))
            if got is None:
                return False
            _send_extra(self, *got)
            return True

        def do_GET(self) -> None:
            if self._extra():
                return
            target = self._target()
            if target is None:
                return
            cid, fmt = target
            try:
                if not store.has(cid):
                    self._fail(404, f"block {cid} is not in this cache")
                    return
                if fmt == "raw":
                    _send_raw(self, cid, store.get(cid))
                    return
                _send_car(self, store, cid)
            except ChengError as exc:
                self._fail(404 if isinstance(exc, NotFoundError) else 500, exc.what)

        def _read_only(self) -> None:
            self._fail(405, "this gateway is read-only")

        do_POST = do_PUT = do_DELETE = do_PATCH = _read_only

    return Gateway


class Gateway:
    """An HTTP trustless gateway over ``store`` on its own threads; ``close()`` stops it."""

    def __init__(self, store: BlockStore, host: str = "127.0.0.1", port: int = 0,
                 extra: ExtraRoute | None = None) -> None:
        handler = make_gateway_handler(store, extra)
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
          protocols: Mapping[str, Callable[[Any], Any]] | None = None,
          registry: Path | None = None, bootstrap: Sequence[str] = (), dht: bool = False,
          on_announced: Callable[[int], None] | None = None, config: Any = None) -> None:
    """Serve ``root`` until interrupted, or until the awaitable ``stop()`` returns.

    ``store`` replaces the cache's own block store (an embedding program's, or a test's);
    ``protocols`` adds libp2p stream handlers (protocol id -> ``async handler(stream)``) on the
    same host, e.g. cheng-storage's proof challenges.
    ``registry`` also serves that registry log (``/cheng/registry/1.0.0`` and ``/registry/v1/``).
    With ``dht`` (or ``bootstrap`` peers), joins the Kademlia DHT in server mode, announces every
    snapshot root held (``on_announced(n)`` after each round) and answers delegated routing
    (``GET /routing/v1/providers/{cid}``) on the gateway. With ``registry``, its newest
    checkpoint is announced on gossipsub, and with ``config.sync_from`` an announced newer head
    is synced (``pkg/remote/gossip.py``).

    Raises:
        InputError: ``root`` is not a cache.
        UsageError: an address cannot be listened on.
    """
    store = store if store is not None else open_store(root)
    routes: list[ExtraRoute] = []
    view = None
    if registry is not None:
        from cheng_build.pkg.remote.registry_proto import RegistryView, http_answer

        reg_view = view = RegistryView(registry)
        routes.append(lambda path, query: http_answer(reg_view, path, query))
    router = None
    if dht or bootstrap:
        from cheng_build.pkg.remote.dht import DelegatedRouter

        router = DelegatedRouter()
        routes.append(router.http_answer)

    def extra(path: str, query: dict[str, list[str]]) -> tuple[int, str, dict[str, str], bytes] | None:
        for route in routes:
            got = route(path, query)
            if got is not None:
                return got
        return None

    gateway = Gateway(store, *parse_hostport(http), extra=extra) if http else None
    routing = None
    if router is not None:
        routing = _Routing(router, tuple(bootstrap), HeldRoots(root, store, registry),
                           on_announced)
    gossip = _Gossip(registry, view, config) if registry is not None and view is not None else None
    try:
        _serve_p2p(store, root, listen, max_peers, gateway, on_ready, stop, protocols or {}, view,
                   routing, gossip)
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
               protocols: Mapping[str, Callable[[Any], Any]], view: Any = None,
               routing: _Routing | None = None, gossip: _Gossip | None = None) -> None:
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
        pubsub = gossip.make(host) if gossip is not None else None  # before any dial
        from libp2p.custom_types import TProtocol

        for proto, handler in protocols.items():
            host.set_stream_handler(TProtocol(proto), handler)
        if view is not None:
            from cheng_build.pkg.remote.registry_proto import PROTOCOL_ID, handle_stream

            async def on_registry(stream: Any) -> None:
                await handle_stream(view, stream)

            host.set_stream_handler(TProtocol(PROTOCOL_ID), on_registry)
        try:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(host.run(listen_addrs=[maddr]))
                if pubsub is not None:  # before anyone can open a meshsub stream to us
                    from cheng_build.pkg.remote.gossip import pubsub_running

                    await stack.enter_async_context(pubsub_running(*pubsub))
                await stack.enter_async_context(
                    BitswapNode.running(host, store, max_peers=max_peers))
                nursery = await stack.enter_async_context(trio.open_nursery())
                if gossip is not None and pubsub is not None:
                    nursery.start_soon(gossip.run, host, pubsub)
                if routing is not None:
                    await nursery.start(routing.run, host)
                if on_ready is not None:
                    on_ready(Listening(tuple(lp.listen_addrs(host)),
                                       gateway.url if gateway else None))
                if stop is not None:
                    await stop()
                else:
                    await trio.sleep_forever()
                nursery.cancel_scope.cancel()
        except OSError as exc:
            raise UsageError(f"cannot listen on {listen}", why=exc.strerror or str(exc)) from exc

    try:
        with lp.quick_gil_handoff():
            trio.run(main)
    except BaseExceptionGroup as eg:
        raise lp.unwrap_group(eg) from None


@dataclass(frozen=True, slots=True)
class _Routing:
    """What ``serve`` does on the DHT: join, answer delegated routing, announce what it holds."""

    router: Any
    bootstrap: tuple[str, ...]
    roots: Callable[[], list[str]]
    on_announced: Callable[[int], None] | None

    async def run(self, host: Any, task_status: Any = None) -> None:
        import trio

        from cheng_build.pkg.remote.dht import announce, running_dht

        async with running_dht(host, self.bootstrap, server=True) as dht:
            self.router.attach(dht)
            task_status.started()
            await announce(dht, lambda: trio_safe(self.roots), on_done=self.on_announced)
            await trio.sleep_forever()


class _Gossip:
    """Checkpoint announcements of the served registry on gossipsub (``pkg/remote/gossip.py``)."""

    def __init__(self, registry: Path, view: Any, config: Any) -> None:
        self.registry, self.view, self.config = registry, view, config
        self.sync_from = tuple(getattr(config, "sync_from", ()) or ())

    def make(self, host: Any) -> tuple[Any, Any]:
        from cheng_build.pkg.remote.gossip import make_pubsub

        return make_pubsub(host)

    def operator_key(self) -> str | None:
        pinned = getattr(self.config, "operator_key", None)
        if pinned:
            return str(pinned)
        cp = self.view.answer({"op": "head"})[0].get("checkpoint")
        if not cp:
            return None
        import json

        key = json.loads(cp).get("pub_key")
        return key if isinstance(key, str) else None

    def local_size(self) -> int:
        return int(self.view.answer({"op": "head"})[0]["size"])

    def sync(self, line: int) -> None:
        from cheng_build.pkg.remote.sync_run import sync_configured

        log.info("a newer registry head (line %d) was announced: syncing", line)
        sync_configured(self.config, registry=self.registry)

    async def run(self, host: Any, pubsub: tuple[Any, Any]) -> None:
        from cheng_build.core.errors import ChengError
        from cheng_build.pkg.fetch import libp2p_adapter as lp
        from cheng_build.pkg.remote.gossip import run_gossip

        # Gossip travels over connections; the mirrors we sync from are the peers to keep.
        for addr in self.sync_from:
            if "/p2p/" in addr and not addr.startswith("http"):
                try:
                    await lp.dial(host, *lp.parse_peer_addr(addr))
                except ChengError as exc:
                    log.warning("gossip: cannot reach %s: %s", addr, exc.what)
        await run_gossip(pubsub[0], pubsub[1], self.operator_key,
                         lambda: self.view.answer({"op": "head"})[0], self.local_size,
                         self.sync if self.sync_from else None)


def trio_safe(fn: Callable[[], list[str]]) -> list[str]:
    """``fn()``, or nothing when the store cannot be read right now (next round tries again)."""
    try:
        return fn()
    except (ChengError, OSError) as exc:
        log.warning("cannot list the roots to announce: %s", exc)
        return []


class HeldRoots:
    """Snapshot roots this cache holds whole: ``packages/<cid>/`` (only ever complete) and the
    registry's published CIDs whose every block is in the store. Called every few seconds by
    the announcer, so a CID found complete is not walked again and the registry is re-read only
    when it changed."""

    def __init__(self, root: Path, store: BlockStore, registry: Path | None) -> None:
        self.root, self.store, self.registry = root, store, registry
        self._complete: set[str] = set()
        self._published: list[str] = []
        self._stamp: tuple[int, int] | None = None

    def _registry_cids(self) -> list[str]:
        import json

        if self.registry is None:
            return []
        try:
            st = self.registry.stat()
        except FileNotFoundError:
            return []
        if self._stamp != (st.st_size, st.st_mtime_ns):
            cids: dict[str, None] = {}
            for raw in self.registry.read_bytes().splitlines():
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                cid = rec.get("cid") if isinstance(rec, dict) else None
                if isinstance(cid, str):
                    cids[cid] = None
            self._published, self._stamp = list(cids), (st.st_size, st.st_mtime_ns)
        return self._published

    def __call__(self) -> list[str]:
        out: dict[str, None] = {}
        pkgs = self.root / "packages"
        if pkgs.is_dir():
            for d in sorted(pkgs.iterdir()):
                if d.is_dir() and not d.name.startswith("."):
                    out[d.name] = None
        for cid in self._registry_cids():
            if cid in out:
                continue
            if cid not in self._complete:
                try:
                    for _ in walk(self.store, bytes(parse_cid(cid))):
                        pass
                except ChengError:
                    continue
                self._complete.add(cid)
            out[cid] = None
        return list(out)


__all__ = ["Gateway", "Listening", "make_gateway_handler", "open_store", "parse_hostport", "serve"]
