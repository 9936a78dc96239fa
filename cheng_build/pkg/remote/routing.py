"""Fetch with content routing: when the listed peers lack a snapshot (or none are listed), ask
the Kademlia DHT (``bootstrap`` peers) and the delegated routers (``routers``) who provides its
root, and fetch from them.

Peers found this way pass the same allow/deny lists and level rules as listed ones (at L2 only
allow-listed peers; an empty allow list allows none), and every block is verified as always.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cheng_build.core.errors import NotFoundError, TransportError


def fetch_lock_routed(lock: Any, *, cache_root: Path, config: Any, peers: Sequence[str],
                      lock_dir: Path | None = None, progress: Any = None, **more: Any) -> Any:
    """``pkg.fetch.fetch_lock`` (``more``: its other keywords, e.g. ``limits``), then, if a
    snapshot could not be had, the DHT's providers.

    Raises:
        as ``fetch_lock``; the second failure names the providers tried or refused.
    """
    from cheng_build.pkg.fetch import fetch_lock
    from cheng_build.pkg.fetch.local import cached_package
    from cheng_build.pkg.fetch.policy import peer_allowed
    from cheng_build.pkg.remote.providers import providers_of, routing_configured

    try:
        return fetch_lock(lock, cache_root=cache_root, config=config, peers=list(peers),
                          lock_dir=lock_dir, progress=progress, **more)
    except (NotFoundError, TransportError) as first:
        if not routing_configured(config):
            raise
        deps = list(getattr(lock, "dependencies", lock))
        roots = [str(d.cid) for d in deps if not getattr(d, "path", None) and d.cid
                 and cached_package(cache_root, str(d.cid)) is None]
        errors: list[str] = []
        found = providers_of(config, roots, errors)
        addrs = list(dict.fromkeys(a for c in roots for a in found.get(c, [])))
        allowed = [a for a in addrs if peer_allowed(a, config)]
        refused = [a for a in addrs if a not in allowed]
        if not allowed:
            note = (f"content routing names {len(refused)} provider(s), none allowed by the "
                    f"allow/deny lists or the level: {', '.join(refused)}" if refused
                    else "content routing knows no provider of " + ", ".join(roots))
            if errors:
                note += "\n" + "\n".join(errors)
            raise type(first)(first.what, why="\n".join(x for x in (first.why, note) if x),
                              how=first.how) from None
        return fetch_lock(lock, cache_root=cache_root, config=config,
                          peers=[*peers, *allowed], lock_dir=lock_dir, progress=progress, **more)


__all__ = ["fetch_lock_routed"]
