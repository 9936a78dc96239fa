"""Verify a lock: single version, signatures, registry match — in that order.

1. **Single version** — no package appears twice (``verify: single-version conflict`` with one
   ``- <package>: <ch>@<epoch> <cid> [<format>] vs ...`` line per package, the seed's A1.14).
2. **Signatures** — each entry's Ed25519 signature verifies over exactly the lock-carried fields
   (:mod:`cheng_build.trust.canonical`), so the lock is checked on its own before the registry
   is consulted. The existing tooling's ``local:`` placeholder is accepted only at L0, with a
   warning (``verify: signature failed`` otherwise).
3. **Registry match** — that CID is what that author signed for that package, channel and epoch:
   the registry's publish at (package, channel, epoch) must carry the same cid, format, author,
   key and signature (``verify: registry mismatch``). Skipped only at L0 when the configuration
   says ``require_registry_match = false``.

4. **Governance** (with the registry) — a ``promoted_to``/``tag`` marker must be backed by a valid
   promotion/tag line (``verify: registry mismatch``), and a quarantined snapshot is refused
   (``quarantined snapshot``; ``allow_quarantined`` lets it through below L2):
   :mod:`cheng_build.pkg.governance`. An ``unsigned = true`` marker (written by a resolve with
   ``--allow-unsigned`` at L0) is refused at L1/L2 (``verify: signature failed``).

Dev-only ``path`` entries carry nothing to verify: allowed with a warning at L0/L1, refused at
L2. Every failure of one kind is collected and reported together, one line per package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cheng_build.core.errors import SignatureError
from cheng_build.pkg.lock import Lock, LockedDep, duplicates
from cheng_build.pkg.lock_errors import (
    DevOnlyError,
    LockManifestMismatchError,
    RegistryMismatchError,
    SignatureFailedError,
    SingleVersionConflictError,
)
from cheng_build.pkg.manifest import Manifest

if TYPE_CHECKING:
    from cheng_build.trust.registry_log import RegistryLog

_COMPARED = ("cid", "format", "author_id", "pub_key", "signature")


def level_name(level: object) -> str:
    """``"L0"``/``"L1"``/``"L2"`` from a :class:`~cheng_build.trust.config.Level`, a Config or text."""
    inner = getattr(level, "level", None)
    if inner is not None and not isinstance(level, str):
        level = inner
    value = getattr(level, "value", level)
    text = str(value).upper()
    if text in ("0", "1", "2"):
        text = "L" + text
    if text not in ("L0", "L1", "L2"):
        from cheng_build.core.errors import UsageError

        raise UsageError(f"unknown security level {level!r}", how="use L0, L1 or L2")
    return text


def _signed_fields(dep: LockedDep) -> dict[str, Any]:
    return {"package_id": dep.package_id, "author_id": dep.author_id, "channel": dep.channel,
            "epoch": dep.epoch, "cid": dep.cid, "format": dep.format,
            "ast_simhash64": dep.ast_simhash64, "originality_score": dep.originality_score,
            "pub_key": dep.pub_key, "signature": dep.signature}


def check_single_version(deps: Sequence[LockedDep]) -> None:
    """Raise :class:`SingleVersionConflictError` when a package is locked twice."""
    dups = duplicates(deps)
    if dups:
        raise SingleVersionConflictError(
            [f"- {pid}: " + " vs ".join(d.describe() for d in entries)
             for pid, entries in dups.items()],
            how="re-resolve with 'cheng-pkg resolve' (add an [overrides] entry to settle it)")


def check_signatures(deps: Sequence[LockedDep], level: str) -> list[str]:
    """Verify each entry's signature; returns warnings (L0 placeholders).

    Raises:
        SignatureFailedError: one line per entry that fails.
    """
    from cheng_build.trust import canonical
    from cheng_build.trust.keys import Verifier

    verifier = Verifier()  # one instance: decoded keys are cached across entries
    failures: list[str] = []
    warnings: list[str] = []
    for dep in deps:
        if dep.path:
            continue
        sig = dep.signature or ""
        if not sig or sig.startswith("local:"):
            kind = "local: placeholder signature" if sig else "no signature"
            if level == "L0":
                warnings.append(f"{dep.package_id}: unsigned ({kind}), accepted at L0 only")
            else:
                failures.append(f"- {dep.package_id}: unsigned ({kind}); accepted only at L0")
            continue
        if not dep.pub_key:
            failures.append(f"- {dep.package_id}: signed entry without pub_key")
            continue
        try:
            msg = canonical.publish_payload(_signed_fields(dep))
            verifier.verify(dep.pub_key, msg, sig, what=f"signature of {dep.package_id}")
        except (SignatureError, canonical.CanonicalError) as exc:
            failures.append(f"- {dep.package_id}: {exc.what} ({dep.describe()})")
    if failures:
        raise SignatureFailedError(failures)
    return warnings


def check_registry_match(deps: Sequence[LockedDep], registry: RegistryLog) -> None:
    """Each entry must be exactly the registry's publish at its (package, channel, epoch).

    Raises:
        RegistryMismatchError: one line per entry that differs or is missing.
    """
    failures: list[str] = []
    for dep in deps:
        if dep.path:
            continue
        entry = registry.find(dep.package_id, dep.channel, dep.epoch or 0)
        if entry is None:
            failures.append(f"- {dep.package_id}: no {dep.channel}@{dep.epoch} publish in the "
                            "registry")
            continue
        for key in _COMPARED:
            mine = getattr(dep, key)
            theirs = getattr(entry, key, None)
            if key == "format":
                theirs = theirs or "tar"
            if mine != theirs:
                failures.append(f"- {dep.package_id}: {key} {mine} in the lock, registry has "
                                f"{theirs} for {dep.channel}@{dep.epoch}")
                break
    if failures:
        raise RegistryMismatchError(failures)


def verify_lock(lock: Lock, registry: RegistryLog | None, level: object = "L1", *,
                require_registry_match: bool | None = None,
                require_signature: bool | None = None,
                allow_quarantined: bool = False, confirm: Any = None,
                allow_unsigned: bool | None = None) -> list[str]:
    """Verify a lock against a registry at a security level.

    Args:
        lock: the lock to check.
        registry: a loaded :class:`~cheng_build.trust.registry_log.RegistryLog` (anything with
            its ``find(package_id, channel, epoch)``); may be None only when the registry match
            is not required (L0).
        level: ``L0``/``L1``/``L2`` (a ``Level``, a ``Config`` or text).
        require_registry_match: override the level's default (True at L1/L2); a Config passed
            as ``level`` supplies its own setting.
        require_signature: likewise (True at L1/L2); when False (L0), a signature that does not
            verify is a warning instead of a failure.

    Returns:
        Warnings (L0 placeholders, dev-only path entries); empty when all is clean.

    Raises:
        SingleVersionConflictError, SignatureFailedError, RegistryMismatchError: as above.
        DevOnlyError: a path entry at L2.
    """
    name = level_name(level)
    if require_registry_match is None:
        cfg = getattr(level, "require_registry_match", None)
        require_registry_match = cfg if isinstance(cfg, bool) else name != "L0"
    if require_signature is None:
        cfg = getattr(level, "require_signature", None)
        require_signature = cfg if isinstance(cfg, bool) else name != "L0"
    check_single_version(lock.dependencies)
    paths = [d for d in lock.dependencies if d.path]
    if paths and name == "L2":
        raise DevOnlyError([f"- {d.package_id}: path {d.path}" for d in paths])
    warnings = [f"{d.package_id}: dev-only path dependency ({d.path}); never publish this"
                for d in paths]
    from cheng_build.pkg.unsigned import check_lock

    # --allow-unsigned (pkg/unsigned.py): marked entries never pass L1/L2; at L0 the flag decides.
    dev_unsigned = check_lock(lock.dependencies, name, allow_unsigned)
    if dev_unsigned:
        warnings += dev_unsigned
        require_signature = False
    try:
        warnings += check_signatures(lock.dependencies, name)
    except SignatureFailedError as exc:
        if require_signature:
            raise
        warnings += [f"{line[2:]} (signatures not required at {name})" for line in exc.details]
    if require_registry_match:
        if registry is None:
            raise RegistryMismatchError(["- no registry given to compare the lock against"])
        check_registry_match(lock.dependencies, registry)
    if registry is not None:
        from cheng_build.pkg.governance import check_markers, check_quarantine

        bad = check_markers(lock.dependencies, registry)
        if bad and require_registry_match:
            raise RegistryMismatchError(bad)
        warnings += [line[2:] for line in bad]
        warnings += check_quarantine([(d.package_id, d.cid) for d in lock.dependencies
                                      if not d.path], registry, name,
                                     allow=allow_quarantined, confirm=confirm, command="verify")
    return warnings


def lock_manifest_problems(lock: Lock, manifest: Manifest) -> list[str]:
    """Ways the lock no longer matches its manifest (``- ...`` lines; empty when it matches).

    Checked: the package id, and that every dependency of the manifest (after its own
    overrides) is locked on the channel — or local path — the manifest asks for.
    """
    out: list[str] = []
    if lock.package_id != manifest.package_id:
        out.append(f"- package_id: lock is for {lock.package_id}, manifest is "
                   f"{manifest.package_id}")
    locked = lock.by_package()
    for dep in manifest.dependencies:
        over = manifest.overrides.get(dep.package_id)
        tag = dep.tag
        if over is not None:  # as resolve applies it: a channel-only override drops the path
            channel, path = over.channel or dep.channel, over.path
            tag = None if over.channel or over.path else tag
        else:
            channel, path = dep.channel, dep.path
        have = locked.get(dep.package_id)
        marks = dict(have.extra) if have is not None else {}
        if have is not None and tag is not None and not have.path:
            if marks.get("tag") != tag:
                out.append(f"- {dep.package_id}: manifest wants tag {tag}, lock has "
                           + (f"tag {marks['tag']}" if marks.get("tag") else
                              f"channel {have.channel}"))
            continue
        if have is not None and not path and marks.get("promoted_to") == channel:
            continue  # a promoted snapshot keeps its own publish channel (checked by verify)
        if have is None:
            out.append(f"- {dep.package_id}: in the manifest but not in the lock")
        elif bool(path) != bool(have.path):
            out.append(f"- {dep.package_id}: manifest wants "
                       f"{'path ' + str(path) if path else 'channel ' + channel}, lock has "
                       f"{'path ' + str(have.path) if have.path else 'channel ' + have.channel}")
        elif not path and have.channel != channel:
            out.append(f"- {dep.package_id}: manifest wants channel {channel}, lock has "
                       f"{have.channel}")
    return out


def ensure_lock_matches_manifest(lock: Lock, manifest: Manifest) -> None:
    """Raise :class:`LockManifestMismatchError` listing :func:`lock_manifest_problems`."""
    problems = lock_manifest_problems(lock, manifest)
    if problems:
        raise LockManifestMismatchError(problems)


__all__ = ["check_registry_match", "check_signatures", "check_single_version",
           "ensure_lock_matches_manifest", "level_name", "lock_manifest_problems", "verify_lock"]
