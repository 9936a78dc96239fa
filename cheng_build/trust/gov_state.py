"""The governance state replayed from the log: snapshots, tags, maintainers, promotions,
quarantines and appeals, with the rules every governance line must satisfy.

Formats are documented in :mod:`cheng_build.trust.gov_lines`. :class:`LogState` owns one
:class:`Governance` and hands it every publish (``published``) and every governance line
(``apply``), so whoever replays the log — ``verify``, every consumer through
``load_trusted_registry``, and ``append`` before a byte is written — checks the same rules.

Who may sign what:

- the namespace owner's current key: ``tag``, ``appeal``, ``promote``;
- a key the operator granted (package, channel) with a ``maintainer`` line: ``promote``;
- the operator (the pinned ``operator_key``, else the key of the first checkpoint or operator
  line — trust on first use, as for checkpoints): ``maintainer``, ``quarantine``, ``release``,
  ``decision``.
"""

from __future__ import annotations

from collections.abc import Mapping

from cheng_build.core.errors import PolicyError
from cheng_build.core.record import dataclass
from cheng_build.trust.gov_lines import semver_key
from cheng_build.trust.registry_entry import EntryType, RegistryEntry
from cheng_build.trust.registry_errors import RegistryError, RevokedKeyError

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # the protocols below are read by the type checker only


class _OwnerView(Protocol):
    @property
    def author_id(self) -> str: ...

    @property
    def pub_key(self) -> str | None: ...


class LogState(Protocol):
    """What governance reads and sets of the replayed log (:class:`.log_state.LogState`): a
    Protocol, because the log state owns a :class:`Governance` and must not be imported back."""

    operator_key: str | None

    @property
    def owners(self) -> Mapping[str, _OwnerView]: ...

    @property
    def revoked(self) -> Mapping[str, int]: ...

    @property
    def heads(self) -> Mapping[tuple[str, str], RegistryEntry]: ...


class GovernanceError(RegistryError, PolicyError):
    """A governance line breaks a rule (wrong signer, re-tag, unknown snapshot, ...)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What the operator let a maintainer key move."""

    maintainer_id: str
    key: str
    channels: tuple[str, ...]
    packages: tuple[str, ...]
    line: int

    def covers(self, package_id: str, channel: str) -> bool:
        """Whether this grant lets its key move ``package_id``'s ``channel``."""
        if channel not in self.channels:
            return False
        return any(p == package_id or (p.endswith("/*") and package_id.startswith(p[:-1]))
                   for p in self.packages)


@dataclass(frozen=True, slots=True)
class Quarantine:
    """An open quarantine of one snapshot."""

    reason: str
    line: int
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Appeal:
    """The appeal state of one snapshot: open, or decided."""

    report_cid: str
    line: int
    outcome: str | None = None  # None while open; "restore" | "confirm"
    score: float | None = None  # the restored originality score
    reason: str | None = None
    decision_line: int | None = None

    @property
    def state(self) -> str:
        """``open``, ``restored`` or ``confirmed``."""
        if self.outcome is None:
            return "open"
        return "restored" if self.outcome == "restore" else "confirmed"


def _fail(e: RegistryEntry, what: str, why: str | None = None, how: str | None = None) -> None:
    prefix = "" if e.type is EntryType.PUBLISH else f"{e.type.value}: "
    raise GovernanceError(f"{prefix}{what}", line=e.line, why=why, how=how)


class Governance:
    """Everything the governance lines established so far (see the module doc for the rules)."""

    def __init__(self) -> None:
        # (package_id, cid) -> the first publish of that snapshot
        self.snapshots: dict[tuple[str, str], RegistryEntry] = {}
        self.tags: dict[tuple[str, str], RegistryEntry] = {}
        self.grants: dict[str, Grant] = {}
        self.promotions: dict[tuple[str, str], RegistryEntry] = {}
        self.quarantined: dict[tuple[str, str], Quarantine] = {}
        self.appeals: dict[tuple[str, str], Appeal] = {}
        self.merges = 0

    # -- publishes --------------------------------------------------------------------------

    def published(self, e: RegistryEntry) -> None:
        """Record a publish (already accepted by the log's rules); check its merge parents."""
        d = e.data
        pkg, cid = d["package_id"], d["cid"]
        parents = d.get("parents")
        if parents is not None:
            for p in parents:
                if (pkg, p) not in self.snapshots:
                    other = next((k[0] for k in self.snapshots if k[1] == p), None)
                    _fail(e, f"parent {p} is not an earlier snapshot of {pkg}",
                          why=(f"it is a snapshot of {other}" if other else
                               "no earlier line publishes it"),
                          how="name only earlier snapshots of the same package (cheng-pkg log)")
            self.merges += 1
        self.snapshots.setdefault((pkg, cid), e)

    # -- governance lines -------------------------------------------------------------------

    def apply(self, e: RegistryEntry, state: LogState) -> None:
        """Check one governance line against the state and record it.

        Raises:
            GovernanceError: the line breaks a rule.
            RevokedKeyError: it is signed by a revoked key.
        """
        key = e.pub_key
        if key in state.revoked:
            raise RevokedKeyError(f"key revoked at line {state.revoked[key]}", line=e.line,
                                  why=f"{str(key)[:20]}... was revoked and may not sign anything "
                                      "after")
        t = e.type
        if t is EntryType.TAG:
            self._tag(e, state)
        elif t is EntryType.MAINTAINER:
            self._operator(e, state)
            self._maintainer(e)
        elif t is EntryType.PROMOTE:
            self._promote(e, state)
        elif t is EntryType.QUARANTINE or t is EntryType.RELEASE:
            self._operator(e, state)
            self._quarantine(e)
        elif t is EntryType.APPEAL:
            self._appeal(e, state)
        elif t is EntryType.DECISION:
            self._operator(e, state)
            self._decision(e)
        else:
            raise RuntimeError(f"Governance.apply: not a governance line: {t}")

    def _snapshot(self, e: RegistryEntry) -> RegistryEntry:
        pkg, cid = e.data["package_id"], e.data["cid"]
        snap = self.snapshots.get((pkg, cid))
        if snap is None:
            _fail(e, f"{cid} is not a published snapshot of {pkg}",
                  how="name a CID this package published (cheng-pkg log)")
        assert snap is not None
        return snap

    @staticmethod
    def _owner(e: RegistryEntry, state: LogState, what: str) -> None:
        pkg = e.data["package_id"]
        owner = state.owners.get(pkg)
        if owner is None or owner.pub_key is None or owner.pub_key != e.pub_key:
            _fail(e, f"{what} of {pkg} not signed by its owner",
                  why=(f"{pkg} is owned by {owner.author_id} with another key" if owner else
                       f"{pkg} has no signed owner"),
                  how="sign with the namespace's current key")

    @staticmethod
    def _operator(e: RegistryEntry, state: LogState) -> None:
        if state.operator_key is None:
            state.operator_key = e.pub_key  # trust on first use, as the first checkpoint
        elif e.pub_key != state.operator_key:
            _fail(e, "not signed by the operator",
                  why=f"only the operator ({state.operator_key[:24]}...) may sign "
                      f"{e.type.value} lines; this one is signed by {str(e.pub_key)[:24]}...",
                  how="ask the registry's operator (pin its key with [registry] operator_key)")

    def _tag(self, e: RegistryEntry, state: LogState) -> None:
        d = e.data
        self._owner(e, state, "tag")
        self._snapshot(e)
        k = (d["package_id"], d["tag"])
        old = self.tags.get(k)
        if old is not None:
            _fail(e, f"tag {d['tag']} of {d['package_id']} already names {old.data['cid']} "
                     f"(line {old.line})",
                  why="a tag names one snapshot forever", how="pick a new tag name")
        self.tags[k] = e

    def _maintainer(self, e: RegistryEntry) -> None:
        d = e.data
        mkey = d["maintainer_key"]
        if d["op"] == "remove":
            if mkey not in self.grants:
                _fail(e, f"{d['maintainer_id']} has no grant to remove")
            del self.grants[mkey]
            return
        self.grants[mkey] = Grant(d["maintainer_id"], mkey, tuple(d["channels"]),
                                  tuple(d["packages"]), e.line)

    def head(self, state: LogState, package_id: str, channel: str) -> RegistryEntry | None:
        """The snapshot (its publish line) at the head of a channel: the later of the newest
        publish on it and the newest promotion to it."""
        pub = state.heads.get((package_id, channel))
        promo = self.promotions.get((package_id, channel))
        if promo is not None and (pub is None or promo.line > pub.line):
            return self.snapshots.get((package_id, promo.data["cid"]))
        return pub

    def _promote(self, e: RegistryEntry, state: LogState) -> None:
        d = e.data
        pkg, channel, cid = d["package_id"], d["channel"], d["cid"]
        owner = state.owners.get(pkg)
        if owner is None or owner.pub_key != e.pub_key:
            grant = self.grants.get(str(e.pub_key))
            if grant is None:
                _fail(e, f"promotion of {pkg} by a key that is neither its owner nor a maintainer",
                      why="only the namespace owner or a maintainer the operator registered may "
                          "move a channel",
                      how="ask the operator: cheng-registry maintainer --key:<pub> ...")
            assert grant is not None
            if not grant.covers(pkg, channel):
                _fail(e, f"maintainer {grant.maintainer_id} may not move {pkg}@{channel}",
                      why=f"its grant (line {grant.line}) covers channels "
                          f"{', '.join(grant.channels)} of {', '.join(grant.packages)}",
                      how="ask the operator to extend the grant")
        snap = self._snapshot(e)
        q = self.quarantined.get((pkg, cid))
        if q is not None:
            _fail(e, f"{cid} is quarantined (line {q.line}): {q.reason}",
                  how="the operator must release it first")
        old = self.head(state, pkg, channel)
        if old is not None and old.cid == cid:
            _fail(e, f"{pkg}@{channel} is already at {cid}")
        if old is not None and old.version and snap.version:
            older, newer = semver_key(old.version), semver_key(snap.version)
            if older is not None and newer is not None and not newer > older:
                _fail(e, f"version {snap.version} is not above {old.version}, the current "
                         f"{channel} head (line {old.line})",
                      why="a promotion follows the SemVer rules: a channel never moves back",
                      how="promote a newer snapshot")
        self.promotions[(pkg, channel)] = e

    def _quarantine(self, e: RegistryEntry) -> None:
        d = e.data
        self._snapshot(e)
        k = (d["package_id"], d["cid"])
        if e.type is EntryType.QUARANTINE:
            if k in self.quarantined:
                _fail(e, f"{d['cid']} is already quarantined (line {self.quarantined[k].line})")
            self.quarantined[k] = Quarantine(d["reason"], e.line, d.get("source"))
        else:
            if k not in self.quarantined:
                _fail(e, f"{d['cid']} is not quarantined")
            del self.quarantined[k]

    def _appeal(self, e: RegistryEntry, state: LogState) -> None:
        d = e.data
        self._owner(e, state, "appeal")
        self._snapshot(e)
        k = (d["package_id"], d["cid"])
        old = self.appeals.get(k)
        if old is not None and old.outcome is None:
            _fail(e, f"{d['cid']} already has an open appeal (line {old.line})",
                  how="wait for the operator's decision")
        self.appeals[k] = Appeal(d["report_cid"], e.line)

    def _decision(self, e: RegistryEntry) -> None:
        d = e.data
        k = (d["package_id"], d["cid"])
        old = self.appeals.get(k)
        if old is None or old.outcome is not None:
            _fail(e, f"{d['cid']} has no open appeal")
        assert old is not None
        score = d.get("originality_score")
        self.appeals[k] = Appeal(old.report_cid, old.line, d["outcome"],
                                 None if score is None else float(score), d["reason"], e.line)


__all__ = ["Appeal", "Governance", "GovernanceError", "Grant", "Quarantine"]
