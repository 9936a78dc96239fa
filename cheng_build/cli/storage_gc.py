"""cheng-storage gc: delete blocks that no unexpired lease or pin reaches."""

from __future__ import annotations

import argparse
import json

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.cli.storage_common import add_common_flags, config_from_args
from cheng_build.core.errors import EXIT_OK


def register(name: str, parser: Parser) -> None:
    add_common_flags(parser)
    add_format_flag(parser)
    parser.description = (
        "Mark every block reachable from an unexpired lease or an explicit pin, then delete the "
        "rest. Leases past their end are reported (and marked expired) before their blocks go. "
        "Safe to kill at any moment: the next run finishes the sweep.")
    parser.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    parser.add_argument("--now", type=int, default=None,
                        help="judge expiry at this unix time (default: now)")


def run(name: str, args: argparse.Namespace) -> int:
    from cheng_build.storage.gc import collect
    from cheng_build.storage.store import open_root

    cfg = config_from_args(args)
    rep = collect(cfg.root, open_root(cfg.root), now=args.now, dry_run=args.dry_run)
    if args.format == "json":
        print(json.dumps({
            "expired": [{"lease_id": r.lease_id, "cid": r.cid, "expires_ts": r.expires_ts}
                        for r in rep.expired],
            "roots": rep.roots, "live_blocks": rep.live_blocks, "kept": rep.kept,
            "removed": rep.removed, "bytes_freed": rep.bytes_freed, "stale_temps": rep.stale_temps,
            "resumed": rep.resumed, "dry_run": rep.dry_run}))
        return EXIT_OK
    if rep.resumed:
        print("gc: resuming an interrupted sweep")
    for r in rep.expired:
        print(f"expired: {r.lease_id} {r.cid} (ended {r.expires_ts})")
    verb = "would remove" if rep.dry_run else "removed"
    print(f"gc ok: {rep.roots} roots, kept {rep.kept} blocks, {verb} {rep.removed} "
          f"({rep.bytes_freed} bytes)")
    return EXIT_OK
