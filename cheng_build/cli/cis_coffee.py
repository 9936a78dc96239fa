"""``cis coffee --room:<url>``: coffee mode. Check the network, queue run events while it is weak
or gone, deliver them to the room when it is back (see cheng_build/cis/coffee.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from cheng_build.cli.args import Parser
from cheng_build.core.errors import UsageError


def register(name: str, parser: Parser) -> None:
    """Add ``cis coffee``'s flags."""
    parser.add_argument("--room", required=True, help="where events go: http://host:port/path")
    parser.add_argument("--peers", default=None,
                        help="comma-separated peers to measure too (default: PKG_PEERS / config)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between checks")
    parser.add_argument("--weak-ms", type=float, default=500.0, help="slower than this is weak")
    parser.add_argument("--once", action="store_true", help="one check and sync, then exit")
    parser.add_argument("--format", choices=["text", "json"], default="text")


def run(name: str, args: argparse.Namespace) -> int:
    """Loop (or once): exit 0; with --once, exit 1 when events stay queued."""
    from cheng_build.cis import coffee
    from cheng_build.cis.run import control

    peers = [p.strip() for p in (args.peers or "").split(",") if p.strip()]
    if args.peers is None:
        from cheng_build.trust.config import load_config

        peers = [str(p) for p in (load_config({}).peers or ())]
    targets = [args.room, *peers]
    for t in targets:
        coffee.parse_target(t)  # bad addresses are a usage error before anything runs
    if args.interval <= 0 or args.weak_ms <= 0:
        raise UsageError("--interval and --weak-ms must be positive")
    store = control.open_store()
    outbox = coffee.Outbox(store.home)
    send = coffee.http_sender(args.room)
    last = None
    try:
        while True:
            r = coffee.sync_once(store, outbox, targets, send, weak_ms=args.weak_ms)
            line = (f"network {r.status.state.value}: {r.status.detail}; queued {r.queued}, "
                    f"sent {r.sent}" + (f"; {r.error}" if r.error else ""))
            if args.format == "json":
                print(json.dumps({"state": r.status.state.value, "rtt_ms": r.status.rtt_ms,
                                  "detail": r.status.detail, "collected": r.collected,
                                  "sent": r.sent, "queued": r.queued, "error": r.error}), flush=True)
            elif line != last or r.sent:
                print(f"coffee: {line}", flush=True)
                last = line
            if args.once:
                return 0 if r.queued == 0 else 1
            time.sleep(args.interval)
    except KeyboardInterrupt:
        print("coffee: stopped", file=sys.stderr)
        return 0
    finally:
        outbox.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m cheng_build.cli.cis_coffee ...`` until ``cis coffee`` has its row in cli/cis.py."""
    from cheng_build.cli.app import Subcommand, dispatch

    table = {"coffee": Subcommand(__name__, "coffee mode: queue events offline, sync when back")}
    return dispatch("cis", "coffee mode", table, ["coffee", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
