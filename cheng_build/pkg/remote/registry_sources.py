"""Registry sync sources over libp2p and HTTP (``trust.sync.RegistrySource``).

An address ending in ``/p2p/<peer id>`` is asked over ``/cheng/registry/1.0.0``; an
``http://host:port`` URL or an ``/ip4/<ip>/tcp/<port>/http`` multiaddr over the gateway's
``/registry/v1/`` GETs. Both only carry bytes: every check is ``trust.sync``'s.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from cheng_build.core.errors import TransportError, UsageError
from cheng_build.pkg.remote import registry_proto as rp
from cheng_build.pkg.remote.p2p_client import P2PClient
from cheng_build.trust.sync import RegistrySource, RemoteHead

TIMEOUT_S = 30.0


def _head(h: dict[str, Any], name: str) -> RemoteHead:
    try:
        size, at, cp = rp.parse_head(h)
    except rp.ProtocolError as exc:
        raise TransportError(f"{name}: {exc}") from None
    return RemoteHead(size, at, cp)


class P2PRegistrySource:
    """A peer that runs ``cheng-pkg serve --registry``."""

    def __init__(self, client: P2PClient, addr: str) -> None:
        self.client = client
        self.name = addr

    def head(self) -> RemoteHead:
        h, _ = self.client.request(self.name, {"op": "head"})
        return _head(h, self.name)

    def lines(self, after: int, limit: int) -> list[bytes]:
        h, body = self.client.request(self.name, {"op": "lines", "after": after, "limit": limit})
        try:
            return rp.split_body(body, int(h.get("count", -1)))
        except (rp.ProtocolError, ValueError) as exc:
            raise TransportError(f"{self.name}: {exc}") from None

    def proof(self, old: int, new: int) -> list[bytes]:
        h, _ = self.client.request(self.name, {"op": "proof", "old": old, "new": new})
        try:
            return rp.parse_proof(h)
        except rp.ProtocolError as exc:
            raise TransportError(f"{self.name}: {exc}") from None


class HttpRegistrySource:
    """A gateway of ``cheng-pkg serve --registry --http``."""

    def __init__(self, url: str) -> None:
        from cheng_build.pkg.fetch.http import gateway_url

        self.url = gateway_url(url)
        self.name = url
        self._conn: http.client.HTTPConnection | None = None

    def _get(self, path: str, limit: int) -> tuple[http.client.HTTPResponse, bytes]:
        parts = urlsplit(self.url)
        for attempt in (0, 1):  # a kept-alive connection the server closed: reconnect once
            if self._conn is None:
                cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                self._conn = cls(parts.hostname or "", parts.port, timeout=TIMEOUT_S)
            try:
                self._conn.request("GET", path)
                resp = self._conn.getresponse()
                length = resp.getheader("Content-Length")
                if length is not None and int(length) > limit:
                    raise TransportError(f"{self.name}: answer of {length} bytes is too large")
                body = resp.read(limit + 1)
                if len(body) > limit:
                    raise TransportError(f"{self.name}: answer is too large")
                return resp, body
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                self._conn = None
                if attempt:
                    raise TransportError(f"cannot reach {self.name}",
                                         why=str(exc) or type(exc).__name__) from None
        raise AssertionError("unreachable")

    def _json(self, path: str) -> dict[str, Any]:
        resp, body = self._get(path, 1 << 20)
        if resp.status != 200:
            raise TransportError(f"{self.name}{path}: HTTP {resp.status}",
                                 why=body[:200].decode("utf-8", "replace").strip() or None)
        try:
            obj = json.loads(body)
        except ValueError:
            raise TransportError(f"{self.name}{path}: not JSON") from None
        if not isinstance(obj, dict):
            raise TransportError(f"{self.name}{path}: not a JSON object")
        return obj

    def head(self) -> RemoteHead:
        return _head(self._json("/registry/v1/head"), self.name)

    def lines(self, after: int, limit: int) -> list[bytes]:
        resp, body = self._get(f"/registry/v1/lines?after={after}&limit={limit}",
                               rp.MAX_RESPONSE_BYTES)
        if resp.status != 200:
            raise TransportError(f"{self.name}: lines after {after}: HTTP {resp.status}")
        try:
            return rp.split_body(body, int(resp.getheader("X-Registry-Count") or "-1"))
        except (rp.ProtocolError, ValueError) as exc:
            raise TransportError(f"{self.name}: {exc}") from None

    def proof(self, old: int, new: int) -> list[bytes]:
        try:
            return rp.parse_proof(self._json(f"/registry/v1/proof?old={old}&new={new}"))
        except rp.ProtocolError as exc:
            raise TransportError(f"{self.name}: {exc}") from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def is_peer(addr: str) -> bool:
    """Whether ``addr`` names a libp2p peer (rather than an HTTP gateway)."""
    return "/p2p/" in addr and not addr.startswith(("http://", "https://"))


@contextmanager
def open_sources(addrs: Sequence[str], client: P2PClient | None = None
                 ) -> Iterator[list[RegistrySource]]:
    """Sources for ``addrs``, in order; one libp2p host is shared by every peer source.

    Raises:
        UsageError: an address is neither a peer nor a gateway.
    """
    from cheng_build.pkg.fetch.http import is_gateway

    own = client is None and any(is_peer(a) for a in addrs)
    c = P2PClient() if own else client
    out: list[RegistrySource] = []
    try:
        for a in addrs:
            if is_peer(a):
                assert c is not None
                out.append(P2PRegistrySource(c, a))
            elif is_gateway(a):
                out.append(HttpRegistrySource(a))
            else:
                raise UsageError(f"bad registry source '{a}'",
                                 how="write /ip4/<ip>/tcp/<port>/p2p/<peer id>, http://<host>:<port> "
                                     "or /ip4/<ip>/tcp/<port>/http")
        yield out
    finally:
        for s in out:
            if isinstance(s, HttpRegistrySource):
                s.close()
        if own and c is not None:
            c.close()


__all__ = ["HttpRegistrySource", "P2PRegistrySource", "is_peer", "open_sources"]
