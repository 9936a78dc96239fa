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
from typing import Any

from cheng_build.core.errors import InputError, NotFoundError, TransportError, UsageError
from cheng_build.pkg.fetch import local


class FetchMode(enum.Enum):
    """Which sources may be used (``--mode:`` / ``PKG_MODE``)."""

    LOCAL = "local"
    P2P = "p2p"
    HTTP = "http"
    AUTO = "auto"

    @classmethod
    def parse(cls, value: object) -> FetchMode:
        if isinstance(value, FetchMode):
            return value
        text = getattr(value, "value", value)
        try:
            return cls(str(text).lower())
        except ValueError:
            raise UsageError(f"unknown mode '{text}'", how="use local, p2p, http or auto") from None


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


def _level(config: Any) -> str:
    lvl = getattr(config, "level", None)
    return str(getattr(lvl, "value", lvl or "L1")).upper()


def _listed(addr: str, entries: Sequence[str]) -> bool:
    bare = addr.split("/p2p/")[0] if "/p2p/" in addr else addr
    pid = addr.rsplit("/p2p/", 1)[1] if "/p2p/" in addr else None
    for e in entries:
        e = e.rstrip("/")
        if e in (addr, bare) or (pid is not None and e == f"/p2p/{pid}"):
            return True
    return False


def peer_allowed(addr: str, config: Any) -> bool:
    """Whether ``addr`` may be contacted: never when denied; at L2 (or with an allow-list) only
    when allow-listed."""
    allow = tuple(getattr(config, "allow", ()) or ())
    deny = tuple(getattr(config, "deny", ()) or ())
    if _listed(addr, deny):
        return False
    if allow or _level(config) == "L2":
        return _listed(addr, allow)
    return True


@dataclass
class _Plan:
    """Sources for this run, already filtered by policy."""

    peers: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def _plan(candidates: Sequence[str], config: Any, mode: FetchMode) -> _Plan:
    from cheng_build.pkg.fetch.http import is_gateway

    plan = _Plan()
    http_ok = mode is FetchMode.HTTP or (mode is FetchMode.AUTO
                                          and bool(getattr(config, "http_fallback", False)))
    seen: set[str] = set()
    for addr in candidates:
        addr = addr.strip()
        if not addr or addr in seen:
            continue
        seen.add(addr)
        if not peer_allowed(addr, config):
            plan.refused.append((addr, "not allowed by the allow/deny lists or level "
                                       f"{_level(config)}; not contacted"))
            continue
        if is_gateway(addr):
            if http_ok:
                plan.gateways.append(addr)
        elif mode in (FetchMode.P2P, FetchMode.AUTO):
            plan.peers.append(addr)
    return plan


def dep_mode(mode: FetchMode, dep: Any) -> FetchMode:
    """A dependency's sources: the run's mode, unless that is ``auto`` and the lock (v2) gives
    the dependency a ``source_mode`` of its own (a mode set on the CLI/env/config wins)."""
    own = getattr(dep, "source_mode", None)
    if own is None or mode is not FetchMode.AUTO:
        return mode
    return FetchMode.parse(own)


def _open_store(cache_root: Path) -> Any:
    from cheng_build.cas.blockstore import Blockstore

    cache_root.mkdir(parents=True, exist_ok=True)
    return Blockstore(cache_root)


def _complete(store: Any, root: bytes) -> bool:
    from cheng_build.pkg.fetch.blocks import walk

    try:
        for _ in walk(store, root):
            pass
    except NotFoundError:
        return False
    return True


def _audit(config: Any, ok: bool, **fields: Any) -> None:
    """At L2, one line per fetch in the audit log (seed A1.18); no-op at L0/L1."""
    if config is None or not hasattr(config, "audit_log"):
        return
    from cheng_build.trust.audit import record

    record(config, "fetch", ok=ok, **fields)


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
    lock: Any,
    *,
    cache_root: Path,
    config: Any = None,
    peers: Sequence[str] | None = None,
    mode: FetchMode | str | None = None,
    lock_dir: Path | None = None,
    progress: Progress | None = None,
    limits: Any = None,
) -> FetchResult:
    """Make every snapshot ``lock`` pins available under ``cache_root`` and say where.

    Args:
        lock: a ``Lock`` (``.dependencies``: ``LockedDep`` with ``package_id``, ``cid`` and
            optionally ``path`` and ``source_addrs``).
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
    try:
        result = _fetch_lock(lock, cache_root=cache_root, config=config, peers=peers, mode=mode,
                             lock_dir=lock_dir, progress=progress, limits=limits)
    except Exception as exc:
        _audit(config, False, error=getattr(exc, "what", str(exc)), cache=str(cache_root))
        raise
    for pid, root in result.roots.items():
        _audit(config, True, package_id=pid, source=result.sources[pid].value, root=str(root),
               dropped=[f"{a}: {w}" for a, w in result.dropped])
    return result


def _fetch_lock(lock: Any, *, cache_root: Path, config: Any, peers: Sequence[str] | None,
                mode: FetchMode | str | None, lock_dir: Path | None,
                progress: Progress | None, limits: Any = None) -> FetchResult:
    from cheng_build.cas.cid import parse_cid

    mode = FetchMode.parse(mode if mode is not None else getattr(config, "mode", None) or "auto")
    level = _level(config)
    cleaned = _clean_orphans(cache_root)
    progress = progress or Progress()
    deps = list(getattr(lock, "dependencies", lock))
    roots: dict[str, Path] = {}
    sources: dict[str, Source] = {}
    dropped: list[tuple[str, str]] = []
    blocks = nbytes = 0

    pending: list[Any] = []
    for dep in deps:
        override = local.path_override(dep, lock_dir, level)
        if override is not None:
            roots[dep.package_id] = override
            sources[dep.package_id] = Source.PATH
            continue
        cid_text = str(dep.cid)
        hit = local.cached_package(cache_root, cid_text)
        if hit is not None:
            roots[dep.package_id] = hit
            sources[dep.package_id] = Source.CACHE
            continue
        pending.append(dep)

    if pending:
        from cheng_build.cas.materialize import materialize

        store = _open_store(cache_root)
        want: dict[str, bytes] = {}
        for dep in pending:
            if not dep.cid:
                raise InputError(f"{dep.package_id}: the lock pins no CID and no path",
                                 how="re-run 'cheng-pkg resolve' to rewrite the lock")
            want[dep.package_id] = bytes(parse_cid(str(dep.cid)))
        missing = [d for d in pending if not _complete(store, want[d.package_id])]
        got: dict[str, Source] = {d.package_id: Source.CACHE for d in pending if d not in missing}

        local_only = [d for d in missing if dep_mode(mode, d) is FetchMode.LOCAL]
        if local_only:
            d = local_only[0]
            raise NotFoundError(
                f"{d.package_id}: snapshot {d.cid} is not in the cache {cache_root}",
                why="mode is local: no peer or gateway is contacted",
                how="fetch with --mode:auto or --mode:p2p and --peers, or PKG_PEERS")

        candidates = list(peers if peers is not None else getattr(config, "peers", ()) or ())
        for dep in missing:
            candidates.extend(getattr(dep, "source_addrs", ()) or ())
        plan = _plan(candidates, config, FetchMode.P2P)
        plan.gateways = _plan(candidates, config, FetchMode.HTTP).gateways
        dropped.extend(plan.refused)
        errors: list[str] = []
        fallback = bool(getattr(config, "http_fallback", False))

        def p2p_ok(d: Any) -> bool:
            return dep_mode(mode, d) in (FetchMode.P2P, FetchMode.AUTO)

        def http_ok(d: Any) -> bool:
            m = dep_mode(mode, d)
            return m is FetchMode.HTTP or (m is FetchMode.AUTO and fallback)

        over_p2p = [d for d in missing if p2p_ok(d)]
        if over_p2p and plan.peers:
            from cheng_build.pkg.fetch.p2p.run import fetch_p2p

            progress.start(", ".join(d.package_id for d in over_p2p), "p2p")
            try:
                stats = fetch_p2p(store, [want[d.package_id] for d in over_p2p], plan.peers,
                                  on_block=progress.advance, on_total=progress.total)
                blocks += stats.blocks_fetched
                nbytes += stats.bytes_fetched
                dropped.extend(stats.dropped)
            except (NotFoundError, TransportError) as exc:
                errors.append(f"p2p: {exc.what}" + (f"\n{exc.why}" if exc.why else ""))
            finally:
                progress.finish()
            done = [d for d in over_p2p if _complete(store, want[d.package_id])]
            for d in done:
                got[d.package_id] = Source.P2P
            missing = [d for d in missing if d not in done]

        over_http = [d for d in missing if http_ok(d)]
        if over_http and plan.gateways:
            from cheng_build.pkg.fetch.http import fetch_dag

            for dep in over_http:
                for gw in plan.gateways:
                    progress.start(dep.package_id, "http")
                    try:
                        hs = fetch_dag(store, want[dep.package_id], gw, on_block=progress.advance)
                        blocks += hs.blocks_fetched
                        nbytes += hs.bytes_fetched
                    except (NotFoundError, TransportError) as exc:
                        errors.append(f"http: {exc.what}")
                        continue
                    finally:
                        progress.finish()
                    if _complete(store, want[dep.package_id]):
                        got[dep.package_id] = Source.HTTP
                        missing.remove(dep)
                        break

        if missing:
            first = dep_mode(mode, missing[0])
            tried = []
            if first is not FetchMode.HTTP and not plan.peers:
                tried.append("no usable p2p peer (give --peers or PKG_PEERS)")
            if first is FetchMode.P2P:
                tried.append("mode p2p: HTTP not used")
            elif not http_ok(missing[0]):
                tried.append("HTTP fallback not allowed at this level/mode")
            elif not plan.gateways:
                tried.append("no HTTP gateway given")
            raise NotFoundError(
                f"{missing[0].package_id}: snapshot {missing[0].cid} could not be fetched"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                why="\n".join(errors + tried + [f"{a}: {w}" for a, w in dropped]) or None,
                how="check the peers are running and hold the snapshot; run with --debug")

        for dep in pending:
            if limits is None:
                roots[dep.package_id] = materialize(store, parse_cid(str(dep.cid)), cache_root)
            else:
                roots[dep.package_id] = materialize(store, parse_cid(str(dep.cid)), cache_root,
                                                    limits=limits)
            sources[dep.package_id] = got[dep.package_id]

    ordered = [roots[d.package_id] for d in deps]
    return FetchResult(
        roots={d.package_id: roots[d.package_id] for d in deps},
        pkg_roots=",".join(str(p) for p in ordered),
        sources={d.package_id: sources[d.package_id] for d in deps},
        dropped=tuple(dropped),
        blocks_fetched=blocks,
        bytes_fetched=nbytes,
        orphans_removed=cleaned,
    )


__all__ = ["FetchMode", "FetchResult", "Progress", "Source", "dep_mode", "fetch_lock", "peer_allowed"]

