"""cheng-storage verify-ledger: check the ledger's lines and hash chain."""

from __future__ import annotations

import argparse
import json

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.cli.storage_common import add_common_flags, config_from_args
from cheng_build.core.errors import EXIT_CHECK_FAILED, EXIT_OK, ChengError
from cheng_build.ledger.log import repair_torn_tail, verify_ledger


def register(name: str, parser: Parser) -> None:
    add_common_flags(parser)
    add_format_flag(parser)
    parser.description = (
        "Check every line of the ledger: valid JSON events, the seq/prev hash chain (an edited, "
        "removed, inserted or reordered line breaks it), unique ids, integer money. Lines the "
        "original tool wrote (no chain) are accepted before the chain starts.\n"
        "Exit 0 when sound, 1 with the problems listed.")
    parser.add_argument("--repair", action="store_true",
                        help="cut a torn last line (a writer killed mid-line) before checking")


def _verify(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    path = cfg.ledger_path
    cut = repair_torn_tail(path) if args.repair else 0
    rep = verify_ledger(path)
    if args.format == "json":
        print(json.dumps({
            "ledger": str(path), "ok": rep.ok, "events": rep.events, "legacy": rep.legacy,
            "chained": rep.chained, "head": rep.head, "repaired_bytes": cut,
            "problems": [{"line": p.line, "what": p.what} for p in rep.problems],
            "problem_count": rep.problem_count,
        }, ensure_ascii=False))
        return EXIT_OK if rep.ok else EXIT_CHECK_FAILED
    if not rep.ok:
        first = rep.problems[0]
        raise ChengError(
            f"{path}: line {first.line}: {first.what}",
            why="\n".join(f"line {p.line}: {p.what}" for p in rep.problems[1:10])
                + (f"\n... {rep.problem_count - 10} more" if rep.problem_count > 10 else "") or None,
            how="a torn tail can be cut with --repair; an edited line cannot be repaired: restore "
                "the ledger from a copy whose head matches the recorded one")
    if cut:
        print(f"repaired: cut {cut} bytes of a torn last line")
    print(f"ledger ok: {rep.events} events ({rep.chained} chained, {rep.legacy} legacy), "
          f"head {rep.head}")
    return EXIT_OK


def run(name: str, args: argparse.Namespace) -> int:
    return _verify(args)
