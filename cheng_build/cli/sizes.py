"""``--max-bytes:4GiB``-style sizes and the ``--max-bytes``/``--max-entries`` pair of flags shared
by every command that expands a DAG onto disk (``get``, ``checkout``)."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from cheng_build.cli.args import Parser
from cheng_build.core.errors import UsageError

if TYPE_CHECKING:
    from cheng_build.cas.exporter import ExportLimits

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 1000**2, "mb": 1000**2,
          "mib": 1 << 20, "g": 1000**3, "gb": 1000**3, "gib": 1 << 30, "t": 1000**4,
          "tb": 1000**4, "tib": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, flag: str) -> int:
    """``4GiB`` -> 4294967296; plain digits are bytes.

    Raises:
        UsageError: not a size.
    """
    m = _SIZE.match(text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise UsageError(f"{flag}: {text!r} is not a size",
                         how=f"write bytes or a size with a unit: {flag}:4GiB, {flag}:500MB")
    return int(m.group(1)) * _UNITS[unit]


def add_limit_flags(parser: Parser) -> None:
    """Add ``--max-bytes`` and ``--max-entries`` (defaults: the snapshot limits)."""
    parser.add_argument("--max-bytes", help="refuse a DAG that expands past this size "
                                            "(default 4GiB; units B, KiB, MiB, GiB, KB, MB, GB)")
    parser.add_argument("--max-entries", help="refuse a DAG with more files, folders and links "
                                              "than this (default 500000)")


def export_limits(args: argparse.Namespace) -> ExportLimits:
    """The :class:`~cheng_build.cas.exporter.ExportLimits` the flags ask for."""
    from cheng_build.cas.exporter import SNAPSHOT_LIMITS
    from cheng_build.core.record import replace

    lim = SNAPSHOT_LIMITS
    if getattr(args, "max_bytes", None):
        lim = replace(lim, max_bytes=parse_size(args.max_bytes, "--max-bytes"))
    if getattr(args, "max_entries", None):
        text = str(args.max_entries)
        if not text.isdigit():
            raise UsageError(f"--max-entries: {text!r} is not a whole number")
        lim = replace(lim, max_entries=int(text))
    return lim


__all__ = ["add_limit_flags", "export_limits", "parse_size"]
