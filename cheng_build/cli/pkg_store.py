"""``cheng-pkg store migrate | reindex | info``: the package cache's on-disk layout.

The store keeps blocks in pack files with an index (format 2, docs/cas.md). A cache written by an
older version keeps one file per block under ``blocks/``; such a cache is read as it is and moved
into packs by its first write, by ``gc``, or at once by ``store migrate``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.core.errors import InputError, IntegrityError
from cheng_build.core.paths import cache_dir


def register(name: str, parser: Parser) -> None:
    """Add the arguments of ``store``."""
    parser.add_argument("action", choices=["migrate", "reindex", "info"],
                        help="migrate: move one-file-per-block blocks into packs now; "
                             "reindex: rebuild the index from the packs (it is damaged); "
                             "info: what the store holds")
    parser.add_argument("--pkg-cache", default=None, metavar="DIR",
                        help="the package cache (default: $PKG_CACHE or ./chengcache)")
    add_format_flag(parser)
    parser.epilog = ("examples:\n  cheng-pkg store migrate --pkg-cache:~/chengcache\n"
                     "  cheng-pkg store reindex --pkg-cache:~/chengcache\n"
                     "  cheng-pkg store info --format:json\n\n"
                     "migrate verifies every block file against its CID before it moves it; one that "
                     "does not verify goes to <cache>/corrupt/ and is named (exit 1: fetch it again "
                     "to repair the store). Running it again is safe: it resumes where a killed run "
                     "stopped.\nreindex reads every pack, verifies every block against its CID and "
                     "writes a new index (the old one is kept as index.sqlite.old-<time>); stop "
                     "other cheng-pkg processes using the cache first. A missing index is rebuilt "
                     "this way by itself.\n"
                     "Exit 0 done, 1 corrupt blocks found or the store is unusable, 2 bad usage.")


def _open(args: argparse.Namespace) -> Any:
    from cheng_build.cas.blockstore import Blockstore

    root = cache_dir(args.pkg_cache)
    if not root.is_dir():
        raise InputError(f"no package cache at {root}",
                         how="pass --pkg-cache:<dir> (or set PKG_CACHE) to an existing cache")
    return Blockstore(root)


def _migrate(args: argparse.Namespace) -> int:
    store = _open(args)
    res = store.migrate()
    st = store.stats()
    if args.format == "json":
        print(json.dumps({"root": str(store.root), "moved": res.moved, "bytes": res.bytes,
                          "corrupt": res.corrupt, "temps_removed": res.temps,
                          "blocks": st.blocks, "packs": st.packs}))
    elif res.moved or res.corrupt:
        print(f"moved {res.moved} blocks ({res.bytes} bytes) into packs; the store holds "
              f"{st.blocks} blocks in {st.packs} packs")
    else:
        print(f"nothing to migrate: {store.root} holds {st.blocks} blocks in {st.packs} packs")
    if res.corrupt:
        raise IntegrityError(f"{len(res.corrupt)} block files did not verify and were not moved",
                             why="first: " + res.corrupt[0] + f" (all in {store.root / 'corrupt'})",
                             how="fetch them again (cheng-pkg fetch, or car import) to repair the store")
    return 0


def _reindex(args: argparse.Namespace) -> int:
    store = _open(args)
    res = store.reindex()
    if args.format == "json":
        print(json.dumps({"root": str(store.root), "packs": res.packs, "blocks": res.blocks,
                          "bytes": res.bytes, "corrupt": res.corrupt}))
    else:
        print(f"rebuilt the index of {store.root}: {res.blocks} blocks ({res.bytes} bytes) "
              f"in {res.packs} packs, every one verified")
    if res.corrupt:
        raise IntegrityError(f"{len(res.corrupt)} pack records did not verify and were left out",
                             why="first: " + res.corrupt[0],
                             how="fetch those packages again (cheng-pkg fetch, or car import) to "
                                 "repair the store")
    return 0


def _info(args: argparse.Namespace) -> int:
    store = _open(args)
    st = store.stats()
    if args.format == "json":
        print(json.dumps({"root": str(store.root), "blocks": st.blocks, "block_bytes": st.block_bytes,
                          "packs": st.packs, "pack_bytes": st.pack_bytes,
                          "unmigrated_files": st.flat_blocks, "pins": len(store.pins())}))
        return 0
    print(f"root: {store.root}")
    print(f"blocks: {st.blocks} ({st.block_bytes} bytes) in {st.packs} packs ({st.pack_bytes} bytes)")
    print(f"pins: {len(store.pins())}")
    if st.flat_blocks:
        print(f"not yet migrated: {st.flat_blocks} block files (cheng-pkg store migrate)")
    return 0


def run(name: str, args: argparse.Namespace) -> int:
    """Run ``store``; returns the exit code (errors are raised as ChengError)."""
    return {"migrate": _migrate, "reindex": _reindex}.get(args.action, _info)(args)
