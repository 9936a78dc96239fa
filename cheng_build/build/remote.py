"""chengc's reach beyond one machine: sync the registry first, resolve with blocks on demand.

A consumer needs one trust root (``PKG_OPERATOR_KEY``) and one address (``PKG_REGISTRY_FROM`` or
``PKG_PEERS``): chengc syncs the registry from ``sync_from`` (verified, fork-checked:
``trust.sync``), resolve reads each dependency's manifest blocks from the peers when the cache
lacks them (``pkg.remote.blocks``), and fetch takes the snapshots from the same addresses.

The sync is skipped while the last one is fresh: a stamp under ``<cache>/chengc/synced/``
(keyed by the registry path and everything the configuration is computed from) holds the time
of the last sync and the window (``sync_fresh_s``, default 60 s). Within the window the no-op
build reads one small file and imports nothing of the network; with no ``sync_from`` configured
the stamp says so until the configuration changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cheng_build.build.cachefile import write_cache_file
from cheng_build.pkg.remote.addresses import consumer_addrs

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

_NEVER = 10 ** 12  # the window of "nothing to sync from": until the configuration changes


def sync_for_build(chengc_dir: Path, reg_path: Path, fingerprint: str,
                   config: Callable[[], Any]) -> bool:
    """Sync ``reg_path`` from the configured mirrors unless the last sync is fresh.

    Returns whether a sync ran.

    Raises:
        ForkError, SourceLiedError, TransportError, PolicyError (``trust.sync``).
    """
    stamp = _stamp_path(chengc_dir, reg_path, fingerprint)
    try:
        doc = json.loads(stamp.read_bytes())
        if 0 <= time.time() - float(doc["t"]) < float(doc["fresh_s"]):
            return False
    except (OSError, ValueError, KeyError, TypeError):
        pass
    cfg = config()
    if not cfg.sync_from:
        write_cache_file(stamp, json.dumps({"t": time.time(), "fresh_s": _NEVER}).encode())
        return False
    from cheng_build.pkg.remote.sync_run import sync_configured

    sync_configured(cfg, registry=reg_path)
    write_cache_file(stamp, json.dumps({"t": time.time(), "fresh_s": cfg.sync_fresh_s}).encode())
    return True


def _stamp_path(chengc_dir: Path, reg_path: Path, fingerprint: str) -> Path:
    from cheng_build.core.sha256 import sha256

    key = sha256(f"{reg_path}\0{fingerprint}".encode()).hexdigest()
    return chengc_dir / "synced" / f"{key}.json"


def sync_due(chengc_dir: Path, reg_path: Path, fingerprint: str) -> tuple[Path, float | None]:
    """The sync stamp and when the next sync is due (None: nothing to sync from until the
    configuration changes). chengc's no-op record (``build/noop.py``) is replayed only until
    then, so a remembered build never outlives the sync window."""
    stamp = _stamp_path(chengc_dir, reg_path, fingerprint)
    try:
        doc = json.loads(stamp.read_bytes())
        fresh = float(doc["fresh_s"])
        return stamp, None if fresh >= _NEVER else float(doc["t"]) + fresh
    except (OSError, ValueError, KeyError, TypeError):
        return stamp, 0.0  # no readable stamp: due now (the full build syncs)


def head_cids(manifest: Any, registry: Any) -> list[str]:
    """The snapshots resolve will read first: the heads of the manifest's own dependencies
    (a prefetch hint; overrides and transitive dependencies are fetched on demand)."""
    out = []
    for d in getattr(manifest, "dependencies", ()):
        if d.path or not d.channel:
            continue
        e = registry.head(d.package_id, d.channel)
        if e is not None and e.cid and (e.format or "tar") == "dag":
            out.append(str(e.cid))
    return out


@contextmanager
def resolve_store(cache_root: Path, env: Mapping[str, str], *,
                  hint: Callable[[], list[str]] | None = None) -> Iterator[Any]:
    """The store resolve reads manifests from: the cache, fetching missing blocks from the
    configured peers and mirrors (as the level allows), then from the providers the DHT names
    (``bootstrap``), when any are configured. ``hint()`` names snapshots whose manifests are
    read first (``head_cids``): their blocks come in two batches."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.trust.config import load_config

    cache_root.mkdir(parents=True, exist_ok=True)
    base = Blockstore(cache_root)
    cfg = load_config(env=env)
    addrs = consumer_addrs(cfg)
    if not addrs and not (cfg.bootstrap or cfg.routers):
        yield base
        return
    from cheng_build.pkg.remote.blocks import FetchingStore, plan_sources

    peers, gateways = plan_sources(addrs, cfg)
    with FetchingStore(base, peers, gateways, bootstrap=cfg.bootstrap, config=cfg) as store:
        if hint is not None:
            store.prefetch(hint())
        yield store


__all__ = ["consumer_addrs", "head_cids", "resolve_store", "sync_due", "sync_for_build"]
