"""Progress of a long import, reported through a callback (the library never prints).

The importer updates one :class:`ImportProgress` and calls the callback after each file and, for
large files, as hashing advances. The CLI turns it into a rich progress bar on a terminal only.
"""

from __future__ import annotations

from collections.abc import Callable

from cheng_build.core.record import dataclass

__all__ = ["ImportProgress", "ProgressCallback"]


@dataclass(slots=True)
class ImportProgress:
    """Counters of an import in flight (mutable on purpose: it is a running tally, not a value)."""

    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0


ProgressCallback = Callable[[ImportProgress], None]
