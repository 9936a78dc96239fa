"""What the registry's governance lines mean for resolve, verify and fetch.

- **Picking** (resolve): a channel request takes the channel's head, which a signed promotion may
  have moved to an earlier snapshot; a ``tag`` request takes the snapshot the tag names. Either
  way the lock carries that snapshot's own publish (its channel, epoch and signature, so the
  signature and registry-match checks hold unchanged), plus a v2 marker saying how it was
  reached: ``promoted_to = "<channel>"`` or ``tag = "<name>"``. :func:`check_markers` holds
  those markers to the log: a lock that claims a promotion or tag the log does not have is
  refused.
- **Quarantine** (resolve, verify, fetch, chengc): a snapshot the operator quarantined is refused
  with the reason and how to proceed. ``--allow-quarantined`` lets it through at L0/L1 (after a
  typed confirmation when a person is at a terminal), never at L2.

The registry passed here is always one that passed ``load_trusted_registry``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cheng_build.core.errors import NotFoundError, PolicyError

# Lock markers (v2 extra keys of a dependency).
PROMOTED_TO = "promoted_to"
TAG = "tag"


class QuarantinedError(PolicyError):
    """A snapshot in the graph is quarantined by the registry operator."""


@dataclass(frozen=True, slots=True)
class Picked:
    """A snapshot resolve chose: its publish line and the lock markers to record."""

    entry: Any
    extra: tuple[tuple[str, str], ...] = ()


def _view(registry: Any) -> Any:
    from cheng_build.trust.gov_view import governance_of
    from cheng_build.trust.registry_log import RegistryLog

    return governance_of(registry) if isinstance(registry, RegistryLog) else None


def pick(registry: Any, package_id: str, channel: str, tag: str | None,
         wanted_by: str) -> Picked | None:
    """The snapshot a request names: the tagged one, or the channel's (possibly promoted) head;
    None when the channel has no release.

    Raises:
        NotFoundError: ``snapshot not found`` — no such tag.
    """
    view = _view(registry)
    if tag is not None:
        p = view.tagged(package_id, tag) if view is not None else None
        if p is None:
            raise NotFoundError("snapshot not found",
                                why=f"{package_id} has no tag {tag} in the registry "
                                    f"(wanted by {wanted_by})",
                                how="check the tag name (cheng-pkg log --package:...) or ask "
                                    "its owner to tag the snapshot")
        return Picked(p.entry, ((TAG, tag),))
    if view is None:  # a plain index (tests, tools): channel heads only
        entry = registry.head(package_id, channel)
        return Picked(entry) if entry is not None else None
    h = view.head(package_id, channel)
    if h is None:
        return None
    from cheng_build.trust.gov_view import Via

    return Picked(h.entry, ((PROMOTED_TO, channel),) if h.via is Via.PROMOTE else ())


def check_markers(deps: Sequence[Any], registry: Any) -> list[str]:
    """``- <package>: ...`` lines for lock markers the verified log does not back (empty: ok)."""
    view = _view(registry)
    if view is None:
        return []
    out: list[str] = []
    for dep in deps:
        extra = dict(getattr(dep, "extra", ()))
        ch = extra.get(PROMOTED_TO)
        if ch is not None and not view.promoted_to(dep.package_id, dep.cid, ch):
            out.append(f"- {dep.package_id}: the lock says {dep.cid} was promoted to {ch}; no "
                       "valid promotion in the registry says so")
        tag = extra.get(TAG)
        if tag is not None:
            p = view.tagged(dep.package_id, tag)
            if p is None or p.entry.cid != dep.cid:
                out.append(f"- {dep.package_id}: the lock says tag {tag} is {dep.cid}; the "
                           "registry " + (f"tags {p.entry.cid}" if p else "has no such tag"))
    return out


def check_promotion_api(registry: Any, package_id: str, cid: str, channel: str,
                        store: Any) -> None:
    """The API half of the SemVer gate for a promotion (the log's replay checks precedence).

    When the channel's current head and the snapshot to promote both recorded their public API
    table in the CAS (``api_cid``), a minor/patch step may not remove or change a public symbol,
    exactly as at publish.

    Raises:
        PolicyError: ``promotion breaks the API``.
        NotFoundError: an API table is not in ``store``.
    """
    from cheng_build.pkg import semver
    from cheng_build.pkg.publish import _previous_api

    view = _view(registry)
    if view is None:
        return
    old = view.head(package_id, channel)
    new = view.gov.snapshots.get((package_id, cid))
    if old is None or new is None or not old.entry.version or not new.version:
        return
    old_table = _previous_api(old.entry, store)
    new_table = _previous_api(new, store)
    if old_table is None or new_table is None:
        return
    reasons = [r for r in semver.check_release(old_table, new_table, old.entry.version,
                                               new.version) if not r.startswith("version ")]
    if reasons:
        raise PolicyError(f"promotion: version {new.version} breaks the API of "
                          f"{old.entry.version}",
                          why="\n".join(reasons) + f"\n{channel} would move from "
                              f"{old.entry.cid} to {cid}",
                          how="promote a new major version, or a snapshot that keeps the public "
                              "symbols")


Confirm = Callable[[str], bool]


def check_quarantine(deps: Sequence[tuple[str, str | None]], registry: Any, level: str, *,
                     allow: bool = False, confirm: Confirm | None = None,
                     command: str = "resolve") -> list[str]:
    """Refuse quarantined snapshots among ``deps`` ((package_id, cid) pairs).

    Args:
        deps: the snapshots about to be used.
        registry: the verified log.
        level: ``L0``/``L1``/``L2``.
        allow: ``--allow-quarantined`` was given (refused at L2).
        confirm: asks a person (returns True to go on); None when nobody is at a terminal.
        command: for the messages.

    Returns:
        Warnings for quarantined snapshots let through with ``allow``.

    Raises:
        QuarantinedError: one line per quarantined snapshot, with the reasons.
    """
    view = _view(registry)
    if view is None:
        return []
    hits = []
    for pid, cid in deps:
        if cid is None:
            continue
        q = view.quarantine(pid, cid)
        if q is not None:
            hits.append(f"{pid} {cid}: {q.reason} (quarantined at registry line {q.line})")
    if not hits:
        return []
    if allow and level == "L2":
        raise QuarantinedError("quarantined snapshot refused at L2",
                               why="\n".join(hits) + "\n--allow-quarantined is refused at L2",
                               how="wait for the operator's 'cheng-registry release', or depend "
                                   "on another snapshot")
    if not allow:
        raise QuarantinedError(
            "quarantined snapshot", why="\n".join(hits),
            how="depend on another snapshot (another channel, tag or [overrides] entry), ask the "
                "operator to review it ('cheng-registry release' lifts it), or, at L0/L1 and at "
                f"your own risk, run {command} again with --allow-quarantined")
    if confirm is not None and not confirm("\n".join(hits)):
        raise QuarantinedError("quarantined snapshot: not confirmed",
                               why="\n".join(hits), how="answer yes to use it anyway")
    return [f"using a quarantined snapshot (--allow-quarantined): {h}" for h in hits]


__all__ = ["PROMOTED_TO", "TAG", "Confirm", "Picked", "QuarantinedError", "check_markers",
           "check_promotion_api",
           "check_quarantine", "pick"]
