"""``cheng-pkg fetch`` and ``cheng-pkg serve``: thin CLI over ``pkg.fetch`` and ``pkg.serve``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.core.errors import InputError, UsageError
from cheng_build.core.paths import cache_dir

# Draw a progress bar only for fetches that last longer than this, and only on a terminal.
BAR_AFTER_S = 1.0


def register(name: str, parser: Parser) -> None:
    if name == "fetch":
        parser.add_argument("--lock", required=True, help="the lock file (cheng.lock.toml/.yaml/.json)")
        parser.add_argument("--print-roots", action="store_true",
                            help="print the PKG_ROOTS value as the last line")
        parser.add_argument("--mode", choices=["local", "p2p", "http", "auto"], default=None,
                            help="sources to use (default: PKG_MODE, config, auto)")
        parser.add_argument("--peers", default=None,
                            help="comma-separated peers (/ip4/../tcp/../p2p/<id>) and gateways "
                                 "(http://host:port or /ip4/../tcp/../http)")
        parser.add_argument("--source-peer", action="append", default=[],
                            help="a provider to try first (repeatable)")
        parser.add_argument("--pkg-cache", default=None,
                            help="the package cache (default: PKG_CACHE, ./chengcache)")
        parser.add_argument("--config", default=None, help="cheng-pkg-config.toml to use")
        parser.add_argument("--level", default=None, help="security level L0|L1|L2")
        add_format_flag(parser)
        parser.add_argument("--registry", default=None,
                            help="registry.jsonl the lock is checked against before fetching "
                                 "(default: PKG_REGISTRY, config; skipped when none exists)")
        from cheng_build.cli.gov_flags import add_allow_quarantined
        from cheng_build.cli.sizes import add_limit_flags

        add_allow_quarantined(parser)
        add_limit_flags(parser)
    elif name == "serve":
        parser.add_argument("--root", required=True, help="the package cache to serve")
        parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0",
                            help="libp2p listen address (default /ip4/127.0.0.1/tcp/0)")
        parser.add_argument("--http", default=None, help="also serve HTTP on <host>:<port>")
        parser.add_argument("--max", type=int, default=None, help="serve at most this many peers at once")
        parser.add_argument("--registry", default=None,
                            help="also serve this registry log (/cheng/registry/1.0.0 and the "
                                 "gateway's /registry/v1/)")
        parser.add_argument("--bootstrap", default=None,
                            help="join the Kademlia DHT through these peers (comma-separated; "
                                 "default: PKG_BOOTSTRAP, config [remote] bootstrap) and announce "
                                 "every snapshot root held")
        parser.add_argument("--dht", action="store_true",
                            help="run a DHT node even without bootstrap peers (the first node)")
    else:  # pragma: no cover - the dispatch table names only these
        raise RuntimeError(f"pkg_net has no subcommand {name}")


def run(name: str, args: argparse.Namespace) -> int:
    return _fetch(args) if name == "fetch" else _serve(args)


# --- fetch ------------------------------------------------------------------------------------


class _Bar:
    """A rich progress bar that appears only after ``BAR_AFTER_S`` on a TTY (rich loaded lazily)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.t0 = 0.0
        self.blocks = 0
        self.nbytes = 0
        self.label = ""
        self.expected: int | None = None
        self._progress: Any = None
        self._task: Any = None

    def start(self, package_id: str, source: str) -> None:
        self.t0 = time.monotonic()
        self.blocks = self.nbytes = 0
        self.expected = None
        self.label = f"{source} {package_id}"

    def total(self, nbytes: int) -> None:
        # Several roots in one p2p session: their sizes add up.
        self.expected = (self.expected or 0) + nbytes

    def advance(self, nbytes: int) -> None:
        self.blocks += 1
        self.nbytes += nbytes
        if not self.enabled:
            return
        if self._progress is None:
            if time.monotonic() - self.t0 < BAR_AFTER_S:
                return
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[blocks]} blocks"), DownloadColumn(),
                                      TransferSpeedColumn(), TimeRemainingColumn(),
                                      transient=True, console=None)
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=None, blocks=0)
        self._progress.update(self._task, completed=self.nbytes, blocks=self.blocks,
                              total=self.expected)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _load_config(args: argparse.Namespace, peers: list[str] | None) -> Any:
    from cheng_build.trust.config import load_config

    overrides: dict[str, object] = {}
    if args.registry:
        overrides["registry"] = args.registry
    if args.mode in ("local", "p2p", "auto"):
        overrides["mode"] = args.mode
    if peers is not None:
        overrides["peers"] = tuple(peers)
    if args.level:
        overrides["level"] = args.level
    return load_config(overrides, config_path=args.config)


def _fetch(args: argparse.Namespace) -> int:
    from cheng_build.cli.sizes import export_limits
    from cheng_build.pkg.fetch import Progress, fetch_lock
    from cheng_build.pkg.lock import load_lock

    limits = export_limits(args)
    lock_path = Path(args.lock)
    if not lock_path.is_file():
        raise InputError(f"lock file {lock_path} not found", how="run 'cheng-pkg resolve' first")
    peers = [p.strip() for p in args.peers.split(",") if p.strip()] if args.peers else None
    config = _load_config(args, peers)
    peer_list = list(args.source_peer) + list(getattr(config, "peers", ()) or ())
    lock = load_lock(lock_path)
    _check_against_registry(args, config, lock)
    bar = _Bar()
    progress = Progress(bar.start, bar.advance, bar.finish, bar.total)
    if args.mode is None and (config.bootstrap or config.routers):
        # Listed peers first; the DHT's providers of what they lack (pkg/remote/routing.py).
        from cheng_build.pkg.remote.routing import fetch_lock_routed

        result = fetch_lock_routed(lock, cache_root=cache_dir(args.pkg_cache), config=config,
                                   peers=peer_list, lock_dir=lock_path.parent, progress=progress,
                                   limits=limits)
    else:
        result = fetch_lock(lock, cache_root=cache_dir(args.pkg_cache), config=config,
                            peers=peer_list, mode=args.mode, lock_dir=lock_path.parent,
                            progress=progress, limits=limits)
    if args.format == "json":
        import json

        print(json.dumps({
            "packages": [{"package_id": pid, "source": result.sources[pid].value, "root": str(root)}
                         for pid, root in result.roots.items()],
            "pkg_roots": result.pkg_roots,
            "dropped": [{"source": who, "why": why} for who, why in result.dropped],
            "blocks_fetched": result.blocks_fetched, "bytes_fetched": result.bytes_fetched}))
        sys.stdout.flush()
        return 0
    for who, why in result.dropped:
        print(f"fetch: warning: {who}: {why}", file=sys.stderr)
    files, nbytes = result.orphans_removed
    if files:
        print(f"fetch: note: removed {files} temp files ({nbytes} bytes) an interrupted fetch "
              "had left", file=sys.stderr)
    for pid, root in result.roots.items():
        print(f"{pid} {result.sources[pid].value} {root}")
    if args.print_roots:
        print(result.pkg_roots)
    sys.stdout.flush()
    return 0


def _check_against_registry(args: argparse.Namespace, config: Any, lock: Any) -> None:
    """Before a byte is fetched: the registry verifies, and the lock is what it says was signed.

    Fetching is by CID, so the bytes are always the ones the lock names; this makes sure the lock
    names what the namespace's owner published. With no registry anywhere (a lock handed over on
    its own), only the CIDs bind the fetch.
    """
    from cheng_build.cli.input_checks import input_file
    from cheng_build.pkg.verify import verify_lock
    from cheng_build.trust.trusted import load_trusted_registry

    reg = Path(config.registry)
    if args.registry:
        input_file(reg, "--registry", optional=True)
        if not reg.is_file():
            raise InputError(f"registry {reg} not found", how="pass --registry:<registry.jsonl>")
    elif not reg.is_file():
        return
    trusted = load_trusted_registry(reg, config)
    from cheng_build.cli.gov_flags import tty_confirm

    warnings = list(trusted.warnings) + verify_lock(
        lock, trusted.log, config, allow_quarantined=getattr(args, "allow_quarantined", False),
        confirm=tty_confirm("fetch"))
    for w in warnings:
        print(f"fetch: warning: {w}", file=sys.stderr)


# --- serve ------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from cheng_build.pkg.serve import Listening, serve

    if args.max is not None and args.max < 1:
        raise UsageError("--max must be at least 1")

    def ready(where: Listening) -> None:
        for addr in where.p2p:
            print(addr)
        if where.http:
            host, port = where.http.removeprefix("http://").rsplit(":", 1)
            print(f"/ip4/{host}/tcp/{port}/http")
        sys.stdout.flush()

    def on_term(signum: int, frame: Any) -> None:
        # Stop as Ctrl-C does. Inside trio.run, SIGINT's handler is trio's: it raises
        # KeyboardInterrupt only where that is safe and otherwise hands it to the main task, so
        # the run loop unwinds properly. Raising here directly could land inside trio's own
        # scheduler and abandon the run (trio then warns "guest run got abandoned").
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not signal.default_int_handler:
            handler(signal.SIGINT, frame)
            return
        raise KeyboardInterrupt

    def announced(n: int) -> None:
        print(f"announced: {n}")  # provider records are out (a script may wait for this line)
        sys.stdout.flush()

    from cheng_build.trust.config import load_config

    config = load_config()
    if args.bootstrap is not None:
        boot = [a.strip() for a in args.bootstrap.split(",") if a.strip()]
    else:
        boot = list(config.bootstrap)

    signal.signal(signal.SIGTERM, on_term)
    try:
        serve(Path(args.root), args.listen, http=args.http, max_peers=args.max, on_ready=ready,
              registry=Path(args.registry) if args.registry else None,
              bootstrap=boot, dht=args.dht, on_announced=announced, config=config)
    except KeyboardInterrupt:
        return 0
    return 0
