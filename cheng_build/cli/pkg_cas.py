"""``cheng-pkg add | cat | get | ls | car | gc``: the content-addressed store from the shell.

Every subcommand takes ``--pkg-cache:<dir>`` (else ``PKG_CACHE``, else ``./chengcache``). ``add``
prints the root CID as its last line, so ``cid=$(cheng-pkg add dir | tail -1)`` works; a progress
bar (rich, imported only then) appears on stderr for long imports on a terminal, never when piped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.core.errors import UsageError
from cheng_build.core.paths import cache_dir

_PROGRESS_MIN_BYTES = 32 << 20
_PROGRESS_MIN_FILES = 200


def _cache_flag(parser: Parser) -> None:
    parser.add_argument("--pkg-cache", default=None, metavar="DIR",
                        help="the package cache holding blocks/ (default: $PKG_CACHE or ./chengcache)")


def register(name: str, parser: Parser) -> None:
    """Add the arguments of subcommand ``name``."""
    _cache_flag(parser)
    if name == "add":
        parser.add_argument("path", help="a file or directory")
        parser.add_argument("--chunker", default="size-262144",
                            help="size-<bytes> (default size-262144) or fastcdc-<min>-<avg>-<max>")
        parser.add_argument("--hash", default="sha2-256", choices=["sha2-256", "blake3"],
                            help="multihash function (default sha2-256, as ipfs)")
        parser.add_argument("--only-hash", action="store_true", help="compute the CID, store nothing")
        parser.add_argument("--snapshot", action="store_true",
                            help="leave out .git, build, dist, chengcache, __pycache__ and "
                                 "what .chengignore lists")
        parser.add_argument("--no-pin", action="store_true", help="do not pin the root (gc may remove it)")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
        add_format_flag(parser)
    elif name in ("cat", "ls"):
        parser.add_argument("cid", help="a CID, optionally followed by /path/inside")
        if name == "ls":
            add_format_flag(parser)
    elif name == "get":
        parser.add_argument("cid", help="a CID, optionally followed by /path/inside")
        parser.add_argument("--out", default=None, help="where to write (default: ./<cid>); must not exist")
        add_format_flag(parser)
        from cheng_build.cli.sizes import add_limit_flags

        add_limit_flags(parser)
    elif name == "car":
        parser.add_argument("action", choices=["export", "import"], help="export a DAG or import a CAR")
        parser.add_argument("target", help="export: the root CID; import: the CAR file")
        parser.add_argument("--out", default=None, help="export: the CAR file to write")
        parser.add_argument("--no-pin", action="store_true", help="import: do not pin the roots")
        add_format_flag(parser)
    elif name == "gc":
        add_format_flag(parser)
    elif name == "unpin":
        parser.add_argument("cid", help="the pinned root to unpin")
        add_format_flag(parser)
        parser.epilog = ("examples:\n  cheng-pkg unpin bafybei... && cheng-pkg gc\n\n"
                         "Exit 0 unpinned, 1 it was not pinned, 2 bad usage.")
    else:  # pragma: no cover - the table in cli/pkg.py names only the above
        raise RuntimeError(f"pkg_cas does not implement {name}")


def _store(args: argparse.Namespace) -> Any:
    from cheng_build.cas.blockstore import Blockstore

    return Blockstore(cache_dir(args.pkg_cache))


def _target(store: Any, spec: str) -> Any:
    from cheng_build.cas.cid import parse_cid
    from cheng_build.cas.exporter import resolve_path

    head, _, rest = spec.partition("/")
    root = parse_cid(head)
    return resolve_path(store, root, rest) if rest else root


class _Bar:
    """A rich progress bar on stderr, started only once an import proves long."""

    def __init__(self) -> None:
        self.progress: Any = None
        self.task: Any = None
        self.started = time.monotonic()

    def __call__(self, tally: Any) -> None:
        if self.progress is None:
            big = tally.bytes_total >= _PROGRESS_MIN_BYTES or tally.files_total >= _PROGRESS_MIN_FILES
            if not big and time.monotonic() - self.started < 1.0:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(
                TextColumn("add"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TextColumn("{task.fields[files]}"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True)
            self.progress.start()
            self.task = self.progress.add_task("add", total=max(tally.bytes_total, 1), files="")
        self.progress.update(self.task, completed=tally.bytes_done,
                             files=f"{tally.files_done}/{tally.files_total} files")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _add(args: argparse.Namespace) -> int:
    from cheng_build.cas.importer import import_path

    store = None if args.only_hash else _store(args)
    bar = _Bar() if sys.stderr.isatty() and not args.quiet else None
    try:
        res = import_path(store, args.path, chunker=args.chunker, snapshot=args.snapshot, hash=args.hash,
                          progress=bar, pin=not args.no_pin and store is not None)
    finally:
        if bar is not None:
            bar.close()
    if args.format == "json":
        print(json.dumps({"root": str(res.root)}))
        return 0
    print(str(res.root))
    return 0


def _cat(args: argparse.Namespace) -> int:
    from cheng_build.cas.exporter import iter_file

    store = _store(args)
    out = sys.stdout.buffer
    for piece in iter_file(store, _target(store, args.cid)):
        out.write(piece)
    out.flush()
    return 0


def _get(args: argparse.Namespace) -> int:
    from cheng_build.cas.exporter import export_to

    store = _store(args)
    cid = _target(store, args.cid)
    out = Path(args.out) if args.out else Path(args.cid.replace("/", "_"))
    from cheng_build.cli.sizes import export_limits

    limits = export_limits(args)
    export_to(store, cid, out, durable=True, limits=limits)
    print(json.dumps({"cid": str(cid), "path": str(out)}) if args.format == "json" else str(out))
    return 0


def _printable(name: str) -> str:
    """A name from a DAG on one line: newlines, control characters and backslashes escaped
    (``\\n``, ``\\x1b``...), so a hostile entry name cannot forge listing lines or move the
    terminal's cursor. ``--format:json`` gives the names exactly."""
    if name.isprintable() and "\\" not in name:
        return name
    out = []
    for ch in name:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _ls(args: argparse.Namespace) -> int:
    from cheng_build.cas.exporter import EntryKind, ls

    store = _store(args)
    entries = ls(store, _target(store, args.cid))
    if args.format == "json":
        print(json.dumps([{"name": e.name, "cid": str(e.cid), "kind": e.kind.value, "size": e.size}
                          for e in entries]))
        return 0
    for e in entries:
        suffix = "/" if e.kind is EntryKind.DIRECTORY else ("@" if e.kind is EntryKind.SYMLINK else "")
        print(f"{e.cid} {e.size:>12} {_printable(e.name)}{suffix}")
    return 0


def _car(args: argparse.Namespace) -> int:
    from cheng_build.cas.car import export_car, import_car

    store = _store(args)
    if args.action == "export":
        if not args.out:
            raise UsageError("car export needs --out:<file>", how="cheng-pkg car export <cid> --out:dag.car")
        n = export_car(store, _target(store, args.target), args.out)
        print(json.dumps({"blocks": n, "file": args.out}) if args.format == "json"
              else f"wrote {n} blocks to {args.out}")
        return 0
    roots = import_car(store, args.target, pin=not args.no_pin)
    if args.format == "json":
        print(json.dumps({"roots": [str(r) for r in roots]}))
        return 0
    for root in roots:
        print(str(root))
    return 0


def _gc(args: argparse.Namespace) -> int:
    res = _store(args).gc()
    if args.format == "json":
        print(json.dumps({"kept": res.kept, "removed": res.removed, "bytes_freed": res.bytes_freed}))
    else:
        print(f"removed {res.removed} blocks ({res.bytes_freed} bytes), kept {res.kept}")
    return 0


def _unpin(args: argparse.Namespace) -> int:
    from cheng_build.cas.cid import CidError, parse_cid
    from cheng_build.core.errors import NotFoundError

    try:
        cid = parse_cid(args.cid)
    except CidError as exc:
        raise UsageError(f"{args.cid!r} is not a CID", why=exc.what) from None
    if not _store(args).unpin(cid):
        raise NotFoundError(f"{cid} is not pinned", how="'ls <store>/pins' lists the pinned roots")
    if args.format == "json":
        print(json.dumps({"unpinned": str(cid)}))
    else:
        print(f"unpinned {cid}")
    return 0


_RUN = {"add": _add, "cat": _cat, "get": _get, "ls": _ls, "car": _car, "gc": _gc, "unpin": _unpin}


def run(name: str, args: argparse.Namespace) -> int:
    """Run subcommand ``name``; returns the exit code (errors are raised as ChengError)."""
    return _RUN[name](args)
