"""Fetch every snapshot a lock pins: path override, local cache, p2p peers, then HTTP.

``fetch_lock`` is what ``chengc`` and ``cheng-pkg fetch`` call. For each locked dependency, in
order (seed A1.3): a dev-only ``path`` override, ``<cache>/packages/<cid>/`` if present, the
blocks already in ``<cache>/blocks/`` plus whatever is missing from p2p peers (bitswap), then from
HTTP trustless gateways where the security level allows (seed A1.18: L0 yes, L1 only when
``http_fallback`` is set, L2 never unless allow-listed and enabled). Every block is verified
against its CID before it is stored; a snapshot is materialised only when all its blocks are in
the store, so ``packages/<cid>/`` never holds a partial package and an interrupted fetch resumes
from the blocks it already stored.

Peers and gateways pass the allow/deny lists first (seed A1.17): a denied address is never
dialled; at L2 only allow-listed ones are. An entry matches an address equal to it, or the
address with its ``/p2p/<id>`` part, or a bare ``/p2p/<id>`` naming the same peer.

libp2p is imported only when a block is actually missing and a p2p source is in play.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cheng_build.core.errors import InputError, NotFoundError, TransportError
from cheng_build.pkg.fetch import local
from cheng_build.pkg.fetch.policy import FetchMode, FetchPolicy, SourcePlan, dep_mode, plan_sources

if TYPE_CHECKING:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.exporter import ExportLimits
    from cheng_build.pkg.lock import Lock, LockedDep
    from cheng_build.trust.config import Config


class Source(enum.Enum):
    """Where a package came from."""

    PATH = "path"
    CACHE = "cache"
    P2P = "p2p"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of ``fetch_lock``.

    Attributes:
        roots: package_id -> its root folder.
        pkg_roots: the ``PKG_ROOTS`` value (roots joined with ``,`` in lock order).
        sources: package_id -> where it came from.
        dropped: (peer or gateway, why) for each source refused on the way.
        blocks_fetched / bytes_fetched: what crossed the network.
        orphans_removed: (files, bytes) of temp files an interrupted fetch had left, removed.
    """

    roots: dict[str, Path]
    pkg_roots: str
    sources: dict[str, Source]
    dropped: tuple[tuple[str, str], ...] = ()
    blocks_fetched: int = 0
    bytes_fetched: int = 0
    orphans_removed: tuple[int, int] = (0, 0)


@dataclass
class Progress:
    """Callbacks a caller may pass to watch a fetch (the CLI draws a bar with them)."""

    start: Callable[[str, str], None] = lambda package_id, source: None
    advance: Callable[[int], None] = lambda nbytes: None
    finish: Callable[[], None] = lambda: None
    total: Callable[[int], None] = lambda nbytes: None  # a root announced its DAG's size


def _open_store(cache_root: Path) -> Blockstore:
    from cheng_build.cas.blockstore import Blockstore

    cache_root.mkdir(parents=True, exist_ok=True)
    return Blockstore(cache_root)


def _complete(store: Blockstore, root: bytes) -> bool:
    from cheng_build.pkg.fetch.blocks import walk

    try:
        for _ in walk(store, root):
            pass
    except NotFoundError:
        return False
    return True


def _audit(policy: FetchPolicy, ok: bool, **fields: Any) -> None:
    """At L2, one line per fetch in the audit log (seed A1.18); no-op at L0/L1."""
    if policy.config is None:
        return
    from cheng_build.trust.audit import record

    record(policy.config, "fetch", ok=ok, **fields)


def _clean_orphans(cache_root: Path) -> tuple[int, int]:
    """Temp files a killed fetch left (blocks and half checkouts): removed now, not an hour
    later by gc, when no other writer is running (see ``Blockstore.clean_orphans``)."""
    from cheng_build.cas.materialize import clean_orphaned_checkouts

    if not cache_root.is_dir():
        return 0, 0
    f1, b1 = _open_store(cache_root).clean_orphans()
    f2, b2 = clean_orphaned_checkouts(cache_root)
    return f1 + f2, b1 + b2


def fetch_lock(
    lock: Lock | Sequence[LockedDep],
    *,
    cache_root: Path,
    config: Config | None = None,
    peers: Sequence[str] | None = None,
    mode: FetchMode | str | None = None,
    lock_dir: Path | None = None,
    progress: Progress | None = None,
    limits: ExportLimits | None = None,
) -> FetchResult:
    """Make every snapshot ``lock`` pins available under ``cache_root`` and say where.

    Args:
        lock: a ``Lock`` or just its dependencies (``LockedDep`` with ``package_id``,
            ``cid`` and optionally ``path`` and ``source_addrs``).
        cache_root: the package cache (``--pkg-cache`` / ``PKG_CACHE``).
        config: a ``trust.config.Config`` (level, allow, deny, peers, http_fallback, mode);
            ``None`` means the L1 defaults.
        peers: peer multiaddrs (``.../p2p/<id>``) and gateways (``http://host:port`` or
            ``/ip4/<ip>/tcp/<port>/http``) to use; ``None`` means ``config.peers``.
        mode: local | p2p | http | auto; ``None`` means ``config.mode`` (default auto).
        lock_dir: folder relative ``path`` overrides are resolved against.
        progress: callbacks for a progress display.
        limits: caps on what each checkout may write (an ``ExportLimits``; default the
            snapshot limits, 4 GiB and 500,000 entries).

    Raises:
        PolicyError: a path override at L2.
        InputError: a path override names a missing folder.
        NotFoundError: a snapshot is in no allowed source (the message names it and what was tried).
        DigestMismatchError: a gateway served a bad block (peers serving bad blocks are dropped
            and the block taken from another peer instead).
        TransportError: no source could be reached.
    """
    policy = FetchPolicy.of(config)
    try:
        result = _fetch_lock(lock, cache_root=cache_root, policy=policy, peers=peers,
                             mode=FetchMode.parse(mode) if mode is not None else policy.mode,
                             lock_dir=lock_dir, progress=progress or Progress(), limits=limits)
    except Exception as exc:
        _audit(policy, False, error=getattr(exc, "what", str(exc)), cache=str(cache_root))
        raise
    for pid, root in result.roots.items():
        _audit(policy, True, package_id=pid, source=result.sources[pid].value, root=str(root),
               dropped=[f"{a}: {w}" for a, w in result.dropped])
    return result


@dataclass
class _Network:
    """One run over the network: the snapshots still missing from the store, where each came
    from, and what the sources said on the way (the steps below fill it in order)."""

    store: Blockstore
    want: dict[str, bytes]  # package_id -> root CID (binary)
    missing: list[LockedDep]
    got: dict[str, Source]
    mode: FetchMode
    policy: FetchPolicy
    progress: Progress
    plan: SourcePlan = field(default_factory=SourcePlan)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    blocks: int = 0
    nbytes: int = 0

    def p2p_ok(self, d: LockedDep) -> bool:
        return dep_mode(self.mode, d) in (FetchMode.P2P, FetchMode.AUTO)

    def http_ok(self, d: LockedDep) -> bool:
        m = dep_mode(self.mode, d)
        return m is FetchMode.HTTP or (m is FetchMode.AUTO and self.policy.http_fallback)


def _fetch_lock(lock: Lock | Sequence[LockedDep], *, cache_root: Path, policy: FetchPolicy,
                peers: Sequence[str] | None,
                mode: FetchMode, lock_dir: Path | None, progress: Progress,
                limits: ExportLimits | None) -> FetchResult:
    cleaned = _clean_orphans(cache_root)
    deps = list(lock) if isinstance(lock, Sequence) else list(lock.dependencies)
    roots: dict[str, Path] = {}
    sources: dict[str, Source] = {}
    pending = _take_local(deps, cache_root, lock_dir, policy.level, roots, sources)
    net: _Network | None = None
    if pending:
        net = _start_network(pending, cache_root, mode, policy, progress)
        _plan_sources(net, peers)
        _fetch_over_p2p(net)
        _fetch_over_http(net)
        if net.missing:
            raise _not_fetched(net)
        _materialize(net, pending, cache_root, roots, sources, limits)
    return FetchResult(
        roots={d.package_id: roots[d.package_id] for d in deps},
        pkg_roots=",".join(str(roots[d.package_id]) for d in deps),
        sources={d.package_id: sources[d.package_id] for d in deps},
        dropped=tuple(net.dropped) if net is not None else (),
        blocks_fetched=net.blocks if net is not None else 0,
        bytes_fetched=net.nbytes if net is not None else 0,
        orphans_removed=cleaned,
    )


def _take_local(deps: list[LockedDep], cache_root: Path, lock_dir: Path | None, level: str,
                roots: dict[str, Path], sources: dict[str, Source]) -> list[LockedDep]:
    """Step 1: path overrides and complete cached snapshots; returns the dependencies left."""
    pending: list[LockedDep] = []
    for dep in deps:
        override = local.path_override(dep, lock_dir, level)
        if override is not None:
            roots[dep.package_id] = override
            sources[dep.package_id] = Source.PATH
            continue
        hit = local.cached_package(cache_root, str(dep.cid))
        if hit is not None:
            roots[dep.package_id] = hit
            sources[dep.package_id] = Source.CACHE
            continue
        pending.append(dep)
    return pending


def _start_network(pending: list[LockedDep], cache_root: Path, mode: FetchMode,
                   policy: FetchPolicy, progress: Progress) -> _Network:
    """Step 2: which pending snapshots the block store lacks; refuse when mode is local."""
    from cheng_build.cas.cid import parse_cid

    store = _open_store(cache_root)
    want: dict[str, bytes] = {}
    for dep in pending:
        if not dep.cid:
            raise InputError(f"{dep.package_id}: the lock pins no CID and no path",
                             how="re-run 'cheng-pkg resolve' to rewrite the lock")
        want[dep.package_id] = bytes(parse_cid(str(dep.cid)))
    missing = [d for d in pending if not _complete(store, want[d.package_id])]
    got = {d.package_id: Source.CACHE for d in pending if d not in missing}
    local_only = [d for d in missing if dep_mode(mode, d) is FetchMode.LOCAL]
    if local_only:
        d = local_only[0]
        raise NotFoundError(
            f"{d.package_id}: snapshot {d.cid} is not in the cache {cache_root}",
            why="mode is local: no peer or gateway is contacted",
            how="fetch with --mode:auto or --mode:p2p and --peers, or PKG_PEERS")
    return _Network(store=store, want=want, missing=missing, got=got, mode=mode, policy=policy,
                    progress=progress)


def _plan_sources(net: _Network, peers: Sequence[str] | None) -> None:
    """Step 3: the peers and gateways to try (given, configured, then the lock's own), filtered
    by the allow/deny lists and the level."""
    candidates = list(peers if peers is not None else net.policy.peers)
    for dep in net.missing:
        candidates.extend(dep.source_addrs or ())
    net.plan = plan_sources(candidates, net.policy, FetchMode.P2P)
    net.plan.gateways = plan_sources(candidates, net.policy, FetchMode.HTTP).gateways
    net.dropped.extend(net.plan.refused)


def _fetch_over_p2p(net: _Network) -> None:
    """Step 4: every missing snapshot p2p may serve, from all usable peers in one session."""
    over_p2p = [d for d in net.missing if net.p2p_ok(d)]
    if not (over_p2p and net.plan.peers):
        return
    from cheng_build.pkg.fetch.p2p.run import fetch_p2p

    net.progress.start(", ".join(d.package_id for d in over_p2p), "p2p")
    try:
        stats = fetch_p2p(net.store, [net.want[d.package_id] for d in over_p2p], net.plan.peers,
                          on_block=net.progress.advance, on_total=net.progress.total)
        net.blocks += stats.blocks_fetched
        net.nbytes += stats.bytes_fetched
        net.dropped.extend(stats.dropped)
    except (NotFoundError, TransportError) as exc:
        net.errors.append(f"p2p: {exc.what}" + (f"\n{exc.why}" if exc.why else ""))
    finally:
        net.progress.finish()
    done = [d for d in over_p2p if _complete(net.store, net.want[d.package_id])]
    for d in done:
        net.got[d.package_id] = Source.P2P
    net.missing = [d for d in net.missing if d not in done]


def _fetch_over_http(net: _Network) -> None:
    """Step 5: what is still missing and may come over HTTP, gateway by gateway."""
    over_http = [d for d in net.missing if net.http_ok(d)]
    if not (over_http and net.plan.gateways):
        return
    from cheng_build.pkg.fetch.http import fetch_dag

    for dep in over_http:
        for gw in net.plan.gateways:
            net.progress.start(dep.package_id, "http")
            try:
                hs = fetch_dag(net.store, net.want[dep.package_id], gw,
                               on_block=net.progress.advance)
                net.blocks += hs.blocks_fetched
                net.nbytes += hs.bytes_fetched
            except (NotFoundError, TransportError) as exc:
                net.errors.append(f"http: {exc.what}")
                continue
            finally:
                net.progress.finish()
            if _complete(net.store, net.want[dep.package_id]):
                net.got[dep.package_id] = Source.HTTP
                net.missing.remove(dep)
                break


def _not_fetched(net: _Network) -> NotFoundError:
    """The error when snapshots remain: the first one, and every reason a source gave."""
    missing = net.missing
    first = dep_mode(net.mode, missing[0])
    tried = []
    if first is not FetchMode.HTTP and not net.plan.peers:
        tried.append("no usable p2p peer (give --peers or PKG_PEERS)")
    if first is FetchMode.P2P:
        tried.append("mode p2p: HTTP not used")
    elif not net.http_ok(missing[0]):
        tried.append("HTTP fallback not allowed at this level/mode")
    elif not net.plan.gateways:
        tried.append("no HTTP gateway given")
    return NotFoundError(
        f"{missing[0].package_id}: snapshot {missing[0].cid} could not be fetched"
        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
        why="\n".join(net.errors + tried + [f"{a}: {w}" for a, w in net.dropped]) or None,
        how="check the peers are running and hold the snapshot; run with --debug")


def _materialize(net: _Network, pending: list[LockedDep], cache_root: Path,
                 roots: dict[str, Path], sources: dict[str, Source],
                 limits: ExportLimits | None) -> None:
    """Step 6: every fetched snapshot laid out under ``packages/<cid>/`` (complete or absent)."""
    from cheng_build.cas.cid import parse_cid
    from cheng_build.cas.materialize import materialize

    for dep in pending:
        if limits is None:
            roots[dep.package_id] = materialize(net.store, parse_cid(str(dep.cid)), cache_root)
        else:
            roots[dep.package_id] = materialize(net.store, parse_cid(str(dep.cid)), cache_root,
                                                limits=limits)
        sources[dep.package_id] = net.got[dep.package_id]


__all__ = ["FetchResult", "Progress", "Source", "fetch_lock"]
