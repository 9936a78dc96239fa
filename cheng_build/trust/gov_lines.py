"""Governance lines of the registry log: tags, maintainers, promotions, quarantine, appeals.

These extend the format of :mod:`cheng_build.trust.registry_log` (version 1; old logs verify
byte-for-byte as before). Every governance line is chained (``seq``/``prev``) and signed: it
carries ``pub_key`` and ``signature`` = Ed25519 over ``cheng.registry.gov.v1\\n`` + the canonical
JSON of every other field (:func:`cheng_build.trust.canonical.gov_payload`). ``type`` is inside
the signed body, so one kind of line cannot be replayed as another. ``created_ts`` (optional) is
a string or integer, as on every line.

``tag`` — owner-signed: ``package_id``, ``cid``, ``tag``
    Names one published snapshot of ``package_id`` forever: a second ``tag`` line with the same
    ``(package_id, tag)`` is refused, whatever CID it names. Tag names: 1-128 of
    ``A-Z a-z 0-9 . _ + -``, starting with a letter or digit (``v1.2.0``, ``2026-q4``).

``maintainer`` — operator-signed: ``op`` (``grant`` | ``remove``), ``maintainer_key``
    (``ed25519:<base64>``), ``maintainer_id``, and for ``grant`` ``channels`` (a non-empty list of
    ``stable``/``lts``/``edge``) and ``packages`` (a non-empty list of ``pkg://...`` ids; an id
    ending in ``/*`` covers a namespace prefix). ``remove`` takes the key's grant away.

``promote`` — signed by the namespace owner or a maintainer granted (package, channel):
    ``package_id``, ``cid`` (an existing snapshot of it), ``channel`` (the channel moved).
    Moves the channel's head to that snapshot without new content. When the old head and the
    snapshot both carry a SemVer ``version``, the new one must be above the old (no rollback).
    A quarantined snapshot cannot be promoted.

``quarantine`` / ``release`` — operator-signed: ``package_id``, ``cid``, ``reason``
    (non-empty, at most 1,000 characters), and optionally ``source`` (what proposed it, e.g. a
    compute audit's fraud record). Quarantine of a quarantined snapshot, or release of one that
    is not, is refused.

``appeal`` — owner-signed: ``package_id``, ``cid``, ``report_cid`` (the difference report,
    stored in the CAS). Contests the originality score of that snapshot; one open appeal per
    snapshot.

``decision`` — operator-signed: ``package_id``, ``cid``, ``outcome`` (``restore`` | ``confirm``),
    ``reason``, and for ``restore`` the restored ``originality_score`` (0.0-1.0). Closes the
    open appeal of that snapshot.

``publish`` gains ``parents`` (optional): a non-empty list of CIDs, each an earlier snapshot of
the same package — a merge. (Like ``parent`` it is not in the publish signature, which covers
exactly what a lock carries; the chain and checkpoints bind it.)

This module checks the *shape* of those lines; the rules that need the replayed state are in
:mod:`cheng_build.trust.gov_state`.
"""

from __future__ import annotations

from collections.abc import Mapping

from cheng_build.core.lazyre import lazy

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

GOV_TYPES = ("tag", "maintainer", "promote", "quarantine", "release", "appeal", "decision")
GOV_CHANNELS = ("edge", "stable", "lts")
OUTCOMES = ("restore", "confirm")
MAX_REASON = 1000
MAX_LIST = 256
TAG_RE = lazy(globals(), "TAG_RE", r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


class ShapeError(ValueError):
    """A governance line's field is missing or malformed (the caller names the line)."""


def _str(d: Mapping[str, Any], key: str, *, optional: bool = False, limit: int = 4096) -> str | None:
    v = d.get(key)
    if v is None:
        if optional:
            return None
        raise ShapeError(f"missing {key}")
    if type(v) is not str or not v:
        raise ShapeError(f"{key} must be a non-empty string")
    if len(v) > limit:
        raise ShapeError(f"{key} is longer than {limit} characters")
    return v


def _pkg(d: Mapping[str, Any]) -> str:
    pkg = _str(d, "package_id")
    assert pkg is not None
    if not pkg.startswith("pkg://") or len(pkg) <= 6:
        raise ShapeError(f"package_id {pkg[:60]!r} is not pkg://<namespace>/<name>")
    return pkg


def _str_list(d: Mapping[str, Any], key: str) -> list[str]:
    v = d.get(key)
    if v is None:
        raise ShapeError(f"missing {key}")
    if (type(v) is not list or not v or len(v) > MAX_LIST
            or not all(type(x) is str and x for x in v)):
        raise ShapeError(f"{key} must be a non-empty list of at most {MAX_LIST} strings")
    return v


_SEMVER = lazy(globals(), "_SEMVER", r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                     r"(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")


def semver_key(text: str) -> tuple[Any, ...] | None:
    """A sort key giving SemVer 2.0 precedence (build metadata ignored), or None if ``text`` is
    not SemVer. (The trust layer cannot import ``pkg.semver``; this is precedence only.)"""
    m = _SEMVER.fullmatch(text)
    if m is None:
        return None
    major, minor, patch, pre = int(m[1]), int(m[2]), int(m[3]), m[4]
    if pre is None:
        return (major, minor, patch, 1, ())
    # Numeric identifiers sort below alphanumeric ones, and numerically among themselves.
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (major, minor, patch, 0, ids)


def is_tag_name(name: object) -> bool:
    """Whether ``name`` is a valid tag name."""
    return type(name) is str and TAG_RE.fullmatch(name) is not None


def check_parents(d: Mapping[str, Any]) -> None:
    """Shape of a publish line's optional ``parents`` (merge parents)."""
    if d.get("parents") is not None:
        _str_list(d, "parents")


def check_shape(kind: str, d: Mapping[str, Any]) -> None:
    """Check the fields of a governance line of type ``kind`` (one of :data:`GOV_TYPES`).

    ``seq``/``prev``/``pub_key``/``signature`` are checked by the caller, as for every line.

    Raises:
        ShapeError: what is wrong.
    """
    if kind == "maintainer":
        op = d.get("op")
        if op not in ("grant", "remove"):
            raise ShapeError(f"maintainer op {str(op)[:20]!r} is not grant or remove")
        key = _str(d, "maintainer_key")
        assert key is not None
        if not key.startswith("ed25519:"):
            raise ShapeError("maintainer_key must be ed25519:<base64>")
        _str(d, "maintainer_id", limit=256)
        if op == "grant":
            chans = _str_list(d, "channels")
            bad = [c for c in chans if c not in GOV_CHANNELS]
            if bad:
                raise ShapeError(f"channel {bad[0][:20]!r} is not one of {', '.join(GOV_CHANNELS)}")
            pkgs = _str_list(d, "packages")
            badp = [p for p in pkgs if not p.startswith("pkg://") or len(p) <= 6]
            if badp:
                raise ShapeError(f"package {badp[0][:60]!r} is not pkg://<namespace>/<name>")
        return
    _pkg(d)
    _str(d, "cid", limit=512)
    if kind == "tag":
        if not is_tag_name(d.get("tag")):
            raise ShapeError(f"tag {str(d.get('tag'))[:40]!r} is not a tag name (1-128 of "
                             "A-Z a-z 0-9 . _ + -, starting with a letter or digit)")
    elif kind == "promote":
        ch = d.get("channel")
        if ch not in GOV_CHANNELS:
            raise ShapeError(f"channel {str(ch)[:20]!r} is not one of {', '.join(GOV_CHANNELS)}")
    elif kind in ("quarantine", "release"):
        _str(d, "reason", limit=MAX_REASON)
        _str(d, "source", optional=True, limit=MAX_REASON)
    elif kind == "appeal":
        _str(d, "report_cid", limit=512)
    elif kind == "decision":
        outcome = d.get("outcome")
        if outcome not in OUTCOMES:
            raise ShapeError(f"outcome {str(outcome)[:20]!r} is not restore or confirm")
        _str(d, "reason", limit=MAX_REASON)
        score = d.get("originality_score")
        if outcome == "restore":
            if (score is None or type(score) is bool or not isinstance(score, int | float)
                    or not 0.0 <= float(score) <= 1.0):
                raise ShapeError("a restore decision needs originality_score within 0.0-1.0")
        elif score is not None:
            raise ShapeError("a confirm decision carries no originality_score")
    else:
        raise ShapeError(f"unknown governance line {kind[:20]!r}")


__all__ = ["GOV_TYPES", "MAX_REASON", "OUTCOMES", "ShapeError", "check_parents", "check_shape",
           "is_tag_name", "semver_key"]
