"""``cheng-pkg resolve | verify | meta | log | diff | checkout``: manifests, locks, versions.

Output and error lines follow the seed's A1.10-A1.14: ``verify`` prints ``ok``; failures start
``<command>: <what>`` (``resolve: missing --manifest``, ``verify: signature failed``, ...).
Missing flags and unreadable input exit 2, failed checks exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from cheng_build.cli.args import Parser, add_format_flag, add_pkg_cache_flag, pkg_cache_arg
from cheng_build.cli.gov_flags import add_allow_quarantined, add_allow_unsigned, tty_confirm
from cheng_build.cli.input_checks import input_dir, input_file, output_file
from cheng_build.core.errors import ChengError, UsageError

_FORMATS = ("toml", "yaml", "json")
_CACHE_HELP = "package cache: blocks and checked-out snapshots (default: PKG_CACHE, ./chengcache)"


_EXAMPLES: dict[str, str] = {
    "resolve": "cheng-pkg resolve --manifest:cheng-package.toml --out:cheng.lock.toml\n"
               "cheng-pkg resolve --manifest:app/cheng-package.yaml --format:json",
    "verify": "cheng-pkg verify --lock:cheng.lock.toml\n"
              "cheng-pkg verify --lock:cheng.lock.toml --manifest:cheng-package.toml --level:L2",
    "meta": "cheng-pkg meta --lock:cheng.lock.toml --package:pkg://cheng/app --channel:stable "
            "--out:cheng.meta.toml",
    "log": "cheng-pkg log --package:pkg://cheng/json\n"
           "cheng-pkg log --package:pkg://cheng/json --graph",
    "diff": "cheng-pkg diff --from:bafybei...old --to:bafybei...new",
    "checkout": "cheng-pkg checkout --cid:bafybei... --pkg-cache:chengcache",
}


def register(name: str, parser: Parser) -> None:
    """Add the flags of subcommand ``name``."""
    if name in _EXAMPLES:
        parser.epilog = ("examples:\n  " + _EXAMPLES[name].replace("\n", "\n  ")
                         + "\n\nExit 0 ok, 1 a check failed, 2 bad usage or missing input.")
    if name == "resolve":
        parser.add_argument("--manifest", help="cheng-package.toml (or .yaml/.json) to resolve")
        parser.add_argument("--registry", help="registry.jsonl (default build/cheng_registry/...)")
        parser.add_argument("--out", help="write the lock here (default: stdout)")
        parser.add_argument("--format", help="toml (default), yaml or json")
        add_pkg_cache_flag(parser, _CACHE_HELP)
        _trust_flags(parser)
        add_allow_quarantined(parser)
        add_allow_unsigned(parser)
    elif name == "verify":
        parser.add_argument("--lock", help="cheng.lock.toml (or .yaml/.json) to verify")
        parser.add_argument("--registry", help="registry.jsonl to compare against")
        parser.add_argument("--manifest", help="also check the lock still matches this manifest")
        parser.add_argument("--level", help="security level L0, L1 (default) or L2")
        parser.add_argument("--config", help="cheng-pkg-config.toml")
        add_format_flag(parser)
        add_allow_quarantined(parser)
        add_allow_unsigned(parser)
    elif name == "meta":
        parser.add_argument("--lock", help="the package's lock")
        parser.add_argument("--package", help="the package id, e.g. pkg://cheng/app-demo")
        parser.add_argument("--channel", help="edge, stable or lts")
        parser.add_argument("--registry", help="registry.jsonl")
        parser.add_argument("--out", help="write cheng.meta.toml here (default: stdout)")
        parser.add_argument("--format", help="toml (default), yaml or json")
        _trust_flags(parser)
    elif name == "log":
        parser.add_argument("--package", help="the package id")
        parser.add_argument("--registry", help="registry.jsonl")
        parser.add_argument("--graph", action="store_true",
                            help="draw every snapshot as a DAG (merges, tags, channel heads), "
                                 "as git log --graph does (the default once a merge exists)")
        _trust_flags(parser)
        add_format_flag(parser)
    elif name == "diff":
        parser.add_argument("--from", dest="from_cid", help="the older snapshot CID")
        parser.add_argument("--to", dest="to_cid", help="the newer snapshot CID")
        add_pkg_cache_flag(parser, _CACHE_HELP)
        add_format_flag(parser)
    elif name == "checkout":
        parser.add_argument("--cid", help="the snapshot CID to materialise")
        add_pkg_cache_flag(parser, _CACHE_HELP)
        add_format_flag(parser)
        from cheng_build.cli.sizes import add_limit_flags

        add_limit_flags(parser)
    else:  # pragma: no cover - the dispatcher only routes the names above here
        raise RuntimeError(f"pkg_lock cannot register {name!r}")


def _trust_flags(parser: Parser) -> None:
    parser.add_argument("--level", help="security level the registry is verified at: L0 (warn "
                        "only), L1 (default) or L2")
    parser.add_argument("--config", help="cheng-pkg-config.toml")


def _need(args: argparse.Namespace, flag: str, attr: str | None = None) -> str:
    value = getattr(args, attr or flag.replace("-", "_"), None)
    if value is None or value == "":
        raise UsageError(f"missing --{flag}", how=f"pass --{flag}:<value>")
    return str(value)


def _check_manifest(path: str) -> None:
    # A directory is fine (its cheng-package.* is used); a FIFO would block the read forever.
    if not Path(path).is_dir():
        input_file(path, "--manifest", optional=True)


def _format(args: argparse.Namespace, out: str | None) -> str:
    from cheng_build.pkg.formats import format_for_path

    fmt = args.format or (format_for_path(out) if out else "toml")
    if fmt not in _FORMATS:
        raise UsageError("unknown format", why=f"--format:{fmt}",
                         how="use --format:toml, --format:yaml or --format:json")
    return fmt


def _registry_path(flag: str | None) -> Path:
    from cheng_build.core.paths import registry_path

    return registry_path(flag)


def _load_registry(flag: str | None, args: argparse.Namespace, config: Any = None) -> Any:
    """The registry, verified at the configured level before any line of it is used (L0 warns)."""
    from cheng_build.trust.trusted import load_trusted_registry

    config = config if config is not None else _config(args)
    path = _registry_path(flag or str(config.registry))
    input_file(path, "--registry", optional=True)  # a directory or FIFO: say so, never block
    if not path.is_file():
        raise UsageError("missing --registry", why=f"no registry at {path}",
                         how="pass --registry:<path/registry.jsonl> or set PKG_REGISTRY")
    trusted = load_trusted_registry(path, config)
    for w in trusted.warnings:
        print(f"{args.command_name}: warning: {w}", file=sys.stderr)
    return trusted.log


def _store(args: argparse.Namespace) -> Any:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.core.paths import cache_dir

    value, flag = pkg_cache_arg(args)
    if value:
        root = Path(value)
        input_dir(root, flag, optional=True)  # names the flag as typed
    else:
        root = cache_dir()  # PKG_CACHE or the default, checked there
    return Blockstore(root)


def _sync_first(flag: str | None, config: Any = None) -> None:
    """With ``sync_from`` configured (PKG_REGISTRY_FROM), bring the registry up to the mirrors
    first (verified and fork-checked before anything is appended: ``trust.sync``)."""
    from cheng_build.trust.config import load_config

    config = config if config is not None else load_config()
    if config.sync_from:
        from cheng_build.pkg.remote.sync_run import sync_configured

        sync_configured(config, registry=_registry_path(flag or str(config.registry)))


def _resolve_fetching(args: argparse.Namespace, run: Any, hint: Any = None) -> Any:
    """``run(store)`` with the cache's store, which fetches the manifest blocks resolve reads
    from the configured peers and mirrors when it lacks them (build/remote.py)."""
    from cheng_build.build.remote import resolve_store

    with resolve_store(Path(_store(args).root), os.environ, hint=hint) as store:
        return run(store)


def _emit(text: str, out: str | None) -> None:
    from cheng_build.core.atomic import atomic_write_text

    if out:
        output_file(out, "--out")
        atomic_write_text(out, text)
    else:
        sys.stdout.write(text)


def _resolve(args: argparse.Namespace) -> int:
    from cheng_build.build.remote import head_cids
    from cheng_build.pkg.lock import dump_lock, lock_text
    from cheng_build.pkg.manifest import load_manifest
    from cheng_build.pkg.resolve import resolve_manifest

    manifest_path = _need(args, "manifest")
    _check_manifest(manifest_path)
    fmt = _format(args, args.out)
    if args.out:
        output_file(args.out, "--out")
    manifest = load_manifest(manifest_path)
    config = _config(args)
    from cheng_build.pkg.unsigned import check_flag, mark

    check_flag(args.allow_unsigned, config.level.value, "resolve")
    _sync_first(args.registry, config)
    registry = _load_registry(args.registry, args, config)
    warnings: list[str] = []
    lock = _resolve_fetching(
        args, lambda store: resolve_manifest(manifest, registry, store,
                                             level=config.level.value,
                                             allow_quarantined=args.allow_quarantined,
                                             confirm=tty_confirm("resolve"), warnings=warnings),
        lambda: head_cids(manifest, registry))
    lock, more = mark(lock, args.allow_unsigned, config.level.value)
    warnings += more
    for w in warnings:
        print(f"resolve: warning: {w}", file=sys.stderr)
    if args.out:
        dump_lock(lock, args.out, fmt)
    else:
        sys.stdout.write(lock_text(lock, fmt))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from cheng_build.pkg.lock import load_lock
    from cheng_build.pkg.verify import ensure_lock_matches_manifest, verify_lock

    lock_path = _need(args, "lock")
    input_file(lock_path, "--lock", optional=True)  # a FIFO would block the read
    config = _config(args)
    from cheng_build.pkg.unsigned import check_flag

    check_flag(args.allow_unsigned, config.level.value, "verify")
    lock = load_lock(lock_path)
    from cheng_build.pkg.unsigned import check_lock

    check_lock(lock.dependencies, config.level.value, None)  # a marked lock: refused above L0
    manifest = None
    if args.manifest:
        from cheng_build.pkg.manifest import load_manifest

        _check_manifest(args.manifest)
        manifest = load_manifest(args.manifest)
    reg_flag = args.registry or str(config.registry)
    _sync_first(reg_flag, config)
    if not config.require_registry_match and not _registry_path(reg_flag).is_file():
        registry = None  # L0 without a registry: signatures (or placeholders) only
    else:
        registry = _load_registry(reg_flag, args, config)
    warnings = verify_lock(lock, registry, config, allow_quarantined=args.allow_quarantined,
                           confirm=tty_confirm("verify"), allow_unsigned=args.allow_unsigned)
    if manifest is not None:
        ensure_lock_matches_manifest(lock, manifest)
    if args.format == "json":
        import json

        print(json.dumps({"ok": True, "lock": str(lock_path), "package_id": lock.package_id,
                          "dependencies": len(lock.dependencies), "level": config.level.value,
                          "warnings": list(warnings)}))
        return 0
    for w in warnings:
        print(f"verify: warning: {w}", file=sys.stderr)
    print("ok")
    return 0


def _config(args: argparse.Namespace) -> Any:
    """The effective trust configuration: level and registry-match rule (CLI > env > file)."""
    from cheng_build.trust.config import load_config

    if args.config:
        input_file(args.config, "--config", optional=True)  # a FIFO would block the read
    return load_config({"level": args.level}, config_path=args.config)


def _meta(args: argparse.Namespace) -> int:
    from cheng_build.pkg.lock import load_lock
    from cheng_build.pkg.manifest import check_channel
    from cheng_build.pkg.meta import build_meta, meta_text

    lock_path = _need(args, "lock")
    input_file(lock_path, "--lock", optional=True)
    package = _need(args, "package")
    channel = _need(args, "channel")
    fmt = _format(args, args.out)
    if args.out:
        output_file(args.out, "--out")
    try:
        check_channel(channel, "--channel")
    except ChengError as exc:
        raise UsageError(exc.what, how="use --channel:edge, stable or lts") from None
    lock = load_lock(lock_path)
    registry = _load_registry(args.registry, args)
    _emit(meta_text(build_meta(lock, registry, package, channel), fmt), args.out)
    return 0


def _log(args: argparse.Namespace) -> int:
    from cheng_build.pkg.versions import version_log

    package = _need(args, "package")
    registry = _load_registry(args.registry, args)
    from cheng_build.pkg.version_graph import draw, graph_nodes

    nodes = graph_nodes(registry, package)
    if args.graph or any(len(n.parents) > 1 for n in nodes):  # a merge needs the graph
        if args.format == "json":
            import json

            print(json.dumps([{"cid": n.cid, "line": n.line, "channel": n.channel,
                               "epoch": n.epoch, "version": n.version, "parents": n.parents,
                               "heads": n.heads, "tags": n.tags, "quarantined": n.quarantined}
                              for n in nodes], indent=1))
            return 0
        for row in draw(nodes):
            print(row)
        return 0
    lines = version_log(registry, package)
    if args.format == "json":
        import json

        print(json.dumps([{"head": ln.is_head, "cid": ln.cid, "channel": ln.channel,
                           "epoch": ln.epoch, "author_id": ln.author_id} for ln in lines]))
        return 0
    for line in lines:
        print(line.render())
    for n in nodes:  # tags name one snapshot forever (cheng-registry tag)
        for t in n.tags:
            print(f"  tag   {t}  {n.cid}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from cheng_build.pkg.versions import snapshot_diff

    a = _need(args, "from", "from_cid")
    b = _need(args, "to", "to_cid")
    changes = snapshot_diff(_store(args), a, b)
    if args.format == "json":
        import json

        print(json.dumps([{"kind": c.kind, "path": c.path} for c in changes]))
        return 0
    for change in changes:
        print(change.render())
    return 0


def _checkout(args: argparse.Namespace) -> int:
    from cheng_build.cas.cid import parse_cid
    from cheng_build.cas.materialize import materialize
    from cheng_build.cli.sizes import export_limits

    cid = parse_cid(_need(args, "cid"))
    limits = export_limits(args)
    store = _store(args)
    # Fetched from the configured peers, mirrors or content routing when the cache lacks it.
    from cheng_build.pkg.remote.checkout import fetch_snapshot
    from cheng_build.trust.config import load_config

    fetch_snapshot(str(cid), Path(store.root), load_config())
    root = materialize(store, cid, store.root, limits=limits)
    if args.format == "json":
        import json

        print(json.dumps({"cid": str(cid), "root": str(root)}))
        return 0
    print(f"root: {root}")
    return 0


_RUN = {"resolve": _resolve, "verify": _verify, "meta": _meta, "log": _log, "diff": _diff,
        "checkout": _checkout}


def run(name: str, args: argparse.Namespace) -> int:
    """Run subcommand ``name``; returns the exit code (errors are raised, the CLI maps them)."""
    args.command_name = name
    return _RUN[name](args)


__all__ = ["register", "run"]
