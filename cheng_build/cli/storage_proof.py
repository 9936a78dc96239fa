"""cheng-storage proof / store-repute: challenge a provider; summarise its proofs."""

from __future__ import annotations

import argparse
import json

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.cli.storage_common import add_common_flags, config_from_args, money_arg
from cheng_build.core.errors import EXIT_OK, ChengError, UsageError


def register(name: str, parser: Parser) -> None:
    add_common_flags(parser)
    if name == "proof":
        add_format_flag(parser)
        parser.description = (
            "Challenge a provider to prove it holds a CID's whole DAG: k leaves are chosen from a "
            "public seed and the root CID; the provider answers each leaf block with the dag-pb "
            "nodes above it, checked against the root CID alone. Records a storage_proof event "
            "(ok, or missing with a penalty) and exits 1 when the proof fails. Without --peer the "
            "local store is proven.")
        parser.add_argument("--cid", default=None, help="the root CID to prove")
        parser.add_argument("--provider", default=None, help="the provider's id, e.g. node:store-1")
        parser.add_argument("--peer", default=None, help="the provider's multiaddr (.../p2p/<id>)")
        parser.add_argument("--challenges", type=int, default=8, help="k leaves to challenge (default 8)")
        parser.add_argument("--seed", default=None,
                            help="public seed (default: the ledger's head hash)")
        parser.add_argument("--epoch", type=int, default=None,
                            help="the event's epoch (default: the ledger's current epoch)")
        parser.add_argument("--package", default="", help="the package the content belongs to")
        parser.add_argument("--note", default="", help="a note recorded with the event")
        parser.add_argument("--penalty", type=money_arg("--penalty"), default=100_000_000,
                            help="penalty recorded for a failed proof, in units (default 0.1)")
        parser.add_argument("--timeout", type=float, default=30.0,
                            help="seconds to wait for the provider's answer (default 30)")
    else:
        add_format_flag(parser, "json", "text", default="json")
        parser.description = ("A provider's storage-proof reputation over every epoch: the original's "
                              "ok/(ok+missing) score and level, plus a beta reputation with forgetting.")
        parser.add_argument("--provider", default=None, help="the provider's id")
        parser.add_argument("--lambda", dest="forgetting", type=float, default=0.95,
                            help="forgetting factor of the beta reputation (default 0.95)")
        parser.add_argument("--compat", action="store_true",
                            help="print exactly the original's keys")


def run(name: str, args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if not args.provider:
        raise UsageError("missing --provider")
    if name == "store-repute":
        from cheng_build.storage.repute import store_repute

        if not 0 < args.forgetting <= 1:
            raise UsageError("--lambda must be in (0, 1]")
        rep = store_repute(cfg.ledger_path, args.provider, forgetting=args.forgetting)
        d = rep.compat_dict() if args.compat else rep.to_dict()
        if args.format == "json":
            print(json.dumps(d, separators=(",", ":")))
        else:
            for k, v in d.items():
                print(f"{k}: {v}")
        return EXIT_OK
    from cheng_build.storage.proof_ops import run_proof

    if not args.cid:
        raise UsageError("missing --cid")
    if not 1 <= args.challenges <= 256:
        raise UsageError("--challenges must be 1..256")
    out = run_proof(cfg, cid=args.cid, provider_id=args.provider, peer=args.peer,
                    k=args.challenges, seed=args.seed.encode("utf-8") if args.seed is not None else None,
                    epoch=args.epoch, package_id=args.package, note=args.note, penalty=args.penalty,
                    timeout_s=args.timeout)
    v = out.verdict
    if args.format == "json":
        print(json.dumps({"ok": v.ok, "proof_id": out.event["proof_id"], "passed": v.passed,
                          "challenges": v.k, "reason": v.reason, "proof_hash": v.proof_hash}))
        return EXIT_OK if v.ok else 1
    if not v.ok:
        raise ChengError(f"proof failed: {v.reason}",
                         why=f"{v.passed} of {v.k} challenges passed; recorded {out.event['proof_id']} "
                             "with a penalty",
                         how="the provider must hold every block of the DAG")
    print(f"proof ok: {out.event['proof_id']}")
    return EXIT_OK
