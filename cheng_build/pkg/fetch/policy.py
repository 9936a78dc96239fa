"""Who may be contacted for a fetch and how (seed A1.3, A1.17-A1.21): the fetch modes, the
policy read once from the trust configuration, the allow/deny match of an address, and the
split of candidate addresses into usable peers and gateways.

An entry matches an address equal to it, or the address with its ``/p2p/<id>`` part, or a bare
``/p2p/<id>`` naming the same peer.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cheng_build.core.errors import UsageError

if TYPE_CHECKING:
    from cheng_build.pkg.lock import LockedDep
    from cheng_build.trust.config import Config


class FetchMode(enum.Enum):
    """Which sources may be used (``--mode:`` / ``PKG_MODE``)."""

    LOCAL = "local"
    P2P = "p2p"
    HTTP = "http"
    AUTO = "auto"

    @classmethod
    def parse(cls, value: object) -> FetchMode:
        if isinstance(value, FetchMode):
            return value
        text = getattr(value, "value", value)
        try:
            return cls(str(text).lower())
        except ValueError:
            raise UsageError(f"unknown mode '{text}'", how="use local, p2p, http or auto") from None


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """What of the trust configuration a fetch obeys, read once (``None``: the L1 defaults)."""

    level: str = "L1"
    mode: FetchMode = FetchMode.AUTO
    peers: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    http_fallback: bool = False
    config: Config | None = None  # kept for the L2 audit log

    @classmethod
    def of(cls, config: Config | None) -> FetchPolicy:
        """The policy of ``config``; ``None`` gives the L1 defaults."""
        if config is None:
            return cls()
        return cls(level=str(config.level.value).upper(),
                   mode=FetchMode.parse(config.mode or "auto"),
                   peers=tuple(config.peers or ()), allow=tuple(config.allow or ()),
                   deny=tuple(config.deny or ()), http_fallback=bool(config.http_fallback),
                   config=config)


def _listed(addr: str, entries: Sequence[str]) -> bool:
    bare = addr.split("/p2p/")[0] if "/p2p/" in addr else addr
    pid = addr.rsplit("/p2p/", 1)[1] if "/p2p/" in addr else None
    for e in entries:
        e = e.rstrip("/")
        if e in (addr, bare) or (pid is not None and e == f"/p2p/{pid}"):
            return True
    return False


def peer_allowed(addr: str, config: Config | FetchPolicy | None) -> bool:
    """Whether ``addr`` may be contacted: never when denied; at L2 (or with an allow-list) only
    when allow-listed."""
    policy = config if isinstance(config, FetchPolicy) else FetchPolicy.of(config)
    if _listed(addr, policy.deny):
        return False
    if policy.allow or policy.level == "L2":
        return _listed(addr, policy.allow)
    return True


@dataclass
class SourcePlan:
    """Sources for this run, already filtered by policy."""

    peers: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def plan_sources(candidates: Sequence[str], policy: FetchPolicy, mode: FetchMode) -> SourcePlan:
    from cheng_build.pkg.fetch.http import is_gateway

    plan = SourcePlan()
    http_ok = mode is FetchMode.HTTP or (mode is FetchMode.AUTO and policy.http_fallback)
    seen: set[str] = set()
    for addr in candidates:
        addr = addr.strip()
        if not addr or addr in seen:
            continue
        seen.add(addr)
        if not peer_allowed(addr, policy):
            plan.refused.append((addr, "not allowed by the allow/deny lists or level "
                                       f"{policy.level}; not contacted"))
            continue
        if is_gateway(addr):
            if http_ok:
                plan.gateways.append(addr)
        elif mode in (FetchMode.P2P, FetchMode.AUTO):
            plan.peers.append(addr)
    return plan


def dep_mode(mode: FetchMode, dep: LockedDep) -> FetchMode:
    """A dependency's sources: the run's mode, unless that is ``auto`` and the lock (v2) gives
    the dependency a ``source_mode`` of its own (a mode set on the CLI/env/config wins)."""
    if dep.source_mode is None or mode is not FetchMode.AUTO:
        return mode
    return FetchMode.parse(dep.source_mode)


__all__ = ["FetchMode", "FetchPolicy", "SourcePlan", "dep_mode", "peer_allowed", "plan_sources"]
