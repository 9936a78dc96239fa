"""``cis web [--port:<n>]``: serve the 6767 layer (runs, debt board, decisions) on 127.0.0.1.

It prints a one-time login link: only the browser that opens it gets in (a task that can reach
127.0.0.1 cannot approve its own gate). With a Matrix connection (``--homeserver: --user:
--password-file:``, or ``CIS_MATRIX_*`` / ``matrix.toml`` as for ``cis node``), the confirm, skip
and cancel buttons of a run posted to a room send a room ``control`` event as that user, who must
be a member of the room (see docs/cisnodes.md)."""

from __future__ import annotations

import argparse
import sys

from cheng_build.cli.args import Parser
from cheng_build.core.errors import UsageError


def register(name: str, parser: Parser) -> None:
    """Add ``cis web``'s flags."""
    parser.add_argument("--port", type=int, default=6767,
                        help="port on 127.0.0.1 (default 6767; 0 = any free port)")
    from cheng_build.cli.cis_node import add_connection_flags

    # For runs posted to a Matrix room: their buttons post to the room as this (member) user.
    add_connection_flags(parser, room=False)


def run(name: str, args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; exit 0. A port in use is a usage error (exit 2)."""
    from cheng_build.cis.view.web import serve

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")

    decider = None
    from cheng_build.cli.cis_node import connection, has_connection, room_connector

    if has_connection(args):
        import os
        from pathlib import Path

        from cheng_build.cis.node.decide import RoomDecider

        conn = connection(args, need_room=False)
        home = Path(os.environ.get("CIS_HOME") or Path.home() / ".cis")
        decider = RoomDecider(home, room_connector(conn), who=f"{conn.homeserver} {conn.user}")

    def ready(login: str) -> None:
        base = login.split("login?", 1)[0]
        print(f"cis web: serving {base} (Ctrl-C stops)", flush=True)
        if decider is not None:
            print("cis web: decisions on room runs are posted to their room as "
                  f"{conn.user} on {conn.homeserver}", flush=True)
        print(f"cis web: open {login}", flush=True)
        print("  (a one-time link: it signs this browser in; keep it to yourself)", flush=True)

    try:
        serve(args.port, on_ready=ready, decider=decider)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}", why=exc.strerror or str(exc),
                         how="pick another port with --port:<n>") from None
    except KeyboardInterrupt:
        print("cis web: stopped", file=sys.stderr)
    return 0
