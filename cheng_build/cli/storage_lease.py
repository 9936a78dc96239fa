"""cheng-storage lease / leasegen: record a lease; write a signed lease token."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.cli.storage_common import add_common_flags, config_from_args, money_arg
from cheng_build.core.errors import EXIT_OK, UsageError
from cheng_build.storage.config import StorageConfig


def register(name: str, parser: Parser) -> None:
    add_common_flags(parser, p2p=name == "lease")
    add_format_flag(parser)
    parser.add_argument("--package", default=None, help="the package paying (pkg://...)")
    parser.add_argument("--author", default=None, help="the author (royalty goes here), e.g. node:alice")
    parser.add_argument("--provider", default=None, help="the storage provider, e.g. node:store-1")
    parser.add_argument("--bytes", type=int, default=0, help="bytes leased (default: the size of --file)")
    parser.add_argument("--file", default=None, help="content to lease: sets --bytes and binds the CID")
    parser.add_argument("--cid", default=None, help="bind the lease to this content CID")
    parser.add_argument("--days", type=int, default=30, help="duration in days (default 30)")
    parser.add_argument("--replicas", type=int, default=1, help="replicas (default 1)")
    parser.add_argument("--price", type=money_arg("--price"), default=0,
                        help="price per GiB-month, in units (e.g. 0.25)")
    parser.add_argument("--royalty", type=money_arg("--royalty"), default=0,
                        help="royalty rate to the author (e.g. 0.12)")
    parser.add_argument("--treasury", type=money_arg("--treasury"), default=0,
                        help="treasury rate (e.g. 0.03)")
    parser.add_argument("--expires-in", type=int, default=None,
                        help="seconds until the lease ends (default: --days)")
    if name == "leasegen":
        parser.description = (
            "Write a signed lease token (v2: Ed25519 over every field, the content CID, an expiry "
            "and a nonce). The key (--priv) must be registered in the registry to the author or "
            "the provider; 'put --lease:<token>' checks it, and each token pays for one write.")
        parser.add_argument("--priv", required=False, default=None,
                            help="the signer's key file (cheng-registry keygen), or env:VAR")
        parser.add_argument("--out", default=None,
                            help="where to write the token (default: <root>/lease-token.json)")
        parser.add_argument("--token-version", type=int, choices=[1, 2], default=2,
                            help="2 (default) or 1: the original's format, for old peers and tests")
    else:
        parser.description = (
            "Record a lease event in the ledger (cost split in integer nano-units) and, with "
            "--cid/--file, pin the content until the lease ends. Prints 'lease ok: <lease id>'.")
        parser.add_argument("--epoch", type=int, default=None,
                            help="the event's epoch (default: the ledger's current epoch)")
        parser.add_argument("--legacy-ids", action="store_true",
                            help="the original's lease id (CID of the fields; collides in one second)")


def _need(args: argparse.Namespace) -> None:
    missing = [f"--{k}" for k in ("package", "author", "provider") if not getattr(args, k)]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")
    if args.days <= 0:
        args.days = 30  # the original normalised <= 0 to the default
    if args.replicas <= 0:
        args.replicas = 1
    if args.expires_in is not None and args.expires_in <= 0:
        raise UsageError("--expires-in must be positive")


def _content(args: argparse.Namespace) -> tuple[int, str]:
    """(bytes, cid) from --bytes/--file/--cid."""
    nbytes, cid = args.bytes, ""
    if args.file:
        from cheng_build.cas.cid import cid_str
        from cheng_build.cas.importer import import_path

        res = import_path(None, Path(args.file))
        cid = cid_str(res.root)
        if nbytes <= 0:
            nbytes = res.bytes
    if args.cid:
        from cheng_build.storage.store import parse_cid_ref

        given = str(parse_cid_ref(args.cid).cid)
        if cid and given != cid:
            raise UsageError(f"--cid {given} is not the CID of --file ({cid})")
        cid = given
    if nbytes <= 0:
        raise UsageError("missing --bytes", how="give --bytes:<n> or --file:<path>")
    return nbytes, cid


def run(name: str, args: argparse.Namespace) -> int:
    _need(args)
    cfg = config_from_args(args)
    return _leasegen(cfg, args) if name == "leasegen" else _lease(cfg, args)


def _leasegen(cfg: StorageConfig, args: argparse.Namespace) -> int:
    from cheng_build.core.atomic import atomic_write_text
    from cheng_build.ledger.money import NANO
    from cheng_build.storage.token import issue, issue_v1, token_json
    from cheng_build.trust.keys import load_key

    if not args.priv:
        raise UsageError("missing --priv", how="pass the signer's key file: --priv:<key.json>")
    nbytes, cid = _content(args)
    key = load_key(args.priv)
    now = int(time.time())
    out = Path(args.out) if args.out else cfg.root / "lease-token.json"
    if args.token_version == 1:
        tok = issue_v1(key, package_id=args.package, author_id=args.author,
                       provider_id=args.provider, nbytes=nbytes, duration_days=args.days,
                       replicas=args.replicas, price_per_gb_month=args.price / NANO,
                       royalty_rate=args.royalty / NANO, treasury_rate=args.treasury / NANO, now=now)
        text = json.dumps(tok, separators=(",", ":"))
        lease_id = str(tok["lease_id"])
    else:
        t = issue(key, package_id=args.package, author_id=args.author, provider_id=args.provider,
                  nbytes=nbytes, duration_days=args.days, replicas=args.replicas,
                  price_per_gb_month=args.price, royalty_rate=args.royalty,
                  treasury_rate=args.treasury, now=now, cid=cid,
                  expires_ts=now + args.expires_in if args.expires_in else None)
        text = token_json(t).rstrip("\n")
        lease_id = t.lease_id
    atomic_write_text(out, text, mode=0o600)
    if args.format == "json":
        print(json.dumps({"out": str(out), "lease_id": lease_id, "version": args.token_version}))
    else:
        print(f"leasegen ok: {out}")
        print(f"lease_id: {lease_id}")
    return EXIT_OK


def _lease(cfg: StorageConfig, args: argparse.Namespace) -> int:
    from cheng_build.storage.lease_ops import record_lease

    nbytes, cid = _content(args)
    res = record_lease(cfg, package_id=args.package, author_id=args.author, provider_id=args.provider,
                       nbytes=nbytes, duration_days=args.days, replicas=args.replicas,
                       price_per_gb_month=args.price, royalty_rate=args.royalty,
                       treasury_rate=args.treasury, cid=cid, now=int(time.time()),
                       epoch=args.epoch, expires_in=args.expires_in, legacy_ids=args.legacy_ids)
    if args.format == "json":
        print(json.dumps({"lease_id": res.lease_id, "status": res.status, "event": res.event}))
    else:
        print(f"lease ok: {res.lease_id}")
        if res.status:
            print(f"status: {res.status}")
    return EXIT_OK
