"""Settle one epoch of a ledger: the library entry point behind ``cheng-storage settle``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cheng_build.settle import document, reconcile, render, scan
from cheng_build.settle.accumulate import Accumulator, Mode, Totals
from cheng_build.settle.reconcile_csv import to_csv


@dataclass(frozen=True, slots=True)
class Settlement:
    """A finished settlement: the document, and what the pass saw."""

    doc: document.Doc
    totals: Totals
    reconcile: reconcile.Reconcile
    scan: scan.ScanReport
    top: int

    def render(self, fmt: str = "json") -> bytes:
        """The settlement as ``json`` (the bytes a batch hashes), ``toml`` or ``yaml``."""
        return render.render(self.doc, fmt)

    def csv(self) -> bytes:
        """The reconcile lists as the original's CSV, cut to ``top``."""
        return to_csv(self.reconcile, self.top)


def settle(path: str | os.PathLike[str], *, epoch: int = -1, mode: Mode = Mode.DEFAULT,
           top: int = 10) -> Settlement:
    """Settle ``epoch`` (-1: every epoch) of the ledger at ``path`` in one streaming pass.

    Raises:
        LedgerLineError: a torn, edited or malformed line, a broken chain, a repeated id or bad
            money (default mode).
        OSError: the ledger cannot be read.
    """
    if top < 0:
        raise ValueError("top must be >= 0")
    acc = Accumulator(epoch, mode)
    report = scan.scan(path, acc.feed, epoch=epoch)
    rec = reconcile.build(acc.totals.reconcile)
    doc = document.build(acc.totals, rec, top)
    return Settlement(doc=doc, totals=acc.totals, reconcile=rec, scan=report, top=top)


__all__ = ["Mode", "Settlement", "settle"]
