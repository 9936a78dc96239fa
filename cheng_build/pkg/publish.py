"""Publish a package snapshot: store it, fingerprint it, check SemVer, sign, append to the log.

Order of work: the slow parts (snapshot into the CAS, SimHash, API table) happen before the
registry's file lock is taken; under the lock we replay the log and decide everything that
depends on it — namespace ownership, revocation, epoch, the SemVer gate against the channel's
previous release, the originality verdict against every other package — then sign and append.

Originality (the seed's A4): a fingerprint within ``COPY_DISTANCE`` bits of another package
*first published before this one* makes this line a high-similarity copy:
``originality_score = 0.0`` and ``similar_to``/``similar_line``/``similar_distance`` name the
original. Otherwise 1.0. Versions of one package never compete, and a package published first
is never marked a copy of a later imitator.

The package's own manifest (``cheng-package.{toml,yaml,json}`` at the top of a ``src``
directory) must agree with what is being published: its ``package_id`` with ``package_id``, its
``version`` with ``version`` when both are given, and it must be publishable
(:func:`cheng_build.pkg.manifest.ensure_publishable`: no dev-only ``path`` dependencies).
A single file has no manifest to read.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from cheng_build.core.errors import InputError, PolicyError, UsageError
from cheng_build.pkg import originality
from cheng_build.pkg.publish_content import ApiInfo, publish_content
from cheng_build.pkg.snapshot import SnapshotFormat
from cheng_build.trust import canonical
from cheng_build.trust.keys import KeyPair
from cheng_build.trust.registry_log import (
    CHANNELS,
    AppendRefusedError,
    LogState,
    RegistryEntry,
    RegistryLog,
)

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

    from cheng_build.cas.blockstore import Blockstore

_PACKAGE_ID = re.compile(r"^pkg://cheng/[A-Za-z0-9][A-Za-z0-9._-]*$")


class PublishError(PolicyError):
    """The registry refused the publish (ownership, revocation, epoch, SemVer)."""


def _previous_api(prev: RegistryEntry, store: Blockstore | None) -> dict[str, Any] | None:
    """The API table of an earlier release, from the CAS (None when it was never recorded)."""
    from cheng_build.pkg import api

    api_cid = prev.data.get("api_cid")
    if not prev.api or not isinstance(api_cid, str):
        return None
    if store is None:
        raise PublishError("cannot check SemVer without the store",
                           why=f"the previous release (line {prev.line}) keeps its API table in the CAS",
                           how="pass --pkg-cache:<dir> (the cache the previous release went to)")
    from cheng_build.cas.cid import parse_cid
    from cheng_build.pkg.snapshot import read_whole

    raw = read_whole(store, parse_cid(api_cid))
    return dict(api.api_from_json(raw))


def _semver_gate(state: LogState, package_id: str, channel: str, version: str,
                 new_api: ApiInfo | None, store: Blockstore | None) -> None:
    from cheng_build.pkg import semver

    semver.parse_version(version)
    prev = state.heads.get((package_id, channel))
    if prev is None or not prev.version:
        return
    prev_table = _previous_api(prev, store) if new_api is not None else None
    reasons = semver.check_release(prev_table or {}, new_api.table if new_api and prev_table is not None
                                   else {}, prev.version, version)
    if len(reasons) == 1 and reasons[0].startswith("version "):
        raise PublishError(reasons[0].split(":")[0], why=reasons[0],
                           how=f"publish with a version above {prev.version}")
    if reasons:
        raise PublishError(f"version {version} breaks the API of {prev.version}",
                           why="\n".join(reasons),
                           how="publish it as a new major version, or restore the public symbols")


def _originality(state: LogState, package_id: str, fp: int) -> dict[str, Any]:
    first_line: dict[str, int] = {}
    for f in state.fingerprints:
        first_line.setdefault(f.package_id, f.line)
    mine = first_line.get(package_id, state.lines + 1)
    earlier = ((f.line, f.package_id, f.simhash) for f in state.fingerprints
               if first_line[f.package_id] < mine)
    hit = originality.closest(fp, earlier, package_id)
    if hit is None:
        return {"originality_score": 1.0}
    line, pkg, other = hit
    return {"originality_score": 0.0, "similar_to": pkg, "similar_line": line,
            "similar_distance": originality.hamming(fp, other)}


def check_package_id(package_id: str) -> None:
    """Refuse a package id that is not ``pkg://cheng/<name>``.

    Raises:
        UsageError: malformed.
    """
    if not _PACKAGE_ID.match(package_id):
        raise UsageError(f"package id {package_id!r} is not pkg://cheng/<name>",
                         how="names use letters, digits, '.', '_' and '-'")


def check_manifest(src: Path, package_id: str, version: str | None) -> str | None:
    """Hold the manifest in ``src`` (a directory) to the publish's package id and version.

    Returns the release's version: ``--version``, else the manifest's. The manifest's version
    counts exactly as the flag does (it is recorded and the SemVer gate checks it): a gate that
    only the flag turned on let a minor release that removes a public symbol through whenever
    the version was written only in the manifest (issue 13, hole 16).

    Raises:
        ManifestError: the manifest is malformed.
        InputError: ``src`` is a directory without a manifest.
        UsageError: its ``package_id`` or ``version`` disagrees with the one being published.
        PolicyError: ``dev-only manifest`` (path dependencies) or ``manifest has no version``.
    """
    from cheng_build.core.record import replace
    from cheng_build.pkg.manifest import ensure_publishable, find_manifest, load_manifest

    if not src.is_dir():
        return version  # a single file (an archive, one module) has no manifest to read
    found = find_manifest(src)
    if found is None:
        # Without a manifest nobody can depend on the package (resolve reads its deps and
        # version from it), and a wrong --src (an empty or unrelated directory) would be signed
        # into the append-only log for good: refuse before anything is written.
        raise InputError(f"{src} has no cheng-package.toml",
                         why="a package directory names itself and its dependencies in "
                             "cheng-package.toml (or .yaml/.json)",
                         how=f"check --src, or create {src / 'cheng-package.toml'} with "
                             f"package_id = \"{package_id}\" and version = \"<x.y.z>\"")
    manifest = load_manifest(found)
    if manifest.package_id != package_id:
        raise UsageError(f"manifest package_id {manifest.package_id} does not match --package "
                         f"{package_id}", why=f"{found} names {manifest.package_id}",
                         how="publish under the manifest's package id, or fix the manifest")
    if version is not None and manifest.version is not None and manifest.version != version:
        raise UsageError(f"manifest version {manifest.version} does not match --version {version}",
                         why=f"{found} says version = \"{manifest.version}\"",
                         how="bump the version in the manifest, or drop --version to use it")
    if manifest.version is None and version is not None:
        manifest = replace(manifest, version=version)  # the flag supplies what the file lacks
    ensure_publishable(manifest)
    return manifest.version


def publish(
    *,
    registry: str | os.PathLike[str],
    key: KeyPair,
    package_id: str,
    channel: str,
    epoch: int,
    src: str | os.PathLike[str],
    author_id: str | None = None,
    format: str = "dag",
    source_addrs: Sequence[str] = (),
    version: str | None = None,
    store: Blockstore | None = None,
    now: int | None = None,
    parents: Sequence[str] = (),
) -> RegistryEntry:
    """Publish ``src`` (a package directory or one file) as ``package_id@channel`` at ``epoch``.

    Args:
        registry: the ``registry.jsonl`` path (created when missing).
        key: the author's key; it must own the namespace (or the namespace must be new).
        author_id: defaults to the key's; when both are set they must agree.
        format: ``dag`` (default), ``tar`` or ``source``.
        source_addrs: multiaddrs serving a ``source`` snapshot.
        version: SemVer; a patch/minor release may not break the previous release's API.
            It must equal the ``version`` of the manifest in ``src`` when that has one.
        store: the CAS the snapshot goes to (None: compute the CID only).
        now: ``created_ts`` (default: the current time).
        parents: merge parents: earlier snapshots (CIDs) of the same package this one merges
            (recorded as ``parents``; the log refuses any other CID).

    Returns:
        The appended line.

    Raises:
        UsageError: bad id, channel, epoch, author, format; a manifest in ``src`` naming another
            package or version.
        ManifestError: the manifest in ``src`` is malformed.
        PolicyError: the manifest in ``src`` is dev-only or has no version.
        PublishError: namespace owned by someone else, revoked key, epoch not increasing,
            SemVer violation.
        InputError: ``src`` missing or unreadable.
    """
    check_package_id(package_id)
    if channel not in CHANNELS:
        raise UsageError(f"unknown channel {channel!r}", how=f"use one of {', '.join(CHANNELS)}")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise UsageError(f"epoch {epoch!r} must be a non-negative integer")
    if author_id and key.author_id and author_id != key.author_id:
        raise UsageError(f"--author {author_id} does not match the key's author {key.author_id}",
                         how="use the key file of that author, or drop --author")
    author = author_id or key.author_id
    if not author:
        raise UsageError("no author id", how="pass --author:<id> or use a key file with author_id")
    fmt = SnapshotFormat.parse(format)
    src_path = Path(src)
    version = check_manifest(src_path, package_id, version)

    # The sources are read once for the snapshot, the fingerprint and the API table; the
    # fingerprint and the table are scanned on a second thread meanwhile (pkg/publish_content).
    if store is None:
        done = publish_content(None, src_path, fmt, source_addrs=source_addrs)
    else:
        # One batch, so one fsync, for the snapshot and the API table. It commits (blocks
        # durable, then indexed, then the root pinned) when the ``with`` ends, before the
        # registry line that names them is appended; a failure on the way discards them all.
        with store.batch() as batch:
            done = publish_content(store, src_path, fmt, source_addrs=source_addrs, into=batch)
    snap, fp, api_info = done.snapshot, done.fingerprint, done.api
    created = str(int(time.time()) if now is None else now)

    def build(log: RegistryLog, state: LogState) -> dict[str, Any]:
        if version is not None:
            _semver_gate(state, package_id, channel, version, api_info, store)
        fields: dict[str, Any] = {"package_id": package_id, "author_id": author, "channel": channel,
                                  "epoch": epoch, "cid": snap.cid, "format": fmt.value}
        extra: dict[str, Any] = {}
        if fp is not None:
            fields["ast_simhash64"] = fp.hex
            verdict = _originality(state, package_id, fp.simhash)
            fields["originality_score"] = verdict.pop("originality_score")
            extra.update(verdict)
        fields["pub_key"] = key.pub_key
        fields["signature"] = key.sign(canonical.publish_payload(fields))
        fields["created_ts"] = created
        head = state.heads.get((package_id, channel))
        if head is not None and head.cid:
            fields["parent"] = head.cid
        if version is not None:
            fields["version"] = version
        if api_info is not None:
            fields["api"] = api_info.digest
            if api_info.cid:
                fields["api_cid"] = api_info.cid
        if snap.chunker and fmt is SnapshotFormat.DAG:
            fields["chunker"] = snap.chunker
        if snap.source_addrs:
            fields["source_addrs"] = list(snap.source_addrs)
        if parents:
            fields["parents"] = list(dict.fromkeys(parents))
        fields.update(extra)
        return fields

    try:
        return RegistryLog.append(registry, build)
    except AppendRefusedError as exc:
        # A broken log on disk (any other RegistryError) propagates as is, naming its line.
        raise PublishError(exc.what, why=exc.why, how=exc.how) from None
