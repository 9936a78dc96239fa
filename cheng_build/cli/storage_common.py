"""Flags every ``cheng-storage`` subcommand shares, and the config they resolve to.

Every group (storage, compute, settle) calls :func:`add_common_flags` in its ``register`` and
:func:`config_from_args` in its ``run``, so ``--root/--mode/--ledger`` and the ``IO_*`` variables
mean the same everywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from cheng_build.cli.args import Parser
from cheng_build.core.errors import UsageError
from cheng_build.ledger.money import MoneyError, to_nano
from cheng_build.storage.config import DEFAULT_ROOT, StorageConfig, resolve

ENV_HELP = ("environment: IO_ROOT, IO_MODE, IO_LEDGER, IO_LISTEN, IO_PEERS (space- or comma-"
            "separated multiaddrs), IO_REQUIRE_LEASE=1 (p2p writes need a lease)")


def add_common_flags(parser: Parser, *, p2p: bool = False) -> None:
    """``--root``, ``--mode``, ``--ledger``; with ``p2p`` also ``--listen`` and ``--peer``."""
    g = parser.add_argument_group("storage root", ENV_HELP)
    g.add_argument("--root", default=None,
                   help=f"storage root directory (default: $IO_ROOT or {DEFAULT_ROOT})")
    g.add_argument("--mode", default=None, choices=["local", "p2p"],
                   help="local: this root only; p2p: also peers (default: $IO_MODE or local)")
    g.add_argument("--ledger", default=None,
                   help="ledger file (default: $IO_LEDGER or <root>/ledger.jsonl)")
    if p2p:
        g.add_argument("--listen", default=None, help="multiaddr to listen on (default: $IO_LISTEN)")
        g.add_argument("--peer", action="append", default=None, metavar="MULTIADDR",
                       help="a peer to read from (repeatable; default: $IO_PEERS)")


def config_from_args(args: argparse.Namespace) -> StorageConfig:
    """Resolve the flags of :func:`add_common_flags` over the ``IO_*`` environment."""
    return resolve(root=args.root, mode=args.mode, ledger=args.ledger,
                   listen=getattr(args, "listen", None), peers=getattr(args, "peer", None))


def money_arg(flag: str) -> Callable[[str], int]:
    """An argparse ``type`` turning a decimal amount (``0.25``, ``2e-5``) into nano-units."""

    def convert(text: str) -> int:
        try:
            return to_nano(text, what=flag)
        except MoneyError as exc:
            raise UsageError(exc.what, how=f"give {flag} as a decimal number, e.g. 0.25") from None

    convert.__name__ = flag.lstrip("-")
    return convert
