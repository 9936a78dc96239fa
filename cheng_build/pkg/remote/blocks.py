"""A block store that fetches what it lacks, one block at a time: local, then p2p, then HTTP.

Resolve reads each dependency's manifest out of its snapshot (``cas.exporter.read_path``: the
root directory node, the directory nodes on the way, the file's blocks). On a machine that has
not fetched the snapshot yet, ``get`` brings exactly those blocks (bitswap ``want-block`` to the
allowed peers, else ``GET /ipfs/<cid>?format=raw`` from the allowed gateways, as the level
allows) and stores them verified; the rest of the snapshot is fetch's business later. A block
already stored is never asked for again (fetch resumes from it too).
"""

from __future__ import annotations

import http.client
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from cheng_build.core.errors import ChengError, DigestMismatchError, NotFoundError, TransportError
from cheng_build.pkg.fetch.blocks import cid_text, matches
from cheng_build.pkg.remote.p2p_client import P2PClient

MAX_BLOCK_BYTES = 4 * 1024 * 1024
TIMEOUT_S = 30.0


def plan_sources(addrs: Sequence[str], config: Any) -> tuple[list[str], list[str]]:
    """(peers, gateways) among ``addrs`` that the policy lets resolve use."""
    from cheng_build.pkg.fetch.http import is_gateway
    from cheng_build.pkg.fetch.policy import peer_allowed

    mode = str(getattr(getattr(config, "mode", None), "value", "auto"))
    http_ok = mode == "http" or (mode == "auto" and bool(getattr(config, "http_fallback", False)))
    peers: list[str] = []
    gateways: list[str] = []
    for a in dict.fromkeys(x.strip() for x in addrs if x.strip()):
        if not peer_allowed(a, config):
            continue
        if is_gateway(a):
            if http_ok:
                gateways.append(a)
        elif "/p2p/" in a and mode in ("p2p", "auto"):
            peers.append(a)
    return peers, gateways


class FetchingStore:
    """``store`` plus on-demand fetching of single blocks from ``peers`` and ``gateways``."""

    def __init__(self, store: Any, peers: Sequence[str], gateways: Sequence[str], *,
                 bootstrap: Sequence[str] = (), config: Any = None) -> None:
        self.store = store
        self.peers = list(peers)
        self.gateways = list(gateways)
        self.config = config
        from cheng_build.pkg.remote.providers import routing_configured

        # DHT / delegated routers: who provides a root the peers lack
        self.routing = bool(bootstrap) or routing_configured(config)
        self._asked_dht: set[bytes] = set()
        self._client: P2PClient | None = None
        self.fetched = 0  # blocks brought in (tests count them: only the manifest's path)
        self.failures: list[str] = []

    def __enter__(self) -> FetchingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def has(self, cid: Any) -> bool:
        return bool(self.store.has(cid))

    def put(self, cid: Any, data: bytes) -> Any:
        return self.store.put(cid, data)

    def get(self, cid: Any) -> bytes:
        if self.store.has(cid):
            return bytes(self.store.get(cid))
        self._fetch(bytes(cid))
        return bytes(self.store.get(cid))

    def __getattr__(self, name: str) -> Any:  # pin, batch, root... of the real store
        return getattr(self.store, name)

    def _fetch(self, c: bytes) -> None:
        why: list[str] = []
        if self.peers:
            try:
                self._p2p(c, self.peers)
                return
            except ChengError as exc:
                why.append(f"p2p: {exc.what}")
        # The first block resolve asks of a snapshot is its root: the CID providers announce.
        if self.routing and c not in self._asked_dht:
            self._asked_dht.add(c)
            found = self._discover(c, why)
            if found:
                try:
                    self._p2p(c, found)
                    self.peers.extend(a for a in found if a not in self.peers)
                    return
                except ChengError as exc:
                    why.append(f"DHT providers: {exc.what}")
        for gw in self.gateways:
            try:
                data = _http_block(gw, c)
            except ChengError as exc:
                why.append(f"{gw}: {exc.what}")
                continue
            from cheng_build.pkg.fetch.blocks import to_cid

            self.store.put(to_cid(c), data)
            self.fetched += 1
            return
        self.failures.extend(why)
        raise NotFoundError(f"block {cid_text(c)} not found",
                            why="\n".join(why) or "no peer or gateway is configured or allowed")


    def prefetch(self, cids: Sequence[str]) -> int:
        """A hint: bring the root blocks of these ``dag`` snapshots, then their manifest files'
        first blocks, in two p2p batches instead of two round trips per snapshot. Only
        the blocks resolve reads next are asked for; what fails is left to ``get``. Returns the
        blocks brought in."""
        from cheng_build.cas import dagpb
        from cheng_build.cas.cid import parse_cid
        from cheng_build.pkg.fetch.blocks import to_cid
        from cheng_build.pkg.manifest import MANIFEST_NAMES

        if not self.peers:
            return 0
        roots = []
        for c in cids:
            try:
                roots.append(bytes(parse_cid(c)))
            except ChengError:
                continue
        before = self.fetched
        self._batch([r for r in roots if not self.store.has(to_cid(r))])
        wanted: list[bytes] = []
        for r in roots:
            if r[:2] != b"\x01\x70" or not self.store.has(to_cid(r)):  # dag-pb roots only
                continue
            try:
                node = dagpb.decode(self.store.get(to_cid(r)))
            except ChengError:
                continue
            wanted += [bytes(ln.hash) for ln in node.links if ln.name in MANIFEST_NAMES]
        self._batch([w for w in wanted if not self.store.has(to_cid(w))])
        return self.fetched - before

    def _batch(self, cids: list[bytes]) -> None:
        if not cids:
            return
        if self._client is None:
            self._client = P2PClient(self.store)
        try:
            self._client.get_blocks(cids, self.peers)
        except ChengError:
            pass  # some of them: the rest is fetched on demand
        from cheng_build.pkg.fetch.blocks import to_cid

        self.fetched += sum(1 for c in cids if self.store.has(to_cid(c)))

    def _p2p(self, c: bytes, peers: list[str]) -> None:
        if self._client is None:
            self._client = P2PClient(self.store)
        self._client.get_blocks([c], peers)
        self.fetched += 1

    def _discover(self, c: bytes, why: list[str]) -> list[str]:
        """Providers of ``c`` (DHT, routers) that the policy allows (the others in ``why``)."""
        from cheng_build.pkg.fetch.policy import peer_allowed
        from cheng_build.pkg.remote.providers import providers_of

        errors: list[str] = []
        addrs = providers_of(self.config, [cid_text(c)], errors).get(cid_text(c), [])
        why.extend(f"routing: {e}" for e in errors)
        ok = [a for a in addrs if self.config is None or peer_allowed(a, self.config)]
        why.extend(f"DHT provider {a}: not allowed by the allow/deny lists or level"
                   for a in addrs if a not in ok)
        if not addrs:
            why.append(f"routing: no provider of {cid_text(c)}")
        return ok


def _http_block(gateway: str, c: bytes) -> bytes:
    """One block from a trustless gateway, verified against its CID.

    Raises:
        NotFoundError, TransportError, DigestMismatchError.
    """
    from cheng_build.pkg.fetch.http import gateway_url

    parts = urlsplit(gateway_url(gateway))
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", f"/ipfs/{cid_text(c)}?format=raw",
                     headers={"Accept": "application/vnd.ipld.raw"})
        resp = conn.getresponse()
        if resp.status == 404:
            raise NotFoundError(f"block {cid_text(c)} is not at {gateway}")
        if resp.status != 200:
            raise TransportError(f"{gateway}: HTTP {resp.status}")
        data = resp.read(MAX_BLOCK_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise TransportError(f"cannot reach {gateway}", why=str(exc)) from None
    finally:
        conn.close()
    if len(data) > MAX_BLOCK_BYTES or not matches(c, data):
        raise DigestMismatchError(f"{gateway} sent bytes that do not hash to {cid_text(c)}")
    return data


__all__ = ["FetchingStore", "plan_sources"]
