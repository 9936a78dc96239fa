"""``cheng-registry`` subcommands and ``cheng-pkg publish``: thin wrappers over ``trust``/``pkg``.

Output: results on stdout (a publish prints the CID last, so ``$(... | tail -1)`` captures it);
warnings on stderr as ``<command>: warning: ...``; failures are raised and mapped by ``cli.app``.

(Over 400 lines on purpose: it is one short wrapper per subcommand, all sharing the registry and
level flags and the trust configuration they build.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from cheng_build.cli.args import Parser, add_format_flag, add_pkg_cache_flag, pkg_cache_arg
from cheng_build.cli.input_checks import MAX_INT64, input_dir, input_file, output_file
from cheng_build.core.errors import UsageError
from cheng_build.core.paths import DEFAULT_REGISTRY

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from cheng_build.trust.config import Config
    from cheng_build.trust.registry_log import RegistryLog, VerifyReport


_MAX_WARNINGS = 20


def _warn(name: str, lines: list[str] | tuple[str, ...]) -> None:
    # A large legacy log at L0 can warn once per line; the first ones say what is going on.
    for line in lines[:_MAX_WARNINGS]:
        print(f"{name}: warning: {line}", file=sys.stderr)
    if len(lines) > _MAX_WARNINGS:
        print(f"{name}: warning: ... and {len(lines) - _MAX_WARNINGS} more", file=sys.stderr)


def _report(args: argparse.Namespace, doc: dict[str, object], lines: list[str]) -> int:
    """Print a command's result: ``doc`` as one JSON line with --format:json, else ``lines``."""
    if getattr(args, "format", "text") == "json":
        print(json.dumps(doc))
    else:
        for line in lines:
            print(line)
    return 0


def _add_registry(parser: Parser) -> None:
    parser.add_argument("--registry", help=f"registry log (default: PKG_REGISTRY, config, "
                                           f"{DEFAULT_REGISTRY})")


def _add_level(parser: Parser) -> None:
    parser.add_argument("--level", help="security level L0|L1|L2 (default: PKG_LEVEL, config, L1)")
    parser.add_argument("--config", help="cheng-pkg-config.toml to read")


def _config(args: argparse.Namespace) -> Config:
    from cheng_build.trust.config import load_config

    if getattr(args, "config", None):
        input_file(args.config, "--config", optional=True)  # a FIFO would block the read
    cfg = load_config({"level": getattr(args, "level", None),
                       "registry": getattr(args, "registry", None)},
                      config_path=getattr(args, "config", None))
    # A directory or FIFO here would fail deep inside (or block a read forever).
    input_file(cfg.registry, "--registry", optional=True)
    return cfg


_CHANNEL_HELP = "release channel: edge, stable or lts"
_T = "cheng-registry"
# Examples shown under each subcommand's --help (``cheng-pkg publish`` shares publish's).
_EXAMPLES: dict[str, str] = {
    "keygen": f"{_T} keygen --out:~/.cheng/alice.key --author:alice",
    "publish": f"{_T} publish --package:pkg://cheng/json --channel:stable --epoch:3 \\\n"
               "      --src:./json --priv:~/.cheng/alice.key --version:1.2.0\n"
               f"{_T} publish --package:pkg://cheng/json --channel:edge --epoch:4 \\\n"
               "      --file:json.tar --format:tar --priv:env:CHENG_KEY",
    "resolve": f"{_T} resolve --package:pkg://cheng/json --channel:stable\n"
               f"{_T} resolve --package:pkg://cheng/json --channel:edge --format:json",
    "verify": f"{_T} verify --registry:build/cheng_registry/registry.jsonl\n"
              f"{_T} verify --level:L2 --pkg-cache:chengcache --package:pkg://cheng/json",
    "checkpoint": f"{_T} checkpoint --priv:operator.key --ttl:86400",
    "prove": f"{_T} prove --line:42 --out:line42.proof.json",
    "verify-proof": f"{_T} verify-proof line42.proof.json --operator-key:ed25519:<base64>",
    "rotate-key": f"{_T} rotate-key --package:pkg://cheng/json --priv:old.key --new:new.key",
    "register-key": f"{_T} register-key --package:pkg://cheng/json --priv:alice.key",
    "revoke-key": f"{_T} revoke-key --priv:stolen.key\n"
                  f"{_T} revoke-key --package:pkg://cheng/json --priv:current.key --key:old.key",
}


def register(name: str, parser: Parser) -> None:
    """Add the flags of subcommand ``name``."""
    if name in _EXAMPLES:
        tool = parser.prog.split()[0]  # cheng-pkg publish shows cheng-pkg in its examples
        parser.epilog = ("examples:\n  " + _EXAMPLES[name].replace(_T, tool).replace("\n", "\n  ")
                         + "\n\nExit 0 ok, 1 a check failed, 2 bad usage or missing input.")
    if name == "keygen":
        parser.add_argument("--out", required=True, help="key file to write (JSON, mode 0600)")
        parser.add_argument("--author", default="", help="author id recorded in the key file")
        parser.add_argument("--force", action="store_true", help="overwrite an existing file")
        add_format_flag(parser)
    elif name == "publish":
        parser.add_argument("--package", required=True, help="package id, pkg://cheng/<name>")
        parser.add_argument("--author", help="author id (default: the key file's)")
        parser.add_argument("--channel", required=True, choices=["edge", "stable", "lts"],
                            help=_CHANNEL_HELP)
        parser.add_argument("--epoch", required=True, type=_nonneg_int,
                            help="release number; strictly above the channel's current one")
        parser.add_argument("--version", help="SemVer of this release (enables the API check)")
        src = parser.add_mutually_exclusive_group(required=True)
        src.add_argument("--src", help="package directory (holding cheng-package.toml)")
        src.add_argument("--file", help="one file (e.g. an existing archive with --format:tar)")
        parser.add_argument("--priv", required=True, help="signing key: key file or env:VAR")
        parser.add_argument("--format", default="dag", choices=["dag", "tar", "source"],
                            help="snapshot format: dag (UnixFS, default), tar, or source")
        parser.add_argument("--source-addr", action="append", default=[],
                            help="multiaddr serving a --format:source snapshot (repeatable)")
        add_pkg_cache_flag(parser, "package cache the snapshot goes to "
                                   "(default: PKG_CACHE, ./chengcache)")
        parser.add_argument("--parent", action="append", default=[],
                            help="merge parent: an earlier snapshot CID of this package "
                                 "(repeatable)")
        _add_registry(parser)
    elif name == "resolve":
        parser.add_argument("--package", required=True, help="package id, pkg://cheng/<name>")
        parser.add_argument("--channel", required=True, choices=["edge", "stable", "lts"],
                            help=_CHANNEL_HELP)
        parser.add_argument("--format", default="toml", choices=["toml", "yaml", "json"],
                            help="output format (default: toml)")
        _add_registry(parser)
        _add_level(parser)
    elif name == "verify":
        parser.add_argument("--package", help="also print this package's head")
        parser.add_argument("--channel", choices=["edge", "stable", "lts"],
                            help="channel of --package (default: edge)")
        add_pkg_cache_flag(parser, "also check every snapshot in this package cache hashes to "
                                   "its signed CID")
        parser.add_argument("--no-remember", action="store_true",
                            help="neither consult nor update the remembered checkpoint")
        _add_registry(parser)
        _add_level(parser)
        add_format_flag(parser)
    elif name == "checkpoint":
        parser.add_argument("--priv", required=True, help="the operator's key file or env:VAR")
        parser.add_argument("--ttl", type=_pos_int, help="seconds until it expires (default: config, 7 days)")
        parser.add_argument("--operator-id", help="operator id (default: the key file's author_id)")
        _add_registry(parser)
        parser.add_argument("--config", help="cheng-pkg-config.toml to read")
        add_format_flag(parser)
    elif name == "prove":
        parser.add_argument("--line", required=True, type=_pos_int, help="line number (1-based)")
        parser.add_argument("--out", help="write the proof here instead of stdout")
        _add_registry(parser)
    elif name == "verify-proof":
        parser.add_argument("proof_file", nargs="?", help="proof file (or --proof:)")
        parser.add_argument("--proof", help="proof file")
        parser.add_argument("--operator-key", help="require this operator key (ed25519:... or key file)")
        add_format_flag(parser)
    elif name == "rotate-key":
        parser.add_argument("--package", required=True, help="the namespace, pkg://cheng/<name>")
        parser.add_argument("--priv", required=True, help="the namespace's current key (file or env:VAR)")
        parser.add_argument("--new", required=True, help="new key: key file or ed25519:<base64 public key>")
        _add_registry(parser)
        add_format_flag(parser)
    elif name == "register-key":
        parser.add_argument("--package", required=True, help="pkg://cheng/<name> to claim")
        parser.add_argument("--priv", required=True, help="the key that will own it (file or env:VAR)")
        _add_registry(parser)
        add_format_flag(parser)
    elif name == "revoke-key":
        parser.add_argument("--priv", required=True, help="the key itself, or the namespace's current key")
        parser.add_argument("--key", help="key to revoke (default: the --priv key itself)")
        parser.add_argument("--package", help="namespace whose current key signs the revocation")
        _add_registry(parser)
        add_format_flag(parser)
    else:
        raise RuntimeError(f"registry_cmds: no subcommand {name}")


def _nonneg_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative")
    if n > MAX_INT64:
        raise argparse.ArgumentTypeError(f"{text} is above the largest allowed, 2**63-1")
    return n


def _pos_int(text: str) -> int:
    n = _nonneg_int(text)
    if n == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def run(name: str, args: argparse.Namespace) -> int:
    """Run subcommand ``name``; returns the exit code."""
    return int(_COMMANDS[name](name, args))


def _keygen(name: str, args: argparse.Namespace) -> int:
    from cheng_build.trust.keys import KeyPair, write_keyfile

    output_file(args.out, "--out")
    key = KeyPair.generate(args.author)
    write_keyfile(key, args.out, force=args.force)
    return _report(args, {"author_id": key.author_id, "pub_key": key.pub_key, "file": args.out},
                   [f"author_id: {key.author_id or '(none)'}", f"pub_key: {key.pub_key}",
                    f"wrote {args.out} (mode 0600)"])


def _publish(name: str, args: argparse.Namespace) -> int:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.core.paths import cache_dir
    from cheng_build.pkg.publish import publish
    from cheng_build.trust.keys import load_key

    if args.src is not None:
        input_dir(args.src, "--src")
    else:
        input_file(args.file, "--file")
    cache, flag = pkg_cache_arg(args)
    if cache:
        input_dir(cache, flag, optional=True)
    cfg = _config(args)
    key = load_key(args.priv, author_id=args.author)
    addrs = [a.strip() for v in args.source_addr for a in v.split(",") if a.strip()]
    store = Blockstore(cache_dir(cache))
    e = publish(registry=cfg.registry, key=key, package_id=args.package, channel=args.channel,
                epoch=args.epoch, src=args.src or args.file, author_id=args.author,
                format=args.format, source_addrs=addrs, version=args.version, store=store,
                parents=args.parent)
    from cheng_build.trust.audit import record

    record(cfg, "publish", ok=True, registry=str(cfg.registry), line=e.line,
           package_id=e.package_id, channel=e.channel, epoch=e.epoch, cid=e.cid)
    print(f"line: {e.line}")
    print(f"package: {e.package_id}@{e.channel} epoch={e.epoch} format={e.format}")
    if e.originality_score is not None:
        note = ""
        if e.data.get("similar_to"):
            note = (f" (high-similarity copy of {e.data['similar_to']}, line "
                    f"{e.data.get('similar_line')}, distance {e.data.get('similar_distance')})")
        print(f"originality: {e.originality_score}{note}")
    print(e.cid)
    return 0


def _verified_log(args: argparse.Namespace,
                  remember: bool = True) -> tuple[Config, RegistryLog, VerifyReport]:
    from cheng_build.core.errors import ChengError
    from cheng_build.trust.audit import record
    from cheng_build.trust.registry_log import RegistryLog

    cfg = _config(args)
    try:
        log = RegistryLog.load(cfg.registry, limits=cfg.limits, verify_ahead=True)
        report = log.verify(cfg, memory=remember)
    except ChengError as exc:
        record(cfg, "verify", ok=False, registry=str(cfg.registry), error=exc.what)
        raise
    cp = report.newest_checkpoint
    record(cfg, "verify", ok=True, registry=str(cfg.registry), lines=report.lines,
           checkpoint_line=cp.line if cp else None, checkpoint_root=cp.root if cp else None)
    return cfg, log, report


def _resolve(name: str, args: argparse.Namespace) -> int:
    from cheng_build.core.errors import NotFoundError
    from cheng_build.pkg.formats import dump_text

    _cfg, log, report = _verified_log(args)
    _warn(name, report.warnings)
    from cheng_build.trust.gov_view import Via, governance_of

    view = governance_of(log)  # a promotion may have moved the channel since its last publish
    pick = view.head(args.package, args.channel)
    if pick is None:
        raise NotFoundError(f"{args.package}@{args.channel} is not in the registry",
                            how="check the package id and channel (cheng-pkg search <name>)")
    head = pick.entry
    doc = {"package_id": head.package_id, "channel": head.channel, "epoch": head.epoch,
           "cid": head.cid, "format": head.format or "tar", "author_id": head.author_id}
    if pick.via is Via.PROMOTE:
        doc["promoted_to"] = args.channel
    q = view.quarantine(args.package, head.cid)
    if q is not None:
        doc["quarantined"] = f"{q.reason} (line {q.line})"
    for k in ("pub_key", "signature", "ast_simhash64", "originality_score", "parent", "version"):
        v = head.ast_simhash64 if k == "ast_simhash64" else head.data.get(k)
        if v is not None:
            doc[k] = v
    sys.stdout.write(dump_text(doc, args.format))
    return 0


def _verify(name: str, args: argparse.Namespace) -> int:
    cache, flag = pkg_cache_arg(args)
    if cache:
        input_dir(cache, flag)
    _cfg, log, report = _verified_log(args, remember=not args.no_remember)
    as_json = args.format == "json"
    doc: dict[str, object] = {"ok": True, "lines": report.lines, "publishes": report.publishes,
                              "checkpoints": report.checkpoints, "warnings": list(report.warnings)}
    if not as_json:
        _warn(name, report.warnings)
    if cache:
        checked, absent = _check_store(log, cache)
        doc["store"] = {"path": cache, "checked": checked, "absent": absent}
        if not as_json:
            # Say how much was checked: a --pkg-cache with none of the snapshots checks nothing.
            print(f"store: {checked} snapshot(s) hash to their signed CIDs; {absent} not in {cache}")
    if args.package:
        channel = args.channel or "edge"
        head = log.head(args.package, channel)
        if head is None:
            from cheng_build.core.errors import NotFoundError

            raise NotFoundError(f"{args.package}@{channel} is not in the registry")
        doc["head"] = {"package_id": head.package_id, "channel": channel, "epoch": head.epoch,
                       "cid": head.cid, "line": head.line}
        if not as_json:
            print(f"head: {head.package_id}@{channel} epoch={head.epoch} {head.cid} (line {head.line})")
    cp = report.newest_checkpoint
    if as_json:
        doc["newest_checkpoint"] = {"line": cp.line, "root": cp.root, "expires": cp.expires} if cp else None
        print(json.dumps(doc))
        return 0
    print(f"lines: {report.lines}, publishes: {report.publishes}, checkpoints: {report.checkpoints}"
          + (f", newest checkpoint line {cp.line} expires "
             f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(cp.expires))}" if cp else ""))
    print("ok")
    return 0


def _check_store(log: RegistryLog, cache: str) -> tuple[int, int]:
    """(snapshots that hash to their signed CIDs, snapshots not in ``cache``)."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import parse_cid
    from cheng_build.core.errors import ChengError, DigestMismatchError
    from cheng_build.pkg.snapshot import check_snapshot_content

    store = Blockstore(cache)
    checked = absent = 0
    for e in log.publishes():
        if e.cid is None or not store.has(parse_cid(e.cid)):
            absent += 1
            continue
        checked += 1
        try:
            check_snapshot_content(store, e.cid, e.format)
        except ChengError as exc:
            if isinstance(exc, DigestMismatchError):
                raise DigestMismatchError(
                    f"line {e.line}: content of {e.package_id} does not hash to its signed CID",
                    why=f"{exc.what}; {exc.why or ''}".strip("; "),
                    how="delete the bad block and fetch the snapshot again from a peer") from None
            raise
    return checked, absent


def _checkpoint(name: str, args: argparse.Namespace) -> int:
    from cheng_build.trust.keys import load_key
    from cheng_build.trust.registry_ops import append_checkpoint

    cfg = _config(args)
    if args.ttl is not None and args.ttl > cfg.limits.max_checkpoint_ttl_s:
        raise UsageError(f"--ttl:{args.ttl} is too long",
                         why=f"a checkpoint may be valid for at most {cfg.limits.max_checkpoint_ttl_s} s"
                         " (a stolen old one must expire)",
                         how=f"pass --ttl:<1..{cfg.limits.max_checkpoint_ttl_s}>")
    key = load_key(args.priv)
    if cfg.operator_key and key.pub_key != cfg.operator_key:
        raise UsageError("--priv is not the pinned operator key",
                         why=f"operator_key comes from {cfg.sources.get('operator_key')}")
    e = append_checkpoint(cfg.registry, key, ttl_s=args.ttl or cfg.checkpoint_ttl_s,
                          operator_id=args.operator_id)
    d = e.data
    return _report(args, {"line": e.line, "size": d["size"], "expires": d["expires"], "root": d["root"]},
                   [f"line: {e.line}", f"size: {d['size']}",
                    f"expires: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(d['expires']))}",
                    d["root"]])


def _prove(name: str, args: argparse.Namespace) -> int:
    from cheng_build.core.atomic import atomic_write_text
    from cheng_build.trust.registry_ops import prove

    if args.out:
        output_file(args.out, "--out")
    cfg = _config(args)
    text = json.dumps(prove(cfg.registry, args.line), indent=1) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _verify_proof(name: str, args: argparse.Namespace) -> int:
    from cheng_build.trust.keys import load_public_key
    from cheng_build.trust.registry_ops import load_proof, verify_proof

    path = args.proof or args.proof_file
    if not path:
        raise UsageError("missing --proof:<file>",
                         how="pass the proof file: verify-proof <file> or --proof:<file>")
    if args.proof and args.proof_file and args.proof != args.proof_file:
        raise UsageError("two different proof files given",
                         why=f"{args.proof_file} and --proof:{args.proof}", how="pass one")
    input_file(path, "--proof")
    want = load_public_key(args.operator_key) if args.operator_key else None
    res = verify_proof(load_proof(path), operator_key=want)
    return _report(args, {"ok": True, "line": res.line, "size": res.size, "root": res.root,
                          "operator_id": res.operator_id, "pub_key": res.pub_key},
                   [f"line {res.line} is in the log of {res.size} lines with root {res.root}",
                    f"checkpoint signed by {res.operator_id} ({res.pub_key})", "ok"])


def _rotate(name: str, args: argparse.Namespace) -> int:
    from cheng_build.trust.keys import load_key, load_public_key
    from cheng_build.trust.registry_ops import rotate_key

    cfg = _config(args)
    e = rotate_key(cfg.registry, load_key(args.priv), args.package, load_public_key(args.new))
    return _report(args, {"line": e.line, "package_id": args.package, "pub_key": e.data["new_pub_key"]},
                   [f"line: {e.line}", f"{args.package} now signed by {e.data['new_pub_key']}"])


def _register(name: str, args: argparse.Namespace) -> int:
    from cheng_build.pkg.publish import check_package_id
    from cheng_build.trust.keys import load_key
    from cheng_build.trust.registry_ops import register_namespace

    check_package_id(args.package)
    cfg = _config(args)
    e = register_namespace(cfg.registry, load_key(args.priv), args.package)
    return _report(args, {"line": e.line, "package_id": args.package, "author_id": e.author_id,
                          "pub_key": e.pub_key},
                   [f"line: {e.line}", f"{args.package} owned by {e.author_id} ({e.pub_key})"])


def _revoke(name: str, args: argparse.Namespace) -> int:
    from cheng_build.trust.keys import load_key, load_public_key
    from cheng_build.trust.registry_ops import revoke_key

    cfg = _config(args)
    target = load_public_key(args.key) if args.key else None
    e = revoke_key(cfg.registry, load_key(args.priv), target, package_id=args.package)
    return _report(args, {"line": e.line, "revoked_key": e.data["revoked_key"]},
                   [f"line: {e.line}", f"revoked {e.data['revoked_key']}"])


_COMMANDS = {
    "keygen": _keygen, "publish": _publish, "resolve": _resolve, "verify": _verify,
    "checkpoint": _checkpoint, "prove": _prove, "verify-proof": _verify_proof,
    "rotate-key": _rotate, "revoke-key": _revoke, "register-key": _register,
}

