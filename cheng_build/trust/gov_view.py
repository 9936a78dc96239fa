"""What consumers ask of a verified log's governance: channel heads (with promotions), tags,
quarantines and appeals.

Built by replaying the log (:class:`LogState` holds the :class:`Governance`); call it only on a
log that passed :func:`cheng_build.trust.trusted.load_trusted_registry`. At L0 a log that does
not verify is still used (with a warning): the view then holds what the lines before the first
bad one established.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cheng_build.trust.gov_state import Appeal, Governance, Quarantine
from cheng_build.trust.log_state import LogState
from cheng_build.trust.registry_entry import EntryType, RegistryEntry
from cheng_build.trust.registry_errors import RegistryError
from cheng_build.trust.registry_log import RegistryLog


class Via(Enum):
    """How a snapshot was reached."""

    PUBLISH = "publish"  # the newest publish on the channel
    PROMOTE = "promote"  # a promotion moved the channel to it
    TAG = "tag"


@dataclass(frozen=True, slots=True)
class Pick:
    """A snapshot chosen for a request: its publish line and how it was reached."""

    entry: RegistryEntry
    via: Via


class GovView:
    """Look-ups over one replayed log."""

    def __init__(self, log: RegistryLog, state: LogState, promotes: list[RegistryEntry]) -> None:
        self.log = log
        self.state = state
        self.gov: Governance = state.gov
        self.promotes = promotes  # every promote line that passed the rules, in log order

    def head(self, package_id: str, channel: str) -> Pick | None:
        """The channel's head: the later of its newest publish and its newest promotion."""
        # Publish heads come from the whole log's index, as before governance existed (at L0 a
        # log that does not verify is used whole, with a warning).
        pub = self.log.head(package_id, channel)
        promo = self.gov.promotions.get((package_id, channel))
        if promo is not None and (pub is None or promo.line > pub.line):
            snap = self.gov.snapshots.get((package_id, promo.data["cid"]))
            if snap is not None:
                return Pick(snap, Via.PROMOTE)
        return None if pub is None else Pick(pub, Via.PUBLISH)

    def tagged(self, package_id: str, tag: str) -> Pick | None:
        """The snapshot ``tag`` names, or None."""
        t = self.gov.tags.get((package_id, tag))
        if t is None:
            return None
        snap = self.gov.snapshots.get((package_id, t.data["cid"]))
        return None if snap is None else Pick(snap, Via.TAG)

    def tags_of(self, package_id: str) -> dict[str, list[str]]:
        """cid -> its tag names, for ``log``."""
        out: dict[str, list[str]] = {}
        for (pkg, name), e in self.gov.tags.items():
            if pkg == package_id:
                out.setdefault(e.data["cid"], []).append(name)
        return out

    def quarantine(self, package_id: str, cid: str) -> Quarantine | None:
        """The open quarantine of a snapshot, or None."""
        return self.gov.quarantined.get((package_id, cid))

    def appeal(self, package_id: str, cid: str) -> Appeal | None:
        """The appeal state of a snapshot, or None."""
        return self.gov.appeals.get((package_id, cid))

    def promoted_to(self, package_id: str, cid: str, channel: str) -> bool:
        """Whether ``cid`` is (or was) promoted to ``channel`` by a promotion that verified."""
        return any(e.data["package_id"] == package_id and e.data["cid"] == cid
                   and e.data["channel"] == channel
                   for e in self.promotes)


def governance_of(log: RegistryLog) -> GovView:
    """The governance view of ``log`` (replayed once; cached on the log object)."""
    cached = getattr(log, "_gov_view", None)
    if isinstance(cached, GovView):
        return cached
    need = any(e.type is EntryType.CHECKPOINT for e in log.entries)
    state = LogState(need_merkle=need, limits=log.limits)
    promotes: list[RegistryEntry] = []
    for e in log.entries:
        try:
            state.apply(e)
        except RegistryError:
            break  # L0 only (L1/L2 refused the log before this): keep what came before
        if e.type is EntryType.PROMOTE:
            promotes.append(e)
    view = GovView(log, state, promotes)
    log._gov_view = view  # type: ignore[attr-defined]
    return view


__all__ = ["GovView", "Pick", "Via", "governance_of"]
