"""Run a registry sync from the configuration: the sources ``sync_from`` names, filtered by the
allow/deny lists and the level exactly as fetch's peers are, into ``config.registry``."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cheng_build.core.errors import PolicyError
from cheng_build.trust.checkpoint import CheckpointMemory
from cheng_build.trust.config import Config
from cheng_build.trust.sync import SyncResult, sync_registry


def permitted_sources(config: Config) -> list[str]:
    """``config.sync_from`` less the addresses the policy forbids.

    Raises:
        PolicyError: every source is forbidden (at L2 only allow-listed ones may be used).
    """
    from cheng_build.pkg.fetch.policy import peer_allowed

    ok = [a for a in config.sync_from if peer_allowed(a, config)]
    if config.sync_from and not ok:
        raise PolicyError("no registry source is allowed",
                          why=f"{', '.join(config.sync_from)}: denied, or not allow-listed "
                              f"(level {config.level.value})",
                          how="add the mirror to [remote] allow / PKG_ALLOW")
    return ok


def sync_configured(config: Config, *, registry: Path | None = None,
                    memory: CheckpointMemory | None = None) -> SyncResult:
    """Sync ``registry`` (default ``config.registry``) from the configured sources.

    Raises:
        ForkError, SourceLiedError, TransportError, PolicyError: see ``trust.sync``.
    """
    from cheng_build.pkg.remote.registry_sources import open_sources

    path = registry or config.registry
    with open_sources(permitted_sources(config)) as sources:
        return sync_registry(path, sources, config, memory=memory)


def sync_if_stale(config: Config, stamp: Path, *, registry: Path | None = None) -> SyncResult | None:
    """Sync unless the last successful sync (``stamp``'s mtime) is within ``sync_fresh_s``.

    Returns None when skipped (nothing configured, or fresh enough).
    """
    if not config.sync_from:
        return None
    try:
        age = time.time() - stamp.stat().st_mtime
    except FileNotFoundError:
        age = None
    if age is not None and 0 <= age < config.sync_fresh_s:
        return None
    res = sync_configured(config, registry=registry)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    with open(stamp, "a"):
        pass
    os.utime(stamp)
    return res


__all__ = ["permitted_sources", "sync_configured", "sync_if_stale"]
