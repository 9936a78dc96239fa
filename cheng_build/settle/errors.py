"""Errors of settlement and the RWAD bridge (integrity failures: exit 1)."""

from __future__ import annotations

from cheng_build.core.errors import IntegrityError
from cheng_build.ledger.log import LedgerError


class LedgerLineError(LedgerError):
    """A ledger line is torn, not JSON, malformed, out of its chain, or repeats an id."""

    def __init__(self, what: str, *, line: int | None = None, why: str | None = None,
                 how: str | None = None) -> None:
        where = f"ledger line {line}: " if line is not None else "ledger: "
        super().__init__(where + what, why=why, how=how)
        self.line = line


class BridgeError(IntegrityError):
    """An RWAD result, batch or ack does not agree with what was asked or exported."""


__all__ = ["BridgeError", "LedgerLineError"]
