"""The flags that let a person step around governance checks, and their confirmation prompt.

``--allow-quarantined`` (resolve, verify, fetch, chengc): use a snapshot the registry operator
quarantined. Refused at L2; on a terminal it asks for a typed ``yes`` first (a script, with no
terminal, has said so by passing the flag). Every use is warned about.

``--allow-unsigned`` (resolve, verify, chengc): development mode for unsigned (``local:``)
snapshots, only at L0 (:mod:`cheng_build.pkg.unsigned`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from cheng_build.cli.args import Parser


def add_allow_quarantined(parser: Parser) -> None:
    """Add ``--allow-quarantined``."""
    parser.add_argument("--allow-quarantined", action="store_true",
                        help="use quarantined snapshots anyway (asks on a terminal; refused at L2)")


def add_allow_unsigned(parser: Parser) -> None:
    """Add ``--allow-unsigned``."""
    parser.add_argument("--allow-unsigned", action="store_true",
                        help="development mode: accept unsigned (local:) snapshots; L0 only, "
                             "warns on every use, marks the lock so L1/L2 refuse it")


def tty_confirm(command: str) -> Callable[[str], bool] | None:
    """A typed-``yes`` prompt on the terminal, or None when stdin/stderr is not a terminal."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None

    def ask(what: str) -> bool:
        print(f"{command}: these snapshots are quarantined:\n{what}", file=sys.stderr)
        print(f"{command}: type 'yes' to use them anyway: ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower() == "yes"

    return ask
