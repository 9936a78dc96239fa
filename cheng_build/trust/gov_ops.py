"""Appending governance lines (tag, maintainer, promote, quarantine, release, appeal, decision).

What each line carries besides ``type``, ``seq``, ``prev``, ``created_ts``, ``pub_key`` and
``signature`` (Ed25519 over ``cheng.registry.gov.v1\n`` + canonical JSON of all other fields);
the full format is at the top of :mod:`cheng_build.trust.gov_lines`:

=============  ==================================================================  ==========
line           fields                                                              signed by
=============  ==================================================================  ==========
``tag``        ``package_id, cid, tag``                                            owner
``maintainer`` ``op`` (grant/remove), ``maintainer_key, maintainer_id``,           operator
               ``channels, packages`` (grant)
``promote``    ``package_id, cid, channel``                                        owner or
                                                                                   maintainer
``quarantine`` ``package_id, cid, reason[, source]``                               operator
``release``    ``package_id, cid, reason``                                         operator
``appeal``     ``package_id, cid, report_cid``                                     owner
``decision``   ``package_id, cid, outcome`` (restore/confirm), ``reason``,         operator
               ``originality_score`` (restore)
=============  ==================================================================  ==========

Each line is built and signed against the state replayed under the log's file lock
(:meth:`RegistryLog.append`), which then checks it with the same rules a verify applies
(:mod:`cheng_build.trust.gov_state`) before a byte is written. Formats:
:mod:`cheng_build.trust.gov_lines`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from cheng_build.trust import canonical
from cheng_build.trust.keys import KeyPair, decode_ed25519
from cheng_build.trust.registry_log import AppendRefusedError, LogState, RegistryEntry, RegistryLog
from cheng_build.trust.registry_ops import RefusedError


def _append(registry: str | os.PathLike[str], key: KeyPair, kind: str, fields: dict[str, Any],
            now: int | None) -> RegistryEntry:
    def build(log: RegistryLog, state: LogState) -> dict[str, Any]:
        body: dict[str, Any] = {"type": kind, "seq": state.lines + 1, "prev": state.last_digest,
                                **{k: v for k, v in fields.items() if v is not None},
                                "created_ts": str(now if now is not None else int(time.time())),
                                "pub_key": key.pub_key}
        body["signature"] = key.sign(canonical.gov_payload(body))
        return body

    try:
        return RegistryLog.append(registry, build)
    except AppendRefusedError as exc:
        # The rule names the line type ("tag: ..."), which the command's own name repeats.
        what = exc.what.removeprefix(f"{kind}: ")
        raise RefusedError(what, why=exc.why, how=exc.how) from None


def tag(registry: str | os.PathLike[str], key: KeyPair, package_id: str, cid: str, name: str,
        *, now: int | None = None) -> RegistryEntry:
    """Name snapshot ``cid`` of ``package_id`` ``name`` forever (owner-signed).

    Raises:
        RefusedError: not the owner, not a snapshot of the package, or the tag exists.
    """
    return _append(registry, key, "tag", {"package_id": package_id, "cid": cid, "tag": name}, now)


def grant_maintainer(registry: str | os.PathLike[str], operator: KeyPair, maintainer_key: str,
                     maintainer_id: str, channels: Sequence[str], packages: Sequence[str],
                     *, remove: bool = False, now: int | None = None) -> RegistryEntry:
    """Register (or with ``remove`` take away) a channel maintainer (operator-signed).

    Raises:
        RefusedError: not the operator, or nothing to remove.
    """
    decode_ed25519(maintainer_key, size=32, what="maintainer key")
    fields: dict[str, Any] = {"op": "remove" if remove else "grant",
                              "maintainer_key": maintainer_key, "maintainer_id": maintainer_id}
    if not remove:
        fields["channels"] = list(channels)
        fields["packages"] = list(packages)
    return _append(registry, operator, "maintainer", fields, now)


def promote(registry: str | os.PathLike[str], key: KeyPair, package_id: str, cid: str,
            channel: str, *, now: int | None = None) -> RegistryEntry:
    """Move ``package_id``'s ``channel`` to its existing snapshot ``cid`` (owner or maintainer).

    Raises:
        RefusedError: signer not allowed, unknown or quarantined snapshot, or a SemVer rollback.
    """
    return _append(registry, key, "promote",
                   {"package_id": package_id, "cid": cid, "channel": channel}, now)


def quarantine(registry: str | os.PathLike[str], operator: KeyPair, package_id: str, cid: str,
               reason: str, *, release: bool = False, source: str | None = None,
               now: int | None = None) -> RegistryEntry:
    """Quarantine (or with ``release`` lift the quarantine of) a snapshot (operator-signed).

    Raises:
        RefusedError: not the operator, unknown snapshot, already (or not) quarantined.
    """
    return _append(registry, operator, "release" if release else "quarantine",
                   {"package_id": package_id, "cid": cid, "reason": reason, "source": source},
                   now)


def appeal(registry: str | os.PathLike[str], key: KeyPair, package_id: str, cid: str,
           report_cid: str, *, now: int | None = None) -> RegistryEntry:
    """Appeal the originality score of a snapshot with a difference report (owner-signed).

    Raises:
        RefusedError: not the owner, unknown snapshot, or an appeal is already open.
    """
    return _append(registry, key, "appeal",
                   {"package_id": package_id, "cid": cid, "report_cid": report_cid}, now)


def decide(registry: str | os.PathLike[str], operator: KeyPair, package_id: str, cid: str,
           outcome: str, reason: str, score: float | None = None,
           *, now: int | None = None) -> RegistryEntry:
    """Close an open appeal: ``restore`` (with the restored score) or ``confirm`` (operator).

    Raises:
        RefusedError: not the operator, or no open appeal.
    """
    return _append(registry, operator, "decision",
                   {"package_id": package_id, "cid": cid, "outcome": outcome, "reason": reason,
                    "originality_score": None if score is None else float(score)}, now)


__all__ = ["appeal", "decide", "grant_maintainer", "promote", "quarantine", "tag"]
