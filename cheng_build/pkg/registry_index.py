"""Constant-time look-ups over a loaded registry for resolve and verify.

``RegistryLog.head``/``find`` scan the whole log on each call; resolving a graph of N packages
calls them N times, which is quadratic. One pass here builds both maps with the registry's own
rule (a channel's head is its highest epoch, a tie going to the later line), so resolve and
verify stay linear in the size of the graph plus the size of the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class RegistryIndex:
    """Heads by (package, channel) and publishes by (package, channel, epoch)."""

    __slots__ = ("_by_epoch", "_heads", "path")

    def __init__(self, registry: Any) -> None:
        self.path = getattr(registry, "path", None)
        heads: dict[tuple[str, str], Any] = {}
        by_epoch: dict[tuple[str, str, int], Any] = {}
        entries: Iterable[Any] = (registry.publishes() if hasattr(registry, "publishes")
                                  else getattr(registry, "entries", ()))
        for e in entries:
            if e.package_id is None or e.channel is None:
                continue
            epoch = e.epoch or 0
            key = (e.package_id, e.channel)
            best = heads.get(key)
            if best is None or epoch >= (best.epoch or 0):
                heads[key] = e
            by_epoch[(e.package_id, e.channel, epoch)] = e  # later line wins a legacy tie
        self._heads = heads
        self._by_epoch = by_epoch

    def head(self, package_id: str, channel: str) -> Any | None:
        """The channel's head entry, or None."""
        return self._heads.get((package_id, channel))

    def find(self, package_id: str, channel: str, epoch: int) -> Any | None:
        """The entry published at that epoch, or None."""
        return self._by_epoch.get((package_id, channel, epoch))


def index_of(registry: Any) -> RegistryIndex:
    """An index for ``registry`` (returned as is when it already is one)."""
    return registry if isinstance(registry, RegistryIndex) else RegistryIndex(registry)


__all__ = ["RegistryIndex", "index_of"]
