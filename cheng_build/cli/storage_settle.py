"""cheng-storage settle: one epoch's totals, payouts, trust and reconcile lists from the ledger."""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import TYPE_CHECKING

from cheng_build.cli.args import Parser
from cheng_build.cli.input_checks import input_file, output_file
from cheng_build.cli.storage_common import add_common_flags, config_from_args
from cheng_build.core.errors import EXIT_OK, InputError, UsageError

if TYPE_CHECKING:
    from cheng_build.settle.api import Settlement

_EXAMPLES = """examples:
  cheng-storage settle --epoch:1 --root:build/cheng_storage --format:json --top:10
  cheng-storage settle --epoch:1 --format:toml --out:build/cheng_storage/settlement-epoch-1.toml
  cheng-storage settle --epoch:1 --reconcile-csv:build/cheng_storage/reconcile-epoch-1.csv
  cheng-storage settle --compat --ledger:old/ledger.jsonl     # a ledger the original tool wrote"""


def register(name: str, parser: Parser) -> None:
    add_common_flags(parser)
    parser.description = (
        "Settle one epoch of the ledger in a single streaming pass: storage and compute totals, "
        "payouts to authors, providers and executors, penalties moved to the treasury, GPU "
        "pricing, sampling and trust counters, and the reconcile lists (requests without "
        "receipts, receipts without requests or usage, bad receipts, epoch mismatches).\n\n"
        "Money is integer nano-units (1e-9) by default, so the same ledger gives the same bytes "
        "on every machine; --compat reads and sums floats in file order as the original tool "
        "did (and orders table keys like it). A torn, edited or reordered line, a broken hash "
        "chain or (default mode) a repeated id stops the settlement: exit 1, nothing written.")
    parser.epilog = _EXAMPLES
    parser.add_argument("--epoch", type=int, default=-1,
                        help="the epoch to settle; -1 (the default) settles every epoch")
    parser.add_argument("--format", default="json", choices=["json", "toml", "yaml", "yml", ""],
                        help="output format (default json; an empty value means toml, as in the "
                             "original)")
    parser.add_argument("--top", type=int, default=10,
                        help="cut reconcile lists and the preview to N entries (counts are kept); "
                             "0 drops the preview (default 10)")
    parser.add_argument("--out", help="write the settlement here (atomically) instead of stdout")
    parser.add_argument("--reconcile-csv", dest="reconcile_csv",
                        help="also write the reconcile lists as CSV (the original's columns)")
    parser.add_argument("--compat", action="store_true",
                        help="the original's float money and table order (for its ledgers)")


def warnings(s: Settlement) -> list[str]:
    """What a settlement did not settle, one line each (printed on stderr)."""
    out: list[str] = []
    if s.totals.unknown_types:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(s.totals.unknown_types.items()))
        out.append(f"{sum(s.totals.unknown_types.values())} events of unknown types were counted, "
                   f"not settled ({kinds})")
    if s.totals.id_collisions:
        ids = ", ".join(f"{k}: {v}" for k, v in sorted(s.totals.id_collisions.items()))
        out.append(f"repeated ids merged as the original did ({ids}); the reconcile lists "
                   "count each id once")
    return out


def settle_from_args(args: argparse.Namespace) -> Settlement:
    """Check the flags, then settle (shared with ``cheng-rwad-bridge export``)."""
    from cheng_build.settle.api import Mode, settle

    if args.top < 0:
        raise UsageError(f"--top must be 0 or more, got {args.top}")
    if args.epoch < -1:
        raise UsageError(f"--epoch must be -1 (all) or a non-negative epoch, got {args.epoch}")
    ledger = config_from_args(args).ledger_path
    if not args.ledger and not ledger.exists():
        raise InputError(f"no ledger at {ledger}",
                         why="this storage root has recorded no events yet",
                         how="pass --root:<the storage root> or --ledger:<ledger.jsonl>")
    input_file(ledger, "--ledger")
    return settle(ledger, epoch=args.epoch, mode=Mode.COMPAT if args.compat else Mode.DEFAULT,
                  top=args.top)


def run(name: str, args: argparse.Namespace) -> int:
    from cheng_build.core.atomic import atomic_write_bytes

    fmt = args.format or "toml"
    for flag in ("out", "reconcile_csv"):
        if getattr(args, flag):
            output_file(getattr(args, flag), f"--{flag.replace('_', '-')}")
    s = settle_from_args(args)
    body = s.render(fmt)
    for line in warnings(s):
        print(f"{name}: warning: {line}", file=sys.stderr)
    if args.reconcile_csv:
        atomic_write_bytes(args.reconcile_csv, s.csv())
    if args.out:
        atomic_write_bytes(args.out, body)
        print(f"settle ok: {args.out} ({fmt}, sha256 {hashlib.sha256(body).hexdigest()})")
    else:
        sys.stdout.buffer.write(body if body.endswith(b"\n") else body + b"\n")
        sys.stdout.flush()
    return EXIT_OK
