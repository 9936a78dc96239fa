"""The addresses a consumer knows: ``peers`` (``PKG_PEERS``) and ``sync_from``
(``PKG_REGISTRY_FROM``). A mirror that serves the registry serves blocks too, so one address in
either is enough to build."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any



def consumer_addrs(config: Any) -> list[str]:
    """Every address a consumer may take blocks from: ``peers``, then ``sync_from``
    (the policy filter is applied where they are used)."""
    peers = getattr(config, "peers", ()) or ()
    mirrors = getattr(config, "sync_from", ()) or ()
    return list(dict.fromkeys([*peers, *mirrors]))


__all__ = ["consumer_addrs"]
