"""``cheng-pkg checkout --cid:`` on a machine that lacks the snapshot: fetch it first.

The snapshot is fetched as a one-dependency lock through ``pkg.fetch.fetch_lock``, so the same
sources (``peers``, then ``sync_from``), policy (allow/deny, L2 allow-list only, HTTP only as
the level allows), verification and audit apply as to any fetch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class _OneSnapshot:
    """The fields ``fetch_lock`` reads from a locked dependency."""

    package_id: str
    cid: str
    path: None = None
    source_addrs: tuple[str, ...] = ()
    source_mode: None = None


def fetch_snapshot(cid: str, cache_root: Path, config: Any) -> bool:
    """Make sure the blocks of snapshot ``cid`` are in ``cache_root``; True if it fetched.

    Nothing is contacted when the snapshot is already complete or no address is configured;
    with DHT ``bootstrap`` peers, the providers of ``cid`` are asked when the peers lack it.

    Raises:
        NotFoundError, TransportError, DigestMismatchError, PolicyError: as ``fetch_lock``.
    """
    from cheng_build.pkg.fetch.local import cached_package
    from cheng_build.pkg.remote.addresses import consumer_addrs
    from cheng_build.pkg.remote.routing import fetch_lock_routed

    addrs = consumer_addrs(config)
    if not (addrs or config.bootstrap or config.routers) or cached_package(cache_root, cid) is not None:
        return False
    res = fetch_lock_routed([_OneSnapshot(f"snapshot {cid}", cid)], cache_root=cache_root,
                            config=config, peers=addrs)
    return any(s.value != "cache" for s in res.sources.values())


__all__ = ["fetch_snapshot"]
