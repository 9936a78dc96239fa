"""Argument parsing in the Cheng toolchain's style on top of argparse.

Every tool accepts ``--key:value`` (the Cheng toolchain's own style), ``--key=value`` and
``--key value``. We rewrite the first form to the second before argparse sees it, so argparse
keeps doing what it does well (help, types, choices) and we only change how it reports errors:
a usage error raises :class:`UsageError` instead of printing and exiting, so the one error
mapper in :mod:`cheng_build.cli.app` formats it like every other failure.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from cheng_build.core.errors import UsageError

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import NoReturn

# ``--key:value``: a long flag whose name is made of flag characters, then a colon. A value may
# itself contain colons and slashes (``--peers:/ip4/127.0.0.1/tcp/4001``); only the first colon
# splits. ``--key=value`` is left alone so a value like ``a:b`` after ``=`` is untouched.
_COLON_FLAG = re.compile(r"^(--[A-Za-z0-9][A-Za-z0-9_-]*):(.*)$", re.DOTALL)


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Rewrite ``--key:value`` tokens as ``--key=value``; everything after ``--`` is untouched."""
    out: list[str] = []
    passthrough = False
    for tok in argv:
        if passthrough:
            out.append(tok)
            continue
        if tok == "--":
            passthrough = True
            out.append(tok)
            continue
        m = _COLON_FLAG.match(tok)
        out.append(f"{m.group(1)}={m.group(2)}" if m else tok)
    return out


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns`` without importing shutil.

    argparse builds a help formatter on every ``add_argument`` (to check metavars), and the
    formatter imports shutil (and with it bz2, lzma, fnmatch) to ask the width: ~2-3 ms on every
    chengc start, which is spent only to print help. Same rule: ``COLUMNS``, else the terminal
    on stdout, else 80.
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         width if width is not None else _terminal_columns() - 2)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of exiting on bad usage."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        raise UsageError(
            message,
            how=f"run '{self.prog} --help' to see the accepted flags "
            "(written --key:value, --key=value or --key value)",
        )

    def parse_cheng(self, argv: Sequence[str]) -> argparse.Namespace:
        """Parse ``argv`` after normalising ``--key:value`` flags."""
        return self.parse_args(normalize_argv(argv))

    def parse_known_cheng(self, argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
        """Like :meth:`parse_cheng` but return unknown flags instead of failing on them."""
        return self.parse_known_args(normalize_argv(argv))


def add_format_flag(parser: argparse.ArgumentParser, *choices: str, default: str = "text") -> None:
    """Add the common ``--format`` flag (machine output with ``--format:json``)."""
    parser.add_argument(
        "--format",
        choices=list(choices) or ["text", "json"],
        default=default,
        help=f"output format (default: {default})",
    )


def add_pkg_cache_flag(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--pkg-cache`` (the seed's name, as ``PKG_CACHE``) and its older alias ``--store``.

    One name for one thing across every command; ``--store`` stays accepted so existing scripts
    keep working. Read the value back with :func:`pkg_cache_arg`.
    """
    parser.add_argument("--pkg-cache", metavar="DIR", help=help)
    parser.add_argument("--store", metavar="DIR", dest="store_alias",
                        help="the same as --pkg-cache (its older name)")


def pkg_cache_arg(args: argparse.Namespace) -> tuple[str | None, str]:
    """The ``--pkg-cache`` value (or its alias ``--store``) and the flag as the user wrote it.

    The flag name is for messages (``--store: x is not a directory`` names what was typed).
    Two different values are bad usage.
    """
    new = getattr(args, "pkg_cache", None)
    old = getattr(args, "store_alias", None)
    if new and old and new != old:
        raise UsageError("--pkg-cache and --store name two different caches",
                         why=f"--pkg-cache:{new} but --store:{old} (--store is another name for "
                             "--pkg-cache)",
                         how="pass only --pkg-cache:<dir>")
    if old and not new:
        return str(old), "--store"
    return (str(new) if new else None), "--pkg-cache"
