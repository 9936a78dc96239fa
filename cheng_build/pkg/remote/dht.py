"""Content routing on the libp2p Kademlia DHT (py-libp2p ``kad_dht``, ``/ipfs/kad/1.0.0``).

The protocol and record format are those of the IPFS Amino DHT: a provider record says "peer P
serves the DAG whose root has this multihash". ``serve`` joins through bootstrap peers in server
mode and announces every snapshot root it holds; a consumer joins in client mode and asks for
the providers of the roots its peers lack.

py-libp2p facts this relies on (``../shared/reference/network-notes.md``, each checked by
``tests/test_net_dht.py``):

- nothing adds a connected peer to the routing table: after dialling a bootstrap peer we call
  ``add_peer`` ourselves;
- ``find_providers`` answers from the local provider store first when it holds any, and returns
  addresses in ``PeerInfo`` without adding them to the peerstore (we dial them ourselves); the
  same peer can come back once per replying node, so results are de-duplicated;
- a receiving peer accepts at most 10 ADD_PROVIDER per 10 s from one sender and drops the rest
  silently, so announcements are paced (``ANNOUNCE_BATCH`` per ``ANNOUNCE_PAUSE_S``);
- records expire after 48 h and py republishes its own after 22 h (js: 24 h); we re-announce
  every ``REPROVIDE_S`` (12 h), well before either, and announce a root that appears in the
  served store (a publish or a checkout) within ``NEW_ROOTS_POLL_S``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from cheng_build.pkg.fetch import libp2p_adapter as lp

log = logging.getLogger(__name__)

REPROVIDE_S = 12 * 3600
NEW_ROOTS_POLL_S = 5.0  # how soon a root added to a served store is announced
ANNOUNCE_BATCH = 8
ANNOUNCE_PAUSE_S = 10.0
JOIN_TIMEOUT_S = 10.0
FIND_TIMEOUT_S = 20.0
LOOKUP_ALPHA = 3  # GET_PROVIDERS in flight at once (the spec's alpha)


@asynccontextmanager
async def running_dht(host: Any, bootstrap: Sequence[str], *, server: bool,
                      errors: list[tuple[str, str]] | None = None) -> AsyncIterator[Any]:
    """A ``KadDHT`` on ``host`` (inside ``host.run``), joined through ``bootstrap``.

    Construct it before dialling anyone: identify then advertises ``/ipfs/kad/1.0.0`` (a
    server registers its handler in the constructor), so peers admit us to their tables.
    """
    from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
    from libp2p.tools.anyio_service import background_trio_service

    dht = KadDHT(host, DHTMode.SERVER if server else DHTMode.CLIENT)
    async with background_trio_service(dht):
        await join(host, dht, bootstrap, errors)
        yield dht


async def join(host: Any, dht: Any, bootstrap: Sequence[str],
               errors: list[tuple[str, str]] | None = None) -> int:
    """Dial the bootstrap peers, admit them to the routing table, look ourselves up.

    Returns how many bootstrap peers were reached; each failure is added to ``errors``.
    """
    from cheng_build.core.errors import ChengError

    joined = 0
    for addr in bootstrap:
        try:
            maddr, pid = lp.parse_peer_addr(addr)
            with trio.fail_after(JOIN_TIMEOUT_S):
                await lp.dial(host, maddr, pid)
                await dht.add_peer(pid)
            joined += 1
        except (ChengError, trio.TooSlowError) as exc:
            if errors is not None:
                errors.append((addr, getattr(exc, "what", None) or "no answer"))
    if joined:
        with trio.move_on_after(JOIN_TIMEOUT_S):
            await dht.refresh_routing_table()  # fills our table (and theirs) beyond bootstrap
    return joined


async def announce(dht: Any, roots: Callable[[], Sequence[str]], *,
                   once: bool = False, on_done: Callable[[int], None] | None = None) -> None:
    """Provide every root ``roots()`` names, paced; then every ``NEW_ROOTS_POLL_S`` provide the
    roots that appeared since (a publish or checkout into the served store) and retry those no
    peer took yet (a node alone at first), and all of them again every ``REPROVIDE_S``.

    ``provide`` always records us as a provider locally (so a peer asking us directly learns
    it) and returns whether some other peer took the record. ``on_done(n)`` is told how many
    roots a round announced, for rounds that had new roots. ``once``: one round only.
    """
    seen: set[str] = set()
    taken: set[str] = set()
    last_full = -float(REPROVIDE_S)
    while True:
        full = trio.current_time() - last_full >= REPROVIDE_S
        if full:
            last_full = trio.current_time()
        held = list(roots())
        new = [c for c in held if c not in seen]
        todo = held if full else new + [c for c in held if c in seen and c not in taken]
        for i, cid in enumerate(todo):
            if i and i % ANNOUNCE_BATCH == 0:
                await trio.sleep(ANNOUNCE_PAUSE_S)
            with trio.move_on_after(FIND_TIMEOUT_S):
                if await dht.provide(cid):
                    taken.add(cid)
            seen.add(cid)
        if on_done is not None and (full or new):
            on_done(len(todo))
        if once:
            return
        await trio.sleep(NEW_ROOTS_POLL_S)


async def find_provider_addrs(dht: Any, cid: str) -> list[str]:
    """Full addresses (``.../p2p/<id>``) of the first providers of ``cid`` found, one per peer."""
    with trio.move_on_after(FIND_TIMEOUT_S):
        infos = await first_providers(dht, cid)
        return provider_addrs(infos, exclude=str(dht.host.get_id()))
    return []


async def first_providers(dht: Any, cid: str, alpha: int = LOOKUP_ALPHA) -> list[Any]:
    """The providers of ``cid`` from the first peer that names any (``PeerInfo``s).

    py-libp2p's ``find_providers`` first runs a whole FIND_NODE lookup for the key, then asks
    the closest peers GET_PROVIDERS in batches, waiting for each batch to finish. GET_PROVIDERS
    answers carry closer peers too, so this is the spec's lookup done directly: ask the
    ``alpha`` closest known peers, feed the closer peers each answer names back in (by
    distance), and stop at the first answer with providers. A provider record we hold
    ourselves answers at once, as in py-libp2p.
    """
    from libp2p.kad_dht.common import QUERY_TIMEOUT
    from libp2p.kad_dht.kad_dht import _encode_key
    from libp2p.kad_dht.utils import sort_peer_ids_by_distance

    key = _encode_key(cid)
    store = dht.provider_store
    local = store.get_providers(key)
    if local:
        return list(local)
    me = dht.host.get_id()
    candidates = list(dht.routing_table.find_local_closest_peers(key, 20))
    asked: set[Any] = set()
    send, recv = trio.open_memory_channel[tuple[list[Any], list[Any]]](64)
    found: list[Any] = []
    async with trio.open_nursery() as nursery:
        in_flight = 0

        async def ask(peer: Any) -> None:
            answer: tuple[list[Any], list[Any]] = ([], [])
            with trio.move_on_after(QUERY_TIMEOUT):
                try:
                    answer = await store._get_providers_from_peer_with_closers(peer, key)
                except Exception as exc:  # an unreachable or misbehaving peer: ask others
                    log.debug("GET_PROVIDERS to %s failed: %s", peer, exc)
            await send.send(answer)

        def launch() -> None:
            nonlocal in_flight
            while candidates and in_flight < alpha:
                peer = candidates.pop(0)
                if peer in asked or peer == me:
                    continue
                asked.add(peer)
                in_flight += 1
                nursery.start_soon(ask, peer)

        launch()
        while in_flight:
            providers, closer = await recv.receive()
            in_flight -= 1
            if providers:
                found = list(providers)
                for p in found:
                    store.add_provider(key, p)
                nursery.cancel_scope.cancel()
                break
            fresh = [p for p in closer if p not in asked and p != me and p not in candidates]
            if fresh:
                candidates = sort_peer_ids_by_distance(key, candidates + fresh)
            launch()
    return found


def provider_addrs(infos: Sequence[Any], exclude: str = "") -> list[str]:
    """One dialable address per provider (``PeerInfo``s), de-duplicated by peer."""
    out: dict[str, str] = {}
    for info in infos:
        pid = str(info.peer_id)
        if pid in out or pid == exclude:
            continue
        addrs = [str(a) for a in info.addrs if "/tcp/" in str(a)]
        if not addrs:
            continue
        a = addrs[0]
        out[pid] = a if "/p2p/" in a else f"{a}/p2p/{pid}"
    return list(out.values())


def discover(bootstrap: Sequence[str], cids: Sequence[str]) -> dict[str, list[str]]:
    """From synchronous code: join as a DHT client and find the providers of each CID.

    Raises:
        TransportError: no bootstrap peer could be reached.
    """
    from cheng_build.core.errors import TransportError

    async def main() -> dict[str, list[str]]:
        host = lp.make_host()
        errors: list[tuple[str, str]] = []
        async with host.run(listen_addrs=[]), \
                running_dht(host, bootstrap, server=False, errors=errors) as dht:
            if len(errors) == len(bootstrap):
                raise TransportError("no DHT bootstrap peer could be reached",
                                     why="\n".join(f"{a}: {w}" for a, w in errors),
                                     how="check PKG_BOOTSTRAP / [remote] bootstrap")
            found = {c: await find_provider_addrs(dht, c) for c in cids}
            for pid in list(host.get_network().connections):
                with trio.move_on_after(2):
                    await host.disconnect(pid)
            return found

    try:
        return trio.run(main)
    except BaseExceptionGroup as eg:
        raise lp.unwrap_group(eg) from None


class DelegatedRouter:
    """IPIP-337 delegated routing, ``GET /routing/v1/providers/{cid}``, answered from the DHT of
    a running ``serve`` (the gateway's threads call into its trio thread)."""

    def __init__(self) -> None:
        self.dht: Any = None
        self.token: Any = None

    def attach(self, dht: Any) -> None:
        self.dht = dht
        self.token = trio.lowlevel.current_trio_token()

    def http_answer(self, path: str, query: dict[str, list[str]]
                    ) -> tuple[int, str, dict[str, str], bytes] | None:
        prefix = "/routing/v1/providers/"
        if not path.startswith(prefix):
            return None
        from cheng_build.cas.cid import parse_cid
        from cheng_build.core.errors import ChengError

        text = path[len(prefix):]
        try:
            parse_cid(text)
        except ChengError:
            return 400, "text/plain; charset=utf-8", {}, f"not a CID: {text}\n".encode()
        if self.dht is None:
            return 503, "text/plain; charset=utf-8", {}, b"the DHT is not running yet\n"
        infos = trio.from_thread.run(self._find, text, trio_token=self.token)
        providers = [{"Schema": "peer", "ID": a.rsplit("/p2p/", 1)[1],
                      "Addrs": [a.rsplit("/p2p/", 1)[0]], "Protocols": ["transport-bitswap"]}
                     for a in provider_addrs(infos)]
        if not providers:
            return 404, "text/plain; charset=utf-8", {}, b"no providers found\n"
        return 200, "application/json", {"Cache-Control": "public, max-age=60"}, \
            json.dumps({"Providers": providers}).encode()

    async def _find(self, cid: str) -> list[Any]:
        with trio.move_on_after(FIND_TIMEOUT_S):
            return list(await self.dht.find_providers(cid, 20))
        return []


__all__ = ["DelegatedRouter", "announce", "discover", "find_provider_addrs", "join",
           "provider_addrs", "running_dht"]
