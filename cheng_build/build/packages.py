"""The package flow of ``chengc --manifest/--lock/--package``: resolve -> verify -> fetch.

Each step that fails stops the build with its own line: ``chengc: resolve: snapshot not found``,
``chengc: verify: signature failed``, ``chengc: fetch: ...`` (the error keeps its type and exit
code; only its first line gains the step's name, as the seed's A1.11 names them).

A build runs this on every invocation, so the steps remember what they proved:

* resolve runs when there is a manifest and the lock is missing, the manifest changed since
  chengc last resolved it, or the lock no longer satisfies the manifest; otherwise the lock pins
  the build (as a lock should: a new release in the registry changes nothing until you resolve
  again, and a committed lock in a fresh clone is used as it is);
* verify runs unless this exact lock was verified against this exact registry at this level
  before and that verify still holds (``--verify`` forces it); the registry itself is verified
  (:func:`cheng_build.trust.trusted.load_trusted_registry`) before resolve or verify use it;
* fetch is skipped when every locked snapshot is already complete in ``<cache>/packages/<cid>/``.

Stamps, under ``<cache>/chengc/`` (JSON, atomic)::

    resolved/<sha256(lock path)>.json   {"manifest_sha256": ..., "lock_sha256": ...}
    verified/<sha256(lock, registry, level)>.json   {"package": {A1.10 fields}, "warnings": [...],
        "trust": {"expires": <newest checkpoint's expiry>, "remembered": [size, root]}}

A verified stamp is reused only while the newest checkpoint has not expired and the checkpoint
this client remembers for the registry is still the one recorded (``_trust_still_holds``).

(Over 400 lines on purpose: chengc's whole package flow, its steps and the stamps that let a no-op
build skip them, reads as one file, and each step's stamp key must match what the no-op fast path
watches.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cheng_build.build.cachefile import write_cache_file
from cheng_build.build.inputs import StatCache
from cheng_build.core.errors import ChengError, UsageError
from cheng_build.core.record import dataclass, field
from cheng_build.core.sha256 import sha256

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any, TypeVar

if TYPE_CHECKING:
    T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PackageContext:
    """What the package flow hands the build: roots, the lock's timestamp, the meta tables."""

    roots: tuple[Path, ...]
    created_ts: str | None
    package_fields: Mapping[str, Any]
    lock_table: Mapping[str, Any]
    dependencies: tuple[Mapping[str, Any], ...]
    warnings: tuple[str, ...] = ()
    steps: tuple[str, ...] = field(default=())  # which steps ran (the others were remembered)
    valid_until: float | None = None  # the verified trust's expiry (the no-op fast path honours it)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Prefix the first line of any user error raised inside with ``<name>: ``."""
    try:
        yield
    except ChengError as exc:
        if not getattr(exc, "step", None):  # the innermost step names it (meta inside verify)
            exc.step = name  # type: ignore[attr-defined]
            exc.what = f"{name}: {exc.what}"
            exc.args = (exc.what,)
        raise
    except ImportError as exc:  # a part of the package flow not installed in this build
        raise ChengError(f"{name}: unavailable ({exc.name})",
                         how="install the complete cheng-build package") from exc


def _stamp_read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


def _stamp_write(path: Path, doc: Mapping[str, Any]) -> None:
    write_cache_file(path, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


def _h(*parts: str) -> str:
    return sha256("\0".join(parts).encode()).hexdigest()


def _display(p: Path, cwd: Path) -> str:
    try:
        return p.relative_to(cwd).as_posix()
    except ValueError:
        return os.fspath(p)


def _lazy(fn: Callable[[], T]) -> Callable[[], T]:
    box: list[T] = []

    def get() -> T:
        if not box:
            box.append(fn())
        return box[0]

    return get


def _gov_flags(opts: Any) -> tuple[str, ...]:
    """The flags that change what verify accepts: part of the remembered-verify key, so a lock
    verified with --allow-unsigned is not taken as verified without it."""
    return tuple(f for f in ("allow_unsigned", "allow_quarantined") if getattr(opts, f, False))


@dataclass(slots=True)
class _Flow:
    """What the steps of :func:`prepare` share: the paths, the lazily loaded trust, the steps run."""

    opts: Any
    cwd: Path
    cache_root: Path
    env: Mapping[str, str]
    stat_cache: StatCache
    fmt: str
    lock_path: Path
    reg_path: Path
    chengc_dir: Path
    config: Callable[[], Any]
    trusted: Callable[[], Any]
    steps: list[str] = field(default_factory=list)

    def registry(self) -> Any:
        return self.trusted().log


def prepare(opts: Any, *, cwd: Path, cache_root: Path, env: Mapping[str, str], stat_cache: StatCache,
            default_name: str) -> PackageContext:
    """Run resolve (if a manifest) -> verify -> fetch for ``opts`` (a ``PackageOptions``).

    Raises:
        ChengError subclasses from each step, their first line prefixed with the step's name;
        UsageError when no lock can be found or made.
    """
    flow = _flow(opts, cwd=cwd, cache_root=cache_root, env=env, stat_cache=stat_cache,
                 default_name=default_name)
    if getattr(opts, "allow_unsigned", False):  # development mode: refused above L0, up front
        from cheng_build.pkg.unsigned import check_flag

        check_flag(True, getattr(flow.config().level, "value", str(flow.config().level)), "chengc")
    with step("sync"):
        sync_until = _sync_step(flow)
    if opts.manifest is not None:
        with step("resolve"):
            _resolve_step(flow)
    with step("verify"):
        vstamp, lock_sha, lock_obj = _verify_step(flow)
    with step("fetch"):
        roots = _fetch_step(flow, vstamp, lock_obj)

    fmt_of = flow.lock_path.suffix.lstrip(".") or flow.fmt
    return PackageContext(
        roots=tuple(roots),
        created_ts=vstamp.get("created_ts"),
        package_fields=vstamp["package"],
        lock_table={"path": _display(flow.lock_path, cwd), "format": fmt_of, "sha256": lock_sha},
        dependencies=tuple(vstamp["dependencies"]),
        warnings=tuple(vstamp.get("warnings", ())),
        steps=tuple(flow.steps),
        valid_until=min((t for t in (_valid_until(vstamp.get("trust")), sync_until) if t is not None),
                        default=None),
    )


def _flow(opts: Any, *, cwd: Path, cache_root: Path, env: Mapping[str, str], stat_cache: StatCache,
          default_name: str) -> _Flow:
    """The paths of the flow and its lazily loaded configuration and trusted registry."""
    from cheng_build.core.paths import registry_path

    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else cwd / p

    fmt = opts.lock_format
    lock_path = absolute(opts.lock) if opts.lock else cache_root / f"{default_name}.lock.{fmt}"
    reg_path = absolute(opts.registry) if opts.registry else absolute(registry_path(None))

    def _load_config() -> Any:
        from cheng_build.trust.config import load_config

        return load_config(env=env)

    config = _lazy(_load_config)

    def load_registry() -> Any:
        # Verified before any line is used (resolve and verify both read it); L0 only warns.
        from cheng_build.trust.trusted import load_trusted_registry

        if not reg_path.is_file():
            raise UsageError("missing --registry", why=f"no registry at {reg_path}",
                             how="pass --registry:<path/registry.jsonl> or set PKG_REGISTRY")
        return load_trusted_registry(reg_path, config())

    return _Flow(opts=opts, cwd=cwd, cache_root=cache_root, env=env, stat_cache=stat_cache, fmt=fmt,
                 lock_path=lock_path, reg_path=reg_path, chengc_dir=cache_root / "chengc",
                 config=config, trusted=_lazy(load_registry))


def _sync_step(flow: _Flow) -> float | None:
    """0. sync the registry from its mirrors first (PKG_REGISTRY_FROM; build/remote.py); returns
    when the remembered sync falls due."""
    from cheng_build.build.remote import sync_due, sync_for_build

    fingerprint = _config_fingerprint(flow.env, flow.cwd, flow.stat_cache)
    if sync_for_build(flow.chengc_dir, flow.reg_path, fingerprint, flow.config):
        flow.steps.append("sync")
    sync_stamp, sync_until = sync_due(flow.chengc_dir, flow.reg_path, fingerprint)
    flow.stat_cache.watch(sync_stamp)
    return sync_until


def _resolve_step(flow: _Flow) -> None:
    """1. resolve the manifest into the lock, unless remembered or a lock that still fits exists."""
    opts, stat_cache, lock_path = flow.opts, flow.stat_cache, flow.lock_path
    manifest_path = opts.manifest if opts.manifest.is_absolute() else flow.cwd / opts.manifest
    if not manifest_path.is_file():
        from cheng_build.core.errors import InputError

        raise InputError(f"manifest not found: {opts.manifest}",
                         how="pass --manifest:<path/cheng-package.toml>")
    _, m_sha = stat_cache.file_digest(manifest_path)
    stamp_path = flow.chengc_dir / "resolved" / f"{_h(os.fspath(lock_path))}.json"
    stat_cache.watch(lock_path, stamp_path)
    stamp = _stamp_read(stamp_path)
    lock_sha = stat_cache.file_digest(lock_path)[1] if lock_path.is_file() else None
    fresh = bool(stamp and lock_sha and stamp.get("manifest_sha256") == m_sha
                 and stamp.get("lock_sha256") == lock_sha)
    if fresh:
        return
    from cheng_build.pkg.manifest import load_manifest

    manifest = load_manifest(manifest_path)
    edited = stamp is not None and stamp.get("manifest_sha256") != m_sha
    keep = False
    if lock_sha is not None and not edited:
        # A lock made elsewhere (a fresh clone, cheng-pkg resolve, git pull) pins
        # the build as long as it still satisfies the manifest.
        from cheng_build.pkg.lock import load_lock
        from cheng_build.pkg.verify import lock_manifest_problems

        keep = not lock_manifest_problems(load_lock(lock_path), manifest)
    if not keep:
        from cheng_build.build.remote import head_cids, resolve_store
        from cheng_build.pkg.lock import dump_lock
        from cheng_build.pkg.resolve import resolve_manifest
        from cheng_build.pkg.unsigned import mark

        lv = getattr(flow.config().level, "value", str(flow.config().level))
        with resolve_store(flow.cache_root, flow.env,
                           hint=lambda: head_cids(manifest, flow.registry())) as store:
            lock = resolve_manifest(manifest, flow.registry(), store, level=lv,
                                    allow_quarantined=bool(getattr(
                                        opts, "allow_quarantined", False)))
        lock, _ = mark(lock, bool(getattr(opts, "allow_unsigned", False)), lv)
        dump_lock(lock, lock_path, flow.fmt)
        flow.steps.append("resolve")
    _stamp_write(stamp_path, {"manifest_sha256": m_sha,
                              "lock_sha256": stat_cache.file_digest(lock_path)[1]})


def _verify_step(flow: _Flow) -> tuple[dict[str, Any], str, Callable[[], Any]]:
    """2. load + verify (remembered per lock bytes, registry bytes, trust configuration); returns
    the verify stamp, the lock's sha256 and the lazily loaded lock."""
    opts, stat_cache, lock_path, reg_path = flow.opts, flow.stat_cache, flow.lock_path, flow.reg_path
    if not lock_path.is_file():
        from cheng_build.core.errors import InputError

        raise InputError(f"lock not found: {_display(lock_path, flow.cwd)}",
                         how="pass --manifest:<file> to resolve one, or --lock:<file>")

    def _load_lock() -> Any:
        from cheng_build.pkg.lock import load_lock

        return load_lock(lock_path)

    lock_obj = _lazy(_load_lock)
    _, lock_sha = stat_cache.file_digest(lock_path)
    reg_sha = stat_cache.file_digest(reg_path)[1] if reg_path.is_file() else "-"
    vkey = _h(lock_sha, reg_sha, _config_fingerprint(flow.env, flow.cwd, stat_cache),
              opts.package or "", opts.channel, *_gov_flags(opts))
    vstamp_path = flow.chengc_dir / "verified" / f"{vkey}.json"
    # What a remembered verify rests on, for the no-op fast path (lock, registry and config
    # files went through the stat cache already).
    stat_cache.watch(lock_path, reg_path, vstamp_path, _memory_file())
    vstamp = None if opts.verify else _stamp_read(vstamp_path)
    if vstamp is None or "dependencies" not in vstamp or not _trust_still_holds(
            vstamp.get("trust"), reg_path):
        from cheng_build.pkg.verify import verify_lock

        lock = lock_obj()
        cfg = flow.config()
        level = getattr(cfg.level, "value", str(cfg.level))
        tr = flow.trusted() if reg_path.is_file() or level != "L0" else None
        reg = tr.log if tr is not None else None
        from cheng_build.pkg.unsigned import extra_kwargs

        warnings = (list(tr.warnings) if tr is not None else []) + verify_lock(
            lock, reg, cfg, **extra_kwargs(opts))
        vstamp = {
            "package": _package_fields(lock, reg, opts.package or lock.package_id, opts.channel),
            "warnings": list(warnings),
            "trust": _trust_stamp(tr),
            "created_ts": lock.created_ts,
            "dependencies": [d.to_dict() for d in lock.dependencies],
            "fetch": [[d.package_id, str(d.cid), bool(getattr(d, "path", None))]
                      for d in lock.dependencies],
        }
        _stamp_write(vstamp_path, vstamp)
        flow.steps.append("verify")
    return vstamp, lock_sha, lock_obj


def _fetch_step(flow: _Flow, vstamp: Mapping[str, Any], lock_obj: Callable[[], Any]) -> list[Path]:
    """3. fetch (skipped when every snapshot is complete in the cache); returns the roots."""
    roots: list[Path] = []
    for _pid, cid, has_path in vstamp["fetch"]:
        p = flow.cache_root / "packages" / cid
        flow.stat_cache.watch(p)
        if has_path or not p.is_dir():
            break  # something to fetch (or a dev path override): ask the fetcher
        roots.append(p)
    else:
        return roots
    from cheng_build.build.remote import consumer_addrs
    from cheng_build.pkg.remote.routing import fetch_lock_routed

    lock = lock_obj()
    res = fetch_lock_routed(lock, cache_root=flow.cache_root, config=flow.config(),
                            lock_dir=flow.lock_path.parent, peers=consumer_addrs(flow.config()))
    flow.steps.append("fetch")
    return [Path(res.roots[d.package_id]) for d in lock.dependencies]


def _memory_file() -> Path:
    from cheng_build.trust.checkpoint import CheckpointMemory

    return CheckpointMemory().file


def _valid_until(stamp: Any) -> float | None:
    expires = stamp.get("expires") if isinstance(stamp, dict) else None
    return float(expires) if isinstance(expires, (int, float)) else None


def _trust_stamp(tr: Any) -> dict[str, Any] | None:
    """What a remembered verify still depends on besides the bytes of lock, registry and config:
    the newest checkpoint's expiry (a frozen log must stop building once it expires) and the
    checkpoint this client remembers (another verify may since have seen a longer log, so this
    one is now a rollback or a fork)."""
    if tr is None:
        return None
    cp, mem = tr.newest_checkpoint, tr.remembered
    return {"expires": cp.expires if cp is not None and tr.level.value != "L0" else None,
            "remembered": [mem.size, mem.root] if mem is not None else None}


def _trust_still_holds(stamp: Any, reg_path: Path) -> bool:
    """False when the remembered verify must run again (see :func:`_trust_stamp`)."""
    if stamp is None:
        return True  # no registry was involved (L0 without one)
    if not isinstance(stamp, dict):
        return False
    import time

    expires = stamp.get("expires")
    if expires is not None and time.time() >= expires:
        return False
    from cheng_build.trust.checkpoint import CheckpointMemory

    try:
        mem = CheckpointMemory().recall(reg_path)
    except Exception:  # a corrupt memory: the full verify reports it properly
        return False
    now = [mem.size, mem.root] if mem is not None else None
    return bool(now == stamp.get("remembered"))


def _config_fingerprint(env: Mapping[str, str], cwd: Path, stat_cache: StatCache) -> str:
    """Everything the trust configuration is computed from: every ``PKG_*`` variable and the
    bytes of every file :func:`cheng_build.trust.config.find_config_file` may read. A superset,
    so any change re-verifies; computed without importing the config machinery (or tomllib)."""
    parts = [f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("PKG_")]
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    cands = [Path(env["PKG_CONFIG"]).expanduser()] if env.get("PKG_CONFIG") else []
    cands += [cwd / "cheng-pkg-config.toml", home / ".cheng" / "cheng-pkg-config.toml"]
    for c in cands:
        stat_cache.watch(c)
        parts.append(f"{c}:{stat_cache.file_digest(c)[1] if c.is_file() else '-'}")
    return _h(*parts)


def _package_fields(lock: Any, registry: Any, package_id: str, channel: str) -> dict[str, Any]:
    """The seed's A1.10 top-level fields: the package's own registry snapshot when published,
    else just its id, channel and the lock's ``created_ts`` (an app is often never published)."""
    if lock.package_id != package_id:
        from cheng_build.core.errors import PolicyError

        with step("meta"):
            raise PolicyError("package mismatch", why=f"the lock is for {lock.package_id}, not {package_id}",
                              how=f"pass the lock of that package, or --package:{lock.package_id}")
    head = registry.head(package_id, channel) if registry is not None else None
    if head is None:
        out: dict[str, Any] = {"package_id": package_id, "channel": channel}
        if lock.created_ts is not None:
            out["created_ts"] = str(lock.created_ts)
        return out
    from cheng_build.pkg.meta import build_meta

    with step("meta"):
        doc = build_meta(lock, registry, package_id, channel).to_dict()
    doc.pop("dependencies", None)
    return doc


__all__ = ["PackageContext", "prepare", "step"]
