"""cheng-storage init / put / put-text / get / cat / serve: content in and out of a storage root."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.cli.storage_common import add_common_flags, config_from_args
from cheng_build.core.errors import EXIT_OK, InputError, UsageError
from cheng_build.storage.config import Mode, StorageConfig


def register(name: str, parser: Parser) -> None:
    add_common_flags(parser, p2p=name in ("init", "get", "cat", "serve", "put", "put-text"))
    if name != "serve":
        add_format_flag(parser)
    if name == "init":
        parser.description = "Create a storage root (blocks/, ledger) and print where it is."
    elif name == "import-legacy":
        parser.description = (
            "Move the original tool's flat store (blocks/<cid>, one file per whole object) into "
            "the CAS as UnixFS files, pinned. Each object is verified first; a corrupt one is "
            "reported and left in place (exit 1). Old CIDs keep reading (legacy-map.json).")
        parser.add_argument("--keep", action="store_true", help="leave the flat files in place")
    elif name in ("put", "put-text"):
        _register_put(name, parser)
    elif name in ("get", "cat"):
        parser.add_argument("--cid", default=None,
                            help="what to read: <cid>, cid://<cid> or cid:<cid>, optionally /<path>")
        if name == "cat":
            parser.add_argument("--path", default=None, help="same as --cid (the original's name)")
            parser.add_argument("--raw", action="store_true", help="print the bytes, no newline added")
            parser.add_argument("--out", default=None, help="write to this file instead of stdout")
        else:
            parser.add_argument("--out", default=None, help="the file or directory to create")
        parser.epilog = ("Reads are free: no lease is needed. With --mode:p2p a CID missing here is "
                         "read from --peer (each block verified) and kept in this root's cache.")
    elif name == "serve":
        parser.description = ("Serve this root's blocks over libp2p bitswap (and an HTTP trustless "
                              "gateway with --http), and answer storage-proof challenges. Prints "
                              "the addresses to give to peers; runs until interrupted.")
        parser.add_argument("--max", type=int, default=None, help="serve at most this many peers at once")
        parser.add_argument("--http", default=None, help="also serve HTTP on <host>:<port>")


def _register_put(name: str, parser: Parser) -> None:
    if name == "put":
        parser.description = ("Store a file (or a directory, as a UnixFS directory) and print its CID. "
                              "In p2p mode a write needs a lease token (--lease) unless --no-lease; "
                              "with IO_REQUIRE_LEASE=1 in p2p mode it always does.")
        parser.add_argument("--file", default=None, help="the file or directory to store")
    else:
        parser.description = "Store text and print its CID (exactly one of --text, --stdin, --file, --in)."
        parser.add_argument("--text", default=None, help="the text to store")
        parser.add_argument("--stdin", action="store_true", help="read the text from stdin")
        parser.add_argument("--file", default=None, help="read the text from this file")
        parser.add_argument("--in", dest="in_", default=None, help="same as --file")
    parser.add_argument("--lease", default=None, help="a lease token file (cheng-storage leasegen)")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--require-lease", dest="require", action="store_const", const=True, default=None,
                   help="refuse to write without --lease (default in p2p mode)")
    g.add_argument("--no-lease", dest="require", action="store_const", const=False,
                   help="write without a lease (local storage only)")
    parser.add_argument("--compat", action="store_true",
                        help="accept the original's v1 tokens (unbound key, unsigned prices; see docs)")
    parser.add_argument("--registry", default=None,
                        help="registry log holding the token signer's key (default: PKG_REGISTRY or "
                             "build/cheng_registry/registry.jsonl)")
    parser.add_argument("--epoch", type=int, default=None,
                        help="epoch of the lease event (default: the ledger's current epoch)")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None,
                        help="pin the content (default: yes without a lease, no with one)")


def run(name: str, args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if name == "init":
        return _init(cfg, args)
    if name == "import-legacy":
        return _import_legacy(cfg, args)
    if name in ("put", "put-text"):
        return _put(name, cfg, args)
    if name in ("get", "cat"):
        return _read(name, cfg, args)
    return _serve(cfg, args)


def _init(cfg: StorageConfig, args: argparse.Namespace) -> int:
    from cheng_build.storage.store import open_root

    open_root(cfg.root, create=True)
    if args.format == "json":
        print(json.dumps({"root": str(cfg.root), "blocks": str(cfg.blocks_dir), "mode": cfg.mode.value,
                          "ledger": str(cfg.ledger_path), "listen": cfg.listen}))
        return EXIT_OK
    print(f"storage ok: {cfg.root}")
    print(f"blocks: {cfg.blocks_dir}")
    print(f"mode: {cfg.mode.value}")
    if cfg.listen:
        print(f"listen: {cfg.listen}")
    return EXIT_OK


def _import_legacy(cfg: StorageConfig, args: argparse.Namespace) -> int:
    from cheng_build.core.errors import ChengError
    from cheng_build.storage.legacy import import_legacy
    from cheng_build.storage.store import open_root

    res = import_legacy(open_root(cfg.root), keep=args.keep)
    if args.format == "json":
        print(json.dumps({"imported": res.imported, "corrupt": res.corrupt}))
    else:
        for old, new in res.imported.items():
            print(f"{old} -> {new}" if old != new else old)
        print(f"import-legacy ok: {len(res.imported)} objects")
    if res.corrupt:
        raise ChengError(f"{len(res.corrupt)} legacy objects are corrupt: {res.corrupt[0]}",
                         why="their bytes do not hash to their names; they were left in place",
                         how="restore them from a copy, or delete them")
    return EXIT_OK


def _text_source(args: argparse.Namespace) -> tuple[Path | None, bytes | None]:
    given = [k for k, v in (("--text", args.text), ("--stdin", args.stdin or None),
                            ("--file", args.file), ("--in", args.in_)) if v is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --text, --stdin, --file, --in"
                         + (f" (got {', '.join(given)})" if given else ""))
    if args.text is not None:
        return None, args.text.encode("utf-8", "surrogateescape")
    if args.stdin:
        return None, sys.stdin.buffer.read()
    return Path(args.file or args.in_), None


def _put(name: str, cfg: StorageConfig, args: argparse.Namespace) -> int:
    from cheng_build.core.paths import registry_path
    from cheng_build.storage.token import load_token, registry_lookup
    from cheng_build.storage.writes import put, put_bytes

    if name == "put":
        if not args.file:
            raise UsageError("missing --file", how="cheng-storage put --file:<file or directory>")
        path: Path | None = Path(args.file)
        data = None
    else:
        path, data = _text_source(args)
    if path is not None and not path.exists():
        raise InputError(f"no such file: {path}")
    token = load_token(Path(args.lease)) if args.lease else None
    require = cfg.mode is Mode.P2P if args.require is None else args.require
    kw: dict[str, Any] = dict(token=token, require_lease=require, compat=args.compat,
                              key_lookup=registry_lookup(registry_path(args.registry)),
                              now=int(time.time()), epoch=args.epoch, pin=args.pin)
    res = put(cfg, path, **kw) if path is not None else put_bytes(cfg, data or b"", **kw)
    if args.format == "json":
        print(json.dumps({"cid": res.cid, "bytes": res.size, "blocks": res.blocks,
                          "lease_id": res.lease.lease_id if res.lease else None,
                          "lease_status": res.lease.status.value if res.lease else None,
                          "expires_ts": res.lease.expires_ts if res.lease else None}))
    else:
        print(res.cid)
    return EXIT_OK


def _read(name: str, cfg: StorageConfig, args: argparse.Namespace) -> int:
    from cheng_build.storage.reads import export, read_bytes

    text = args.cid or (getattr(args, "path", None))
    if not text:
        raise UsageError("missing cid", how=f"cheng-storage {name} --cid:<cid>")
    if name == "get":
        if not args.out:
            raise UsageError("missing --out", how="cheng-storage get --cid:<cid> --out:<path>")
        out = export(cfg, text, Path(args.out))
        if args.format == "json":
            print(json.dumps({"out": str(out)}))
        else:
            print(f"get ok: {out}")
        return EXIT_OK
    data = read_bytes(cfg, text)
    if args.out:
        from cheng_build.core.atomic import atomic_write_bytes

        atomic_write_bytes(args.out, data)
        return EXIT_OK
    if args.format == "json":
        print(json.dumps({"cid": text, "bytes": len(data),
                          "text": data.decode("utf-8", "replace")}, ensure_ascii=False))
        return EXIT_OK
    sys.stdout.flush()
    sys.stdout.buffer.write(data if args.raw else data + b"\n")
    sys.stdout.buffer.flush()
    return EXIT_OK


def _serve(cfg: StorageConfig, args: argparse.Namespace) -> int:
    import signal

    from cheng_build.storage.serve import serve_root

    if args.max is not None and args.max < 1:
        raise UsageError("--max must be at least 1")

    def ready(addrs: list[str], http: str | None) -> None:
        for a in addrs:
            print(a)
        if http:
            print(http)
        sys.stdout.flush()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        serve_root(cfg, listen=cfg.listen or "/ip4/127.0.0.1/tcp/0", http=args.http,
                   max_peers=args.max, on_ready=ready)
    except KeyboardInterrupt:
        pass
    print("serve ok: stopped")
    return EXIT_OK
