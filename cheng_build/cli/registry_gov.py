"""``cheng-registry`` governance subcommands: tag, maintainer, promote, quarantine, release,
appeal, decide, propose-quarantine. Thin wrappers over :mod:`cheng_build.trust.gov_ops`.

Each verifies the log at the configured level first (the one gate every consumer passes), then
appends one signed line; the append checks the same rules under the log's lock. Operator
commands refuse a key other than the pinned ``operator_key`` before signing anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cheng_build.cli.args import Parser, add_pkg_cache_flag, pkg_cache_arg
from cheng_build.cli.input_checks import input_dir, input_file
from cheng_build.core.errors import UsageError

if TYPE_CHECKING:
    from cheng_build.trust.config import Config
    from cheng_build.trust.keys import KeyPair

_T = "cheng-registry"
_P = "pkg://cheng/json"
_EXAMPLES: dict[str, str] = {
    "tag": f"{_T} tag --package:{_P} --cid:bafy... --tag:v1.2.0 --priv:alice.key",
    "maintainer": f"{_T} maintainer --key:bob.pub --id:bob --channel:stable --channel:lts \\\n"
                  f"      --package:{_P} --priv:operator.key\n"
                  f"{_T} maintainer --remove --key:bob.pub --id:bob --priv:operator.key",
    "promote": f"{_T} promote --package:{_P} --cid:bafy... --to:stable --priv:bob.key",
    "quarantine": f"{_T} quarantine --package:{_P} --cid:bafy... --reason:'audit: fraud' "
                  "--priv:operator.key",
    "release": f"{_T} release --package:{_P} --cid:bafy... --reason:'re-checked at 3x' "
               "--priv:operator.key",
    "appeal": f"{_T} appeal --package:{_P} --cid:bafy... --report:diff-report.md --priv:alice.key",
    "decide": f"{_T} decide --package:{_P} --cid:bafy... --outcome:restore --score:0.8 \\\n"
              "      --reason:'independent implementation' --priv:operator.key",
    "propose-quarantine": f"{_T} propose-quarantine --ledger:ledger.jsonl --report:fraud-1a2b "
                          "--out:proposal.json\n"
                          f"{_T} propose-quarantine --fraud:fraud-record.json --out:proposal.json\n"
                          f"{_T} quarantine --proposal:proposal.json --priv:operator.key",
}
_CHANNELS = ["edge", "stable", "lts"]


def _common(parser: Parser, *, cid: bool = True, required: bool = True) -> None:
    if cid:
        parser.add_argument("--package", required=required, help="package id, pkg://cheng/<name>")
        parser.add_argument("--cid", required=required, help="the snapshot (a CID it published)")
    parser.add_argument("--priv", required=True, help="signing key: key file or env:VAR")
    parser.add_argument("--registry", help="registry log (default: PKG_REGISTRY, config, ...)")
    parser.add_argument("--level", help="level the log is verified at first (default: L1)")
    parser.add_argument("--config", help="cheng-pkg-config.toml to read")
    parser.add_argument("--format", default="text", choices=["text", "json"],
                        help="output format (default: text)")


def register(name: str, parser: Parser) -> None:
    """Add the flags of subcommand ``name``."""
    parser.epilog = ("examples:\n  " + _EXAMPLES[name].replace("\n", "\n  ")
                     + "\n\nExit 0 ok, 1 refused by a rule or the log failed to verify, "
                       "2 bad usage or missing input.")
    if name == "tag":
        _common(parser)
        parser.add_argument("--tag", required=True, help="tag name, e.g. v1.2.0 (never reused)")
    elif name == "maintainer":
        parser.add_argument("--key", required=True,
                            help="the maintainer's public key: ed25519:<base64> or a key file")
        parser.add_argument("--id", required=True, help="the maintainer's id (shown in refusals)")
        parser.add_argument("--channel", action="append", default=[], choices=_CHANNELS,
                            help="a channel it may move (repeatable)")
        parser.add_argument("--remove", action="store_true", help="take its grant away")
        parser.add_argument("--package", action="append", default=[],
                            help="a package it may move (repeatable; pkg://ns/* covers a prefix)")
        _common(parser, cid=False)
    elif name == "promote":
        _common(parser)
        parser.add_argument("--to", required=True, choices=_CHANNELS, help="channel to move")
        add_pkg_cache_flag(parser, "package cache holding the releases' API tables, for the "
                                   "SemVer API check (default: PKG_CACHE, ./chengcache)")
    elif name in ("quarantine", "release"):
        parser.add_argument("--proposal", help="a propose-quarantine file (fills the fields)"
                            if name == "quarantine" else argparse.SUPPRESS)
        _common(parser, required=name == "release")
        parser.add_argument("--reason", required=name == "release",
                            help="why (shown to everyone who resolves it)")
    elif name == "appeal":
        _common(parser)
        parser.add_argument("--report", required=True,
                            help="the difference report (stored in the CAS; its CID is signed)")
        add_pkg_cache_flag(parser, "package cache the report goes to (default: PKG_CACHE, "
                                   "./chengcache)")
    elif name == "decide":
        _common(parser)
        parser.add_argument("--outcome", required=True, choices=["restore", "confirm"],
                            help="restore the score, or confirm it")
        parser.add_argument("--score", type=float, help="the restored originality score (restore)")
        parser.add_argument("--reason", required=True, help="the committee's reasoning")
    elif name == "propose-quarantine":
        parser.add_argument("--fraud", help="a fraud record file (JSON with package_id, cid or "
                                            "code_cid, reason, report_id)")
        parser.add_argument("--ledger", help="a compute ledger holding the fraud report")
        parser.add_argument("--report", help="the fraud report's report_id (with --ledger)")
        parser.add_argument("--out", help="write the proposal here (default: stdout)")
    else:
        raise RuntimeError(f"registry_gov: no subcommand {name}")


def run(name: str, args: argparse.Namespace) -> int:
    """Run subcommand ``name``; returns the exit code."""
    if name == "propose-quarantine":
        return _propose(args)
    from cheng_build.trust import gov_ops
    from cheng_build.trust.keys import load_key

    cfg = _verified(name, args)
    key = load_key(args.priv)
    reg = cfg.registry
    if name in ("maintainer", "quarantine", "release", "decide"):
        _need_operator(cfg, key)
    if name == "tag":
        e = gov_ops.tag(reg, key, args.package, args.cid, args.tag)
    elif name == "maintainer":
        pkgs = args.package or []
        if not args.remove and (not pkgs or not args.channel):
            raise UsageError("a grant needs --channel and --package",
                             how="name each channel and package it may move (repeatable)")
        from cheng_build.trust.keys import load_public_key

        e = gov_ops.grant_maintainer(reg, key, load_public_key(args.key), args.id, args.channel,
                                     pkgs, remove=args.remove)
    elif name == "promote":
        from cheng_build.cas.blockstore import Blockstore
        from cheng_build.core.paths import cache_dir
        from cheng_build.pkg.governance import check_promotion_api
        from cheng_build.trust.registry_log import RegistryLog

        cache, flag = pkg_cache_arg(args)
        if cache:
            input_dir(cache, flag, optional=True)
        check_promotion_api(RegistryLog.load(reg, limits=cfg.limits), args.package, args.cid,
                            args.to, Blockstore(cache_dir(cache)))
        e = gov_ops.promote(reg, key, args.package, args.cid, args.to)
    elif name in ("quarantine", "release"):
        package, cid, reason, source = _quarantine_fields(name, args)
        e = gov_ops.quarantine(reg, key, package, cid, reason, release=name == "release",
                               source=source)
    elif name == "appeal":
        e = gov_ops.appeal(reg, key, args.package, args.cid, _store_report(args))
    else:
        if args.outcome == "restore" and args.score is None:
            raise UsageError("--outcome:restore needs --score:<0.0-1.0>")
        if args.outcome == "confirm" and args.score is not None:
            raise UsageError("--outcome:confirm takes no --score")
        if args.score is not None and not 0.0 <= args.score <= 1.0:
            raise UsageError(f"--score:{args.score} is not within 0.0-1.0")
        e = gov_ops.decide(reg, key, args.package, args.cid, args.outcome, args.reason, args.score)
    from cheng_build.trust.audit import record

    record(cfg, name, ok=True, registry=str(reg), line=e.line, **{
        k: e.data[k] for k in ("package_id", "cid") if k in e.data})
    _print(args, e.line, {k: v for k, v in e.data.items()
                          if k not in ("seq", "prev", "signature", "created_ts")})
    return 0


def _print(args: argparse.Namespace, line: int, fields: dict[str, Any]) -> None:
    if args.format == "json":
        print(json.dumps({"line": line, **fields}, indent=1))
        return
    print(f"line: {line}")
    for k, v in fields.items():
        if k != "pub_key":
            print(f"{k}: {', '.join(v) if isinstance(v, list) else v}")
    print("ok")


def _verified(name: str, args: argparse.Namespace) -> Config:
    """The config, after the log verified at its level (a broken log gets no new line)."""
    from cheng_build.trust.config import load_config
    from cheng_build.trust.trusted import load_trusted_registry

    if args.config:
        input_file(args.config, "--config", optional=True)
    cfg = load_config({"level": args.level, "registry": args.registry}, config_path=args.config)
    input_file(cfg.registry, "--registry", optional=True)
    trusted = load_trusted_registry(cfg.registry, cfg)
    for w in trusted.warnings:
        print(f"{name}: warning: {w}", file=sys.stderr)
    return cfg


def _need_operator(cfg: Config, key: KeyPair) -> None:
    if cfg.operator_key and key.pub_key != cfg.operator_key:
        raise UsageError("--priv is not the pinned operator key",
                         why=f"operator_key comes from {cfg.sources.get('operator_key')}; only "
                             "the operator signs maintainer, quarantine, release and decision "
                             "lines")


def _quarantine_fields(name: str, args: argparse.Namespace) -> tuple[str, str, str, str | None]:
    source = None
    package, cid, reason = args.package, args.cid, args.reason
    if getattr(args, "proposal", None):
        input_file(args.proposal, "--proposal")
        from cheng_build.pkg.quarantine_proposal import load_proposal

        prop = load_proposal(args.proposal)
        package, cid = package or prop.package_id, cid or prop.cid
        reason, source = reason or prop.reason, prop.source
        if (package, cid) != (prop.package_id, prop.cid):
            raise UsageError("--package/--cid disagree with the proposal",
                             how="drop them: the proposal names the snapshot")
    if not package or not cid or not reason:
        raise UsageError(f"{name} needs --package, --cid and --reason (or --proposal:<file>)")
    return package, cid, reason, source


def _store_report(args: argparse.Namespace) -> str:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.importer import add_bytes
    from cheng_build.core.paths import cache_dir

    input_file(args.report, "--report")
    cache, flag = pkg_cache_arg(args)
    if cache:
        input_dir(cache, flag, optional=True)
    with open(args.report, "rb") as fh:
        data = fh.read()
    if not data.strip():
        raise UsageError("--report is empty", how="describe how this snapshot differs from the "
                                                  "package it was judged a copy of")
    return str(add_bytes(Blockstore(cache_dir(cache)), data, pin=True))


def _propose(args: argparse.Namespace) -> int:
    from cheng_build.core.atomic import atomic_write_text
    from cheng_build.pkg.quarantine_proposal import propose_from_fraud, propose_from_ledger

    if bool(args.fraud) == bool(args.ledger):
        raise UsageError("pass --fraud:<record.json>, or --ledger:<ledger> with --report:<id>")
    if args.ledger:
        if not args.report:
            raise UsageError("--ledger needs --report:<report_id>")
        input_file(args.ledger, "--ledger")
        prop = propose_from_ledger(args.ledger, args.report)
    else:
        input_file(args.fraud, "--fraud")
        prop = propose_from_fraud(args.fraud)
    text = json.dumps(prop.as_dict(), indent=1) + "\n"
    if args.out:
        from cheng_build.cli.input_checks import output_file

        output_file(args.out, "--out")
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}: quarantine {prop.package_id} {prop.cid} ({prop.reason})")
        print(f"next: {_T} quarantine --proposal:{args.out} --priv:<operator key>")
    else:
        sys.stdout.write(text)
    return 0
