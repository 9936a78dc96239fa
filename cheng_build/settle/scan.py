"""One streaming pass over ``ledger.jsonl``: parse, check the hash chain, feed the accumulator.

The file is read line by line (memory does not grow with its length). Each line must be complete
(ending in a newline: otherwise a write was torn) and a JSON object with a ``type``. Lines our
ledger writes carry ``seq`` and ``prev`` (:mod:`cheng_build.ledger.log`): ``prev`` must be the
sha256 of the line before and ``seq`` its 0-based index, so an edited, removed, inserted,
duplicated or reordered line stops the pass at the first line whose link breaks. The original's
unchained lines may only come before the chain starts. The hash of the last line (the *head*) is
returned, so an export can pin exactly the ledger it settled.

Settling one epoch of a long ledger, a chained line of another epoch is not parsed at all: its
hash is still taken and its ``seq``/``prev`` (always the last two keys our writer puts on a line)
and its top-level ``epoch`` are read from the bytes. That is safe because the chain covers the
line's bytes (a line our writer wrote is valid JSON; any edit breaks the next line's ``prev``), and
it is only taken when the bytes are unambiguous: exactly one ``"epoch":`` key, no nested object,
an integer epoch, the chain fields in their place; anything else is parsed as usual.

Parsing uses orjson (about twice as fast as the standard library on these lines); a line orjson
refuses goes through the ledger's own tolerant parser, which accepts what the original wrote
(raw control characters inside strings, bytes that are not UTF-8).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cheng_build.ledger.log import GENESIS, parse_line
from cheng_build.ledger.log import LedgerError as _BaseLedgerError
from cheng_build.settle.errors import LedgerLineError

_HOW = "see every problem with 'cheng-storage verify-ledger'"


@dataclass(slots=True)
class ScanReport:
    """What the pass saw of the whole file (every epoch)."""

    lines: int = 0
    events: int = 0
    legacy: int = 0  # the original's unchained lines
    chained: int = 0
    head: str = GENESIS  # sha256 of the last line's bytes
    skipped: int = 0  # chained lines of other epochs, hashed and chain-checked, not parsed


def _loads() -> tuple[Callable[[bytes], Any], type[Exception]]:
    import orjson

    return orjson.loads, orjson.JSONDecodeError


_PREV_KEY = b',"prev":"'
_SEQ_KEY = b',"seq":'
_EPOCH_KEY = b'"epoch":'


def _other_epoch(body: bytes, epoch: int, expected: bytes, n: int) -> bool:
    """True when ``body`` is a well-placed chained line of another epoch than ``epoch``.

    Our writer ends every chained line with ``,"seq":N,"prev":"<64 hex>"}`` (75 bytes for prev),
    so these are fixed-position slices, not a parse. Any doubt returns False (full parse).
    """
    if body[-66:-2] != expected or body[-75:-66] != _PREV_KEY:
        return False  # a broken link or another shape: the full path reports it
    j = body.rfind(_SEQ_KEY, -100)
    if j < 0 or body[j + 7:-75] != b"%d" % (n - 1):
        return False
    i = body.find(_EPOCH_KEY)
    if i < 0 or body.find(_EPOCH_KEY, i + 8) >= 0 or body.count(b"{") != 1:
        return False
    k = body.find(b",", i + 8)
    try:
        return int(body[i + 8:k]) != epoch
    except ValueError:
        return False  # 1.0, null, ...: the full path reads it


def scan(path: str | os.PathLike[str], feed: Callable[[dict[str, Any], int], None], *,
         epoch: int = -1) -> ScanReport:
    """Read every line of the ledger at ``path`` and call ``feed(event, line)`` for each event.

    ``epoch`` >= 0 lets chained lines of other epochs skip the parse (``feed`` filters anyway).

    Raises:
        LedgerLineError: a torn, unparsable or typeless line; a broken chain.
        OSError: the file cannot be read.
    """
    loads, decode_error = _loads()
    sha256 = hashlib.sha256
    rep = ScanReport()
    expected = GENESIS
    skip = epoch >= 0
    chained = False
    n = legacy = linked = skipped = 0
    with open(path, "rb", buffering=1 << 20) as fh:
        for raw in fh:
            n += 1
            if raw[-1] != 10:  # b"\n"
                raise LedgerLineError(
                    "torn: the last line has no newline", line=n,
                    why="a write was cut off (crash, full disk) or the file was truncated",
                    how="'cheng-storage verify-ledger --repair' cuts a torn tail; settle again "
                        "after")
            body = raw[:-1]
            digest = sha256(body).hexdigest()
            if chained and skip and _other_epoch(body, epoch, expected.encode(), n):
                linked += 1
                skipped += 1
                expected = digest
                continue
            try:
                ev = loads(body)
            except decode_error:
                ev = _tolerant(body, n, chained)
                if ev is None:  # a blank line before the chain: the original skipped those
                    expected = digest
                    continue
            if type(ev) is not dict:
                raise LedgerLineError("not a JSON object", line=n, how=_HOW)
            kind = ev.get("type")
            if type(kind) is not str or not kind:
                raise LedgerLineError("event without a 'type'", line=n, how=_HOW)
            prev = ev.get("prev")
            if prev is not None or "seq" in ev:
                chained = True
                if prev != expected:
                    raise LedgerLineError(
                        f"chain broken: prev does not match line {n - 1}", line=n,
                        why=f"line {n - 1} (or this one) was edited, removed, duplicated or "
                            "moved",
                        how=_HOW)
                if ev.get("seq") != n - 1:
                    raise LedgerLineError(
                        f"seq is {ev.get('seq')!r}, expected {n - 1}", line=n,
                        why="a line was removed or inserted before it", how=_HOW)
                linked += 1
            elif chained:
                raise LedgerLineError("unchained line after the chain started", line=n,
                                      why="it was inserted by hand or by another tool", how=_HOW)
            else:
                legacy += 1
            expected = digest
            feed(ev, n)
    rep.lines = n
    rep.chained, rep.legacy, rep.skipped = linked, legacy, skipped
    rep.events = linked + legacy
    rep.head = expected
    return rep


def _tolerant(body: bytes, n: int, chained: bool) -> dict[str, Any] | None:
    """The ledger's forgiving parse of a line orjson refused; ``None`` for a skippable blank."""
    if not body.strip():
        if chained:
            raise LedgerLineError("blank line inside the hash chain", line=n,
                                  why="our writer never writes one: the file was edited", how=_HOW)
        return None
    try:
        return parse_line(body)
    except _BaseLedgerError as exc:
        raise LedgerLineError(exc.what, line=n, why=exc.why or "the line was edited, corrupted, or "
                              "two writes interleaved", how=_HOW) from None


__all__ = ["ScanReport", "scan"]
