"""Who provides a snapshot root: the Kademlia DHT (``bootstrap``) and IPIP-337 delegated
routers (``routers``: ``GET <router>/routing/v1/providers/{cid}``), merged, one address per peer.

Routers are as untrusted as peers: their answers only name peers to try, the policy filter
applies to those peers, and every block is verified when it arrives.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from cheng_build.core.errors import ChengError, TransportError

TIMEOUT_S = 20.0
MAX_ANSWER_BYTES = 1 << 20


def delegated(router: str, cid: str) -> list[str]:
    """Peer addresses (``.../p2p/<id>``, TCP) a delegated router names for ``cid``.

    Raises:
        TransportError: the router cannot be reached or answers nonsense.
    """
    from cheng_build.pkg.fetch.http import gateway_url

    parts = urlsplit(gateway_url(router))
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", f"/routing/v1/providers/{cid}", headers={"Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read(MAX_ANSWER_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise TransportError(f"cannot reach router {router}", why=str(exc)) from None
    finally:
        conn.close()
    if resp.status == 404:
        return []
    if resp.status != 200 or len(body) > MAX_ANSWER_BYTES:
        raise TransportError(f"router {router}: HTTP {resp.status} for {cid}")
    try:
        doc = json.loads(body)
        records = doc.get("Providers") or []
    except (ValueError, AttributeError):
        raise TransportError(f"router {router}: its answer is not IPIP-337 JSON") from None
    out: list[str] = []
    for rec in records if isinstance(records, list) else []:
        if not isinstance(rec, dict) or rec.get("Schema") != "peer":
            continue
        pid, addrs = rec.get("ID"), rec.get("Addrs") or []
        if not isinstance(pid, str) or not isinstance(addrs, list):
            continue
        tcp = [a for a in addrs if isinstance(a, str) and "/tcp/" in a and "/p2p/" not in a]
        if tcp:
            out.append(f"{tcp[0]}/p2p/{pid}")
    return out


def providers_of(config: Any, cids: Sequence[str], errors: list[str] | None = None
                 ) -> dict[str, list[str]]:
    """The providers of each CID from the configured routers and DHT (failures in ``errors``)."""
    found: dict[str, list[str]] = {c: [] for c in cids}
    for router in getattr(config, "routers", ()) or ():
        for c in cids:
            try:
                found[c].extend(delegated(router, c))
            except ChengError as exc:
                if errors is not None:
                    errors.append(exc.what)
                break
    bootstrap = tuple(getattr(config, "bootstrap", ()) or ())
    if bootstrap:
        from cheng_build.pkg.remote.dht import discover

        try:
            for c, addrs in discover(bootstrap, cids).items():
                found[c].extend(addrs)
        except ChengError as exc:
            if errors is not None:
                errors.append(exc.what)
    return {c: list(dict.fromkeys(a)) for c, a in found.items()}


def routing_configured(config: Any) -> bool:
    """Whether any content routing (DHT or delegated) is configured."""
    return bool(getattr(config, "bootstrap", ()) or getattr(config, "routers", ()))


__all__ = ["delegated", "providers_of", "routing_configured"]
