"""Manifest -> lock: channels to heads, then the full transitive closure, one version each.

The rules (the seed's A and A1):

1. Every requested channel resolves to its head in the registry (highest epoch, unless a signed
   promotion moved it since), and a requested ``tag`` to the snapshot it names
   (:mod:`cheng_build.pkg.governance`; the lock marks how it was reached). A snapshot the
   operator quarantined is refused (``allow_quarantined`` lets it through below L2).
2. Each resolved snapshot's own manifest (``cheng-package.toml`` inside the snapshot) adds its
   dependencies, until the graph is closed. A dependency's ``[overrides]`` are ignored.
3. Single-version rule: one snapshot per package in the whole graph. Two requests that land on
   different snapshots of a package are a ``single-version conflict``, reported in full (every
   clash, every alternative, and which dependents asked for which).
4. Only the top-level manifest may settle a clash: its ``[overrides]`` fix a package's channel
   (or a dev-only ``path``) for every request in the graph.
5. A ring of dependencies is refused: ``dependency cycle: a -> b -> a``.
6. A ``path`` dependency resolves to a local tree (its manifest is read from disk); the lock
   marks it ``dev_only`` and it carries no signature.

The walk is breadth-first with dictionary look-ups only (``RegistryLog.head`` answers from an
index built in one pass over the log), so the cost is linear in packages + edges + log lines,
plus one manifest read per snapshot.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cheng_build.core.errors import NotFoundError, PolicyError
from cheng_build.pkg.governance import check_quarantine, pick
from cheng_build.pkg.lock import Lock, LockedDep, now_ts
from cheng_build.pkg.lock_errors import DependencyCycleError, SingleVersionConflictError
from cheng_build.pkg.manifest import (
    MANIFEST_NAMES,
    Dependency,
    Manifest,
    ManifestError,
    load_manifest,
    manifest_from_bytes,
)

# (package_id, cid, format) -> the bytes of the manifest inside that snapshot and its file name,
# or None when the snapshot has no manifest (then it has no dependencies).
ManifestReader = Callable[[str, str, str], "tuple[bytes, str] | None"]


def store_manifest_reader(store: Any) -> ManifestReader:
    """Read a dependency's manifest out of its snapshot in ``store``.

    ``dag`` snapshots are read with the CAS exporter directly; ``tar`` and ``source`` through
    :func:`cheng_build.pkg.snapshot.read_snapshot_file`, which understands every format.
    """
    from cheng_build.cas.cid import parse_cid
    from cheng_build.pkg.snapshot import read_snapshot_file

    def read(package_id: str, cid: str, fmt: str) -> tuple[bytes, str] | None:
        if fmt == "dag":
            from cheng_build.cas import exporter

            # parse_cid decodes our own base32 CIDs without multiformats' slow path (~2 us).
            root = parse_cid(cid)
            for name in MANIFEST_NAMES:
                try:
                    return bytes(exporter.read_path(store, root, name)), name
                except NotFoundError as exc:
                    # A missing path inside a present snapshot means "no such manifest";
                    # a missing block means the snapshot is not (fully) here.
                    if "block" in exc.what or not store.has(root):
                        raise
            return None
        for name in MANIFEST_NAMES:
            raw = read_snapshot_file(store, cid, fmt, name)
            if raw is not None:
                return raw, name
        return None

    return read


@dataclass(slots=True)
class _Choice:
    """One distinct snapshot some dependents asked for."""

    dep: LockedDep
    wanted_by: list[str] = field(default_factory=list)
    deps: tuple[str, ...] = ()


def _conflict_lines(pid: str, choices: list[_Choice]) -> list[str]:
    lines = [f"- {pid}: " + " vs ".join(c.dep.describe() for c in choices)]
    for c in choices:
        who = ", ".join(dict.fromkeys(c.wanted_by))
        lines.append(f"    {c.dep.channel}@{c.dep.epoch if not c.dep.path else 'path'} "
                     f"wanted by {who}")
    return lines


def _find_cycle(root: str, edges: dict[str, tuple[str, ...]]) -> list[str] | None:
    """The first cycle reachable from ``root`` (iterative DFS, deterministic order)."""
    WHITE, GREY, BLACK = 0, 1, 2
    color: dict[str, int] = {}
    stack: list[tuple[str, int]] = [(root, 0)]
    path: list[str] = []
    while stack:
        node, i = stack.pop()
        if i == 0:
            color[node] = GREY
            path.append(node)
        nexts = edges.get(node, ())
        if i < len(nexts):
            stack.append((node, i + 1))
            nxt = nexts[i]
            c = color.get(nxt, WHITE)
            if c == GREY:
                return [*path[path.index(nxt):], nxt]
            if c == WHITE:
                stack.append((nxt, 0))
        else:
            color[node] = BLACK
            path.pop()
    return None


def _near_package(registry: Any, package_id: str) -> str | None:
    """A published package id within two typos of ``package_id`` (``pkg://cheng/fss`` -> ``fs``)."""
    publishes = getattr(registry, "publishes", None)
    if publishes is None:  # a stand-in registry with only head(): no names to compare
        return None
    from cheng_build.core.suggest import closest

    names = sorted({e.package_id for e in publishes() if e.package_id})
    return closest(package_id, names)


def _effective_request(req: Dependency, req_base: Path, over: Dependency | None, base: Path
                       ) -> tuple[str, str | None, str | None, Path | None, tuple[str, str]]:
    """A request after the top-level ``[overrides]``: its channel, tag, path, the path resolved,
    and the key that tells two requests for the same snapshot apart."""
    channel, path, path_base = req.channel, req.path, req_base
    tag = req.tag
    if over is not None:
        channel = over.channel or channel
        path, path_base = (over.path, base) if over.path else (None, base)
        tag = None if over.channel or over.path else tag
    local = (path_base / path).resolve() if path is not None else None
    key = (("path", os.path.relpath(local, base)) if local is not None
           else ("tag", tag) if tag is not None else ("channel", channel))
    return channel, tag, path, local, key


def _path_manifest(pid: str, path: str | None, local: Path) -> Manifest:
    """The manifest of a path dependency, which must name ``pid``."""
    try:
        sub = load_manifest(local)
    except ManifestError as exc:
        raise ManifestError(f"path dependency {pid} ({path}): {exc.why}") from None
    if sub.package_id != pid:
        raise ManifestError(f"path dependency {path} holds {sub.package_id}, not {pid}")
    return sub


def _registry_dep(registry: Any, pid: str, channel: str, tag: str | None,
                  by: str) -> tuple[LockedDep, Any]:
    """The locked dependency the registry picks for ``pid`` (and its entry)."""
    picked = pick(registry, pid, channel, tag, by)
    if picked is None:
        near = _near_package(registry, pid)
        raise NotFoundError("snapshot not found",
                            why=f"no {channel} release of {pid} in the registry "
                                f"(wanted by {by})",
                            how=(f"did you mean {near}? fix the package_id in the manifest"
                                 if near else
                                 "publish it on that channel, pick another channel, or "
                                 "add an [overrides] entry in the top-level manifest"))
    entry = picked.entry
    fmt = entry.format or "tar"
    # A source ("no-copy") snapshot is fetched from the peers that serve it: keep their
    # addresses (a v2 field, so such a lock is written as lock_version = 2).
    addrs = getattr(entry, "data", {}).get("source_addrs") if fmt == "source" else None
    # The snapshot's own publish channel: a promoted or tagged snapshot keeps the channel
    # and epoch its signature covers; ``extra`` records how it was reached.
    dep = LockedDep(pid, entry.channel or channel, entry.epoch, entry.cid, fmt,
                    entry.author_id, entry.pub_key, entry.signature,
                    getattr(entry, "ast_simhash64", None),
                    getattr(entry, "originality_score", None),
                    source_addrs=tuple(a for a in addrs or () if isinstance(a, str) and a),
                    extra=picked.extra)
    return dep, entry


def _snapshot_deps(reader: ManifestReader | None, pid: str, entry: Any) -> tuple[Dependency, ...]:
    """The dependencies a published snapshot's own manifest declares (none without a reader)."""
    if reader is None:
        return ()
    try:
        got = reader(pid, entry.cid, entry.format or "tar")
    except NotFoundError as exc:
        raise NotFoundError(
            "snapshot not found",
            why=f"{pid} {entry.channel}@{entry.epoch} {entry.cid} is not in the local "
                f"store ({exc.what}); its manifest is needed to follow its dependencies",
            how="fetch it first (cheng-pkg fetch / cheng-pkg checkout), or pass "
                "--pkg-cache:<dir> where it is") from None
    if got is None:
        return ()
    raw, name = got
    try:
        sub = manifest_from_bytes(raw, name)
    except ManifestError as exc:
        raise ManifestError(f"{pid} {entry.cid}: {exc.why}") from None
    if sub.package_id != pid:
        raise ManifestError(f"snapshot {entry.cid} of {pid} holds the manifest "
                            f"of {sub.package_id}")
    bad = [d.package_id for d in sub.dependencies if d.path]
    if bad:
        raise PolicyError("dev-only dependency in a published snapshot",
                          why=f"{pid} {entry.cid} depends on {', '.join(bad)} "
                              "through a local path")
    return tuple(sub.dependencies)


def _check_graph(root: str, edges: dict[str, tuple[str, ...]], order: list[str],
                 choices: dict[str, list[_Choice]]) -> None:
    """Refuse a dependency cycle and any package with more than one snapshot in the graph."""
    cycle = _find_cycle(root, edges)
    if cycle is not None:
        raise DependencyCycleError(cycle)
    clashes = [pid for pid in order if len(choices[pid]) > 1]
    if clashes:
        details: list[str] = []
        for pid in clashes:
            details += _conflict_lines(pid, choices[pid])
        first = choices[clashes[0]][0].dep
        raise SingleVersionConflictError(
            details,
            why="the single-version rule allows one snapshot of each package in the graph",
            how=f'pick one in the top-level manifest, e.g. [overrides] "{clashes[0]}" = '
                f'"{first.channel}"')


def resolve_manifest(
    manifest: Manifest,
    registry: Any,
    store: Any = None,
    *,
    read_manifest: ManifestReader | None = None,
    created_ts: str | None = None,
    level: str = "L1",
    allow_quarantined: bool = False,
    confirm: Any = None,
    warnings: list[str] | None = None,
) -> Lock:
    """Resolve ``manifest`` against ``registry`` to a lock of its full dependency graph.

    Args:
        manifest: the top-level manifest (its ``[overrides]`` apply to the whole graph).
        registry: a :class:`~cheng_build.trust.registry_log.RegistryLog` (anything with its
            ``head(package_id, channel)``).
        store: the blockstore holding the snapshots, to read each dependency's own manifest.
        read_manifest: how to read a snapshot's manifest; default reads it from ``store``.
            With neither, dependencies' manifests cannot be read and only the manifest's own
            dependencies are locked (callers that want the closure always pass a store).
        created_ts: the lock's timestamp; default ``SOURCE_DATE_EPOCH`` or now.
        level, allow_quarantined, confirm: the quarantine policy
            (:func:`cheng_build.pkg.governance.check_quarantine`); ``warnings`` collects what it
            let through.

    Raises:
        NotFoundError: ``snapshot not found`` — a channel has no release, or a snapshot is
            not in the store.
        SingleVersionConflictError: two snapshots of one package (every clash listed).
        DependencyCycleError: ``dependency cycle: a -> b -> a``.
        ManifestError: a dependency's own manifest is invalid, or names another package.
        PolicyError: a published snapshot declares a dev-only path dependency.
    """
    reader = read_manifest
    if reader is None and store is not None:
        reader = store_manifest_reader(store)
    root = manifest.package_id
    base = manifest.base_dir
    overrides = manifest.overrides

    choices: dict[str, list[_Choice]] = {}
    keys: dict[str, dict[tuple[str, str], _Choice]] = {}
    order: list[str] = []
    edges: dict[str, tuple[str, ...]] = {root: tuple(d.package_id for d in manifest.dependencies)}
    queue: deque[tuple[Dependency, str, Path]] = deque(
        (d, root, base) for d in manifest.dependencies)

    while queue:
        req, by, req_base = queue.popleft()
        pid = req.package_id
        channel, tag, path, local, key = _effective_request(req, req_base, overrides.get(pid), base)
        alts = choices.get(pid)
        if alts is None:
            alts = choices[pid] = []
            order.append(pid)
        seen = keys.setdefault(pid, {})
        found = seen.get(key)
        if found is not None:  # same request already resolved: just note who asked
            found.wanted_by.append(by)
            continue
        if local is not None:
            sub = _path_manifest(pid, path, local)
            dep = LockedDep(pid, channel, path=key[1], dev_only=True)
            sub_deps = sub.dependencies
            sub_base = sub.base_dir
        else:
            dep, entry = _registry_dep(registry, pid, channel, tag, by)
            # The same snapshot reached through another channel is not a clash.
            same = next((c for c in alts if c.dep.cid == dep.cid and c.dep.path is None), None)
            if same is not None:
                same.wanted_by.append(by)
                seen[key] = same
                continue
            sub_deps = _snapshot_deps(reader, pid, entry)
            sub_base = base
        choice = _Choice(dep, [by], tuple(d.package_id for d in sub_deps))
        alts.append(choice)
        seen[key] = choice
        if len(alts) == 1:
            edges[pid] = choice.deps
        else:
            edges[pid] = tuple(dict.fromkeys(edges.get(pid, ()) + choice.deps))
        for d in sub_deps:
            queue.append((d, pid, sub_base))

    _check_graph(root, edges, order, choices)
    deps = tuple(choices[pid][0].dep for pid in order)
    let_through = check_quarantine([(d.package_id, d.cid) for d in deps], registry, level,
                                   allow=allow_quarantined, confirm=confirm)
    if warnings is not None:
        warnings.extend(let_through)
    return Lock(root, created_ts or now_ts(), deps)


__all__ = ["ManifestReader", "resolve_manifest", "store_manifest_reader"]
