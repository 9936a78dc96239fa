"""``ledger.jsonl``: the append-only, hash-chained event log, its writer, reader and checker.

On-disk format
--------------

UTF-8 text, one event per line, each line a compact JSON object (no spaces) ending in ``\\n``:

- ``type`` first, then the event's keys in the original tool's order (reference §1.3-§1.8; see
  :data:`cheng_build.ledger.events.EVENT_KEYS`), then any keys the original did not have, then, in
  default mode, two chain keys last:

  - ``seq``: the 0-based index of this line in the file;
  - ``prev``: lowercase hex sha256 of the previous line's exact bytes (without its ``\\n``), or 64
    zeros for the first line of the file.

  Editing, removing, inserting or reordering a line breaks the ``prev`` of the line after it;
  :func:`verify_ledger` reports where. The last line is only covered once its hash (the *head*,
  :attr:`LedgerReport.head`) is recorded somewhere else, e.g. in a settlement batch.
- Every event has an id in its type's id field (``lease_id``, ``usage_id``, ``request_id``,
  ``receipt_id``, ``audit_id``, ``sample_id``, ``report_id``, ``proof_id``; ``id`` for other
  types). When the caller leaves it empty the writer fills ``<prefix>-<CIDv1>`` of the event with
  its ``seq`` and ``prev`` (:mod:`cheng_build.ledger.ids`): unique within the ledger by
  construction, unlike the original's length ids.
- Money fields of a chained line are integer nano-units (:mod:`cheng_build.ledger.money`).
- Lines without ``seq``/``prev`` are the original's (or written with ``chain=False``): they are read
  as they are, money as floats. A file may start with such lines (a ledger the original wrote, then
  continued by us); once a chained line appears, every later line must be chained.

Writing: one writer at a time holds an exclusive ``flock`` on ``ledger.jsonl.lock``; the line is
written with one ``write`` on an ``O_APPEND`` descriptor and ``fsync``\\ ed; any failure truncates
the file back to its previous length, so a reader never sees half an event from a live writer. A
writer killed mid-``write`` can still leave a torn last line: the next append refuses to chain onto
it (``verify-ledger --repair`` cuts it), and readers report it.

Reading: :func:`iter_events` streams events. It accepts what the original wrote: blank lines and
surrounding whitespace are skipped, raw control characters inside strings are allowed, bytes that
are not UTF-8 pass through (surrogate-escaped). A line that is not a JSON object raises
:class:`LedgerError` (the original silently skipped it; ``skip_bad=True`` does that).

(Over 400 lines on purpose: the writer, the reader and the checker of one on-disk format,
documented once at the top.)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cheng_build.core.atomic import append_or_roll_back, file_lock
from cheng_build.core.errors import IntegrityError
from cheng_build.ledger.events import MONEY_FIELDS, id_field, ordered
from cheng_build.ledger.ids import new_id

GENESIS = "0" * 64
_TAIL_CHUNK = 1 << 16
_MAX_PROBLEMS = 100


class LedgerError(IntegrityError):
    """The ledger is malformed, torn or tampered with, or an event cannot be written."""


def line_hash(line: bytes) -> str:
    """The chain hash of one line's bytes (without its newline)."""
    return hashlib.sha256(line).hexdigest()


def encode_event(event: dict[str, object]) -> bytes:
    """One ledger line (without newline): compact JSON, keys in the given order.

    Raises:
        ValueError: a float is NaN or infinite, or a value is not JSON-serialisable.
    """
    try:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except TypeError as exc:
        raise ValueError(f"ledger event is not JSON-serialisable: {exc}") from None
    return text.encode("utf-8", "surrogateescape")


def parse_line(raw: bytes) -> dict[str, object]:
    """Parse one ledger line (surrounding whitespace allowed) into an event.

    Raises:
        LedgerError: not a JSON object with a string ``type``.
    """
    text = raw.strip().decode("utf-8", "surrogateescape")
    try:
        obj = json.loads(text, strict=False)
    except (ValueError, RecursionError):
        raise LedgerError("not a JSON object", why=f"the line reads {text[:60]!r}") from None
    if not isinstance(obj, dict):
        raise LedgerError("not a JSON object", why=f"the line holds a JSON {type(obj).__name__}")
    if not isinstance(obj.get("type"), str) or not obj["type"]:
        raise LedgerError("event without a 'type'", why=f"the line reads {text[:60]!r}")
    return obj


def _read_tail(fd: int, size: int) -> tuple[bytes | None, bool]:
    """``(last complete line, torn)`` of the file open at ``fd`` (``None`` when empty)."""
    if size == 0:
        return None, False
    last = os.pread(fd, 1, size - 1)
    torn = last != b"\n"
    end = size if torn else size - 1  # the line ends here (exclusive)
    buf = b""
    pos = end
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        cut = buf.rfind(b"\n")
        if cut >= 0:
            return buf[cut + 1:], torn
    return buf, torn


def _count_lines(fd: int, size: int) -> int:
    count = 0
    pos = 0
    while pos < size:
        chunk = os.pread(fd, 1 << 20, pos)
        if not chunk:
            break
        count += chunk.count(b"\n")
        pos += len(chunk)
    return count


def _check_money(event: dict[str, object]) -> None:
    for key in MONEY_FIELDS.get(str(event.get("type")), ()):
        value = event.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise TypeError(f"{event.get('type')}.{key} must be integer nano-units in a chained "
                            f"ledger, got {value!r}")


class Ledger:
    """Appends events to one ``ledger.jsonl`` (see the module doc for the format).

    Args:
        path: the ledger file; its directory is created on the first append.
        chain: write ``seq``/``prev`` and integer money (default). ``False`` writes lines as the
            original did (no chain, money as given), for compat tests and tools.
    """

    def __init__(self, path: Path, *, chain: bool = True) -> None:
        self.path = Path(path)
        self.chain = chain

    def append(self, event: dict[str, object], *,
               guard: Callable[[], None] | None = None) -> dict[str, object]:
        """Write one event durably and return it as written (id filled, chain fields added).

        ``guard`` runs under the writers' lock just before the write; whatever it raises aborts
        the append with nothing written (a check-then-write that no other writer can slip
        between, e.g. "this lease id is not in the ledger yet").

        Raises:
            LedgerError: the ledger ends in a torn line (a writer died mid-line).
            TypeError: the event has no ``type`` or (chained) a money field is not an int.
            OSError: the disk refused the write (the file is left as it was).
        """
        return self.append_many([event], guard=guard)[0]

    def append_many(self, events: Iterable[dict[str, object]], *,
                    guard: Callable[[], None] | None = None) -> list[dict[str, object]]:
        """Write several events under one lock and one fsync; all or none of them land."""
        todo = [dict(e) for e in events]
        for e in todo:
            if not isinstance(e.get("type"), str) or not e["type"]:
                raise TypeError("a ledger event needs a non-empty string 'type'")
            e.pop("seq", None)
            e.pop("prev", None)
            if self.chain:
                _check_money(e)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        written: list[dict[str, object]] = []
        with file_lock(self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                last, torn = _read_tail(fd, size)
                if torn:
                    raise LedgerError(
                        f"{self.path} ends in a torn line",
                        why="a writer was killed in the middle of a line; nothing can be chained "
                            "onto it",
                        how="run 'cheng-storage verify-ledger --repair' to cut the torn tail")
                if guard is not None:
                    guard()
                seq, prev = self._position(fd, size, last)
                blob = bytearray()
                for e in todo:
                    key, prefix = id_field(str(e["type"]))
                    if not e.get(key):
                        e[key] = new_id(prefix, e, seq=seq, prev=prev)
                    if self.chain:
                        e["seq"] = seq
                        e["prev"] = prev
                    out = ordered(e)
                    line = encode_event(out)
                    blob += line + b"\n"
                    written.append(out)
                    prev = line_hash(line)
                    seq += 1
                append_or_roll_back(fd, size, bytes(blob))
            finally:
                os.close(fd)
        return written

    @staticmethod
    def _position(fd: int, size: int, last: bytes | None) -> tuple[int, str]:
        """``(seq, prev)`` for the next line."""
        if last is None:
            return 0, GENESIS
        prev = line_hash(last)
        try:
            seq = parse_line(last).get("seq")
        except LedgerError:
            seq = None
        if isinstance(seq, int) and not isinstance(seq, bool):
            return seq + 1, prev
        return _count_lines(fd, size), prev  # a legacy tail: count once


def _iter_raw(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(1-based line number, bytes without newline, has newline)`` for every line."""
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if raw.endswith(b"\n"):
                yield n, raw[:-1], True
            else:
                yield n, raw, False


def iter_events(path: Path, *, skip_bad: bool = False) -> Iterator[dict[str, object]]:
    """Stream every event of a ledger, original-written or ours (see the module doc).

    A missing file reads as an empty ledger (a fresh root has written nothing yet).

    Raises:
        LedgerError: a line is not a JSON event (unless ``skip_bad``); the message names the line.
    """
    path = Path(path)
    if not path.exists():
        return
    for n, raw, _ in _iter_raw(path):
        if not raw.strip():
            continue
        try:
            yield parse_line(raw)
        except LedgerError as exc:
            if skip_bad:
                continue
            raise LedgerError(f"{path}: line {n}: {exc.what}", why=exc.why,
                              how="run 'cheng-storage verify-ledger' to check the whole file") from None


def latest_epoch(path: Path) -> int:
    """The highest ``epoch`` any event of the ledger carries (0 for none): the *current* epoch.

    Events that default their epoch (``lease`` in fixed mode, ``proof``, ...) use this, so a new
    event lands in the epoch the ledger is in, not in the original's 0 or -1. Unreadable lines are
    skipped here (``verify-ledger`` reports them).
    """
    best = 0
    for event in iter_events(path, skip_bad=True):
        epoch = event.get("epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch > best:
            best = epoch
    return best


@dataclass(frozen=True, slots=True)
class LedgerProblem:
    """One thing wrong with a ledger, at a 1-based line."""

    line: int
    what: str


@dataclass(slots=True)
class LedgerReport:
    """What :func:`verify_ledger` found.

    ``legacy`` counts unchained lines before the chain starts (the original's); ``head`` is the
    hash of the last line, the value to record elsewhere to cover it too.
    """

    path: Path
    events: int = 0
    legacy: int = 0
    chained: int = 0
    head: str = GENESIS
    torn: bool = False
    problems: list[LedgerProblem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def _add(self, line: int, what: str) -> None:
        self.problem_count += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(LedgerProblem(line, what))


def verify_ledger(path: Path) -> LedgerReport:
    """Check every line of a ledger: JSON, the ``seq``/``prev`` chain, ids, integer money.

    Never raises for a bad ledger (problems are in the report); ``OSError`` if unreadable.
    """
    path = Path(path)
    report = LedgerReport(path=path)
    if not path.exists():
        return report
    expected_prev = GENESIS
    chain_started = False
    ids: set[str] = set()
    for n, raw, has_nl in _iter_raw(path):
        this_hash = line_hash(raw)
        if not has_nl:
            report.torn = True
            report._add(n, "torn last line (no newline): a writer died mid-line; "
                           "'verify-ledger --repair' cuts it")
            break
        if not raw.strip() and not chain_started:
            expected_prev = this_hash  # the original's reader skips blank lines; so do we
            continue
        try:
            event = parse_line(raw)
        except LedgerError as exc:
            report._add(n, f"{exc.what}" + (f" ({exc.why})" if exc.why else ""))
            expected_prev = this_hash
            continue
        report.events += 1
        if "prev" in event or "seq" in event:
            chain_started = True
            report.chained += 1
            if event.get("seq") != n - 1:
                report._add(n, f"seq is {event.get('seq')!r}, expected {n - 1} (a line was "
                               "removed or inserted before it)")
            if event.get("prev") != expected_prev:
                report._add(n, "chain broken: prev does not match the line before "
                               f"(line {n - 1} was edited, removed or reordered)")
            for key in MONEY_FIELDS.get(str(event["type"]), ()):
                v = event.get(key)
                if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                    report._add(n, f"{key} is {v!r}, not integer nano-units")
            key, _ = id_field(str(event["type"]))
            ident = event.get(key)
            if isinstance(ident, str) and ident:
                if ident in ids:
                    report._add(n, f"duplicate {key} {ident}")
                ids.add(ident)
            else:
                report._add(n, f"missing {key}")
        elif chain_started:
            report._add(n, "unchained line after the chain started (inserted, or written by "
                           "another tool)")
        else:
            report.legacy += 1
        expected_prev = this_hash
        report.head = this_hash
    return report


def repair_torn_tail(path: Path) -> int:
    """Cut a torn last line (under the writers' lock); return how many bytes were removed."""
    path = Path(path)
    if not path.exists():
        return 0
    with file_lock(path):
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            last, torn = _read_tail(fd, size)
            if not torn or last is None:
                return 0
            os.ftruncate(fd, size - len(last))
            os.fsync(fd)
            return len(last)
        finally:
            os.close(fd)


__all__ = [
    "GENESIS", "Ledger", "LedgerError", "LedgerProblem", "LedgerReport", "encode_event",
    "iter_events", "latest_epoch", "line_hash", "parse_line", "repair_torn_tail", "verify_ledger",
]
