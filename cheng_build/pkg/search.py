"""Search the registry's packages, folding high-similarity copies under their original.

A package's verdict is the one its newest publish line records (``originality_score`` and
``similar_to``, decided at publish time against the log as it was). Lines that carry a fingerprint
but no verdict (written by older tooling) are judged here with the native ``pairs_within``
kernel: of two packages within :data:`COPY_DISTANCE` bits, the one first published later is the
copy. Originals are listed first by originality score, then by first publication.

Appeals (``cheng-registry appeal``/``decide``): a package whose newest snapshot has an appeal
shows its state (``appeal=open|restored|confirmed``); a ``restore`` decision replaces the score,
and a restored package is no longer folded under the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cheng_build.pkg.originality import COPY_DISTANCE
from cheng_build.trust.registry_log import RegistryEntry, RegistryLog


@dataclass(frozen=True, slots=True)
class PackageHit:
    """One package in the results, with the copies folded under it."""

    package_id: str
    author_id: str
    latest: RegistryEntry
    first_line: int
    score: float | None
    copy_of: str | None
    copies: list[PackageHit] = field(default_factory=list)
    appeal: str | None = None  # open | restored | confirmed (the newest snapshot's appeal)

    def line(self) -> str:
        """One display line."""
        e = self.latest
        score = "-" if self.score is None else f"{self.score:.1f}"
        tag = f"  copy of {self.copy_of}" if self.copy_of else ""
        if self.appeal:
            tag += f"  appeal={self.appeal}"
        return (f"{self.package_id}  {e.channel}@{e.epoch}  {e.cid}  author={self.author_id}  "
                f"originality={score}{tag}")

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"package_id": self.package_id, "author_id": self.author_id,
                "channel": self.latest.channel, "epoch": self.latest.epoch, "cid": self.latest.cid,
                "originality_score": self.score, "copy_of": self.copy_of, "appeal": self.appeal,
                "copies": [c.as_dict() for c in self.copies]}


def search(log: RegistryLog, term: str = "") -> list[PackageHit]:
    """Packages whose id contains ``term`` (case-insensitive), originals with their copies.

    An original is listed when it or one of its copies matches.
    """
    latest: dict[str, RegistryEntry] = {}
    first: dict[str, int] = {}
    for e in log.publishes():
        assert e.package_id is not None
        latest[e.package_id] = e
        first.setdefault(e.package_id, e.line)
    copy_of: dict[str, str] = {}
    unjudged: list[str] = []
    for pkg, e in latest.items():
        sim = e.data.get("similar_to")
        if e.originality_score == 0.0 and isinstance(sim, str) and sim in latest and sim != pkg:
            copy_of[pkg] = sim
        elif e.originality_score is None and e.ast_simhash64 is not None:
            unjudged.append(pkg)
    if unjudged:
        fps = [(p, fp) for p in latest if (fp := latest[p].simhash) is not None]
        from cheng_build import _native

        for i, j, _d in _native.pairs_within([f for _, f in fps], COPY_DISTANCE):
            a, b = fps[i][0], fps[j][0]
            later, earlier = (a, b) if first[a] > first[b] else (b, a)
            if later in unjudged and later not in copy_of:
                copy_of[later] = earlier

    from cheng_build.trust.gov_view import governance_of

    view = governance_of(log)
    appeals = {p: ap for p, e in latest.items()
               if e.cid is not None and (ap := view.appeal(p, e.cid)) is not None}
    for p, ap in appeals.items():
        if ap.outcome == "restore" and ap.score:
            copy_of.pop(p, None)  # the committee found it original enough

    def root(pkg: str) -> str:
        seen = {pkg}
        while pkg in copy_of and copy_of[pkg] not in seen:
            pkg = copy_of[pkg]
            seen.add(pkg)
        return pkg

    hits = {p: PackageHit(p, e.author_id or "", e, first[p],
                          _score(e.originality_score, appeals.get(p)), copy_of.get(p),
                          appeal=appeals[p].state if p in appeals else None)
            for p, e in latest.items()}
    needle = term.lower()
    shown: dict[str, PackageHit] = {}
    for p, h in hits.items():
        if needle in p.lower():
            r = root(p)
            shown.setdefault(r, hits[r])
            if r != p:
                shown[r].copies.append(h)
    for h in shown.values():
        h.copies.sort(key=lambda c: c.first_line)
    return sorted(shown.values(), key=lambda h: (-(h.score if h.score is not None else 1.0),
                                                 h.first_line))


def _score(published: float | None, appeal: Any) -> float | None:
    """The score to show: the published one, unless a decision restored another."""
    if appeal is not None and appeal.outcome == "restore":
        return float(appeal.score)
    return published
