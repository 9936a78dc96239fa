"""What a publish computes from the package's files: the snapshot, the fingerprint, the API table.

The sources are read once (:func:`cheng_build.pkg.originality.source_files`) and handed to all
three: the snapshot takes the bytes already read instead of opening the files again.

The fingerprint and the API table are scanned in C (``_native.chengtok.scan_package``: both
scanners, every file, one call); cffi releases the GIL around the call, so the scan runs on a
second thread while this one cuts, hashes and stores the snapshot. On two cores that takes the
C scan (about a quarter of a publish's work after start-up) off the wall time. The Python around
it (which files, the table from the records, its JSON) runs on this thread, before and after:
Python on both threads would only pass the GIL back and forth. Nothing changes in the results:
the scan only reads the sources it is given, and the API table goes into the store from this
thread, after the snapshot, in the same batch (a batch is not shared between threads). Errors
come in the order they did without the thread: the snapshot's, then the scan's (a source that is
not UTF-8, the native library missing).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from cheng_build.core.record import dataclass
from cheng_build.pkg import originality
from cheng_build.pkg.snapshot import Snapshot, SnapshotFormat, make_snapshot

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

    from cheng_build.cas.blockstore import Batch, Blockstore
    from cheng_build.pkg.api import Symbol
    from cheng_build.pkg.originality import Fingerprint

__all__ = ["ApiInfo", "Content", "publish_content", "scan_sources", "store_api"]


@dataclass(frozen=True, slots=True)
class ApiInfo:
    """The public-symbol table of the snapshot being published."""

    digest: str
    table: dict[str, Any]
    cid: str | None  # where its JSON lives in the CAS, so the next release can diff against it


@dataclass(frozen=True, slots=True)
class Content:
    """A publish's snapshot, fingerprint (None: no tokens) and API table (None: not Cheng)."""

    snapshot: Snapshot
    fingerprint: Fingerprint | None
    api: ApiInfo | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """The files of one scan: (UTF-8 bytes, CB_SCAN_* bits) in order, and what to read back."""

    items: list[tuple[bytes, int]]
    api_order: list[str]  # the files given SCAN_API, in order: one list of records each
    modules: list[tuple[str, str | bytes]] | None  # the table's modules (None: not Cheng)


def _plan(src: Path, sources: Mapping[str, bytes]) -> _Plan:
    """What to hand ``chengtok.scan_package``: the fingerprint's files (:func:`originality.
    fingerprint`: every source, in path order, that is UTF-8 and not too large) and the API
    table's (:func:`api.extract_api_from_dir`), each file once with the bits of both.

    Raises:
        OriginalityError: the native scanner is missing.
        ApiError: a module is not UTF-8 or too large.
    """
    from cheng_build.pkg import api

    chengtok = originality.native_scanner()
    fp_files = {rel: data for rel in sorted(sources)
                if (data := originality.source_bytes(sources[rel])) is not None}
    modules: list[tuple[str, str | bytes]] | None = None
    if src.is_dir():
        modules = api.checked_modules(api.module_sources(src, sources))
    elif src.suffix == ".cheng":
        data = sources.get(src.name)
        modules = api.checked_modules({src.name: data if data is not None else src.read_bytes()})
    api_files = dict(modules or ())
    items: list[tuple[bytes, int]] = []
    api_order: list[str] = []
    for rel in sorted(fp_files.keys() | api_files.keys()):
        what = 0
        if rel in fp_files:
            what |= chengtok.SCAN_FINGERPRINT
        if rel in api_files:
            what |= chengtok.SCAN_API
            api_order.append(rel)
        raw = fp_files.get(rel)
        if raw is None:  # a module the fingerprint leaves out (str only in tests)
            text = api_files[rel]
            raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        elif rel in api_files and api_files[rel] is not sources.get(rel):
            # Read from disk again by the API walk (not among the sources): two files.
            items.append((raw, chengtok.SCAN_FINGERPRINT))
            what &= ~chengtok.SCAN_FINGERPRINT
            text = api_files[rel]
            raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        items.append((raw, what))
    return _Plan(items, api_order, modules)


_Scanned = tuple[tuple[int, int], list[list[tuple[str, str, str]]]]  # chengtok.scan_package's


def _finish(plan: _Plan, scanned: _Scanned
            ) -> tuple[Fingerprint | None, tuple[dict[str, Symbol], bytes] | None]:
    from cheng_build.pkg import api

    (fp, nfeat), decls = scanned
    fingerprint = originality.Fingerprint(fp, nfeat) if nfeat else None
    if plan.modules is None:
        return fingerprint, None
    by_rel = dict(zip(plan.api_order, decls, strict=True))
    table = api.table_of((rel, by_rel[rel]) for rel, _ in plan.modules)
    return fingerprint, (table, api.api_to_json(table).encode("utf-8"))


def scan_sources(src: Path, sources: Mapping[str, bytes]
                 ) -> tuple[Fingerprint | None, tuple[dict[str, Symbol], bytes] | None]:
    """The fingerprint of ``sources`` (:func:`originality.fingerprint`) and the API table of
    ``src`` with its canonical JSON (UTF-8; None for a single file that is not Cheng source),
    both scanners run over the files in one C call (``chengtok.scan_package``).

    Raises:
        OriginalityError: the native scanner is missing.
        ApiError: a module is not UTF-8 or too large.
    """
    plan = _plan(src, sources)
    return _finish(plan, originality.native_scanner().scan_package(plan.items))


def store_api(table: dict[str, Symbol], doc: bytes, store: Blockstore | None,
              into: Batch | None) -> ApiInfo:
    """Put the table's JSON ``doc`` into the store (when there is one): the release's ApiInfo."""
    from cheng_build.pkg import api

    cid = None
    if store is not None:
        from cheng_build.cas import importer
        from cheng_build.pkg.snapshot import SOURCE_CHUNKER

        # Content-defined chunks: the table is sorted JSON, and a release changes a few entries,
        # so most chunks are the previous release's (fixed 256 KiB chunks were all new each time).
        cid = str(importer.add_bytes(store, doc, chunker=SOURCE_CHUNKER, into=into))
    return ApiInfo(api.api_digest_of_json(doc), dict(table), cid)


class _Scan(threading.Thread):
    """``chengtok.scan_package`` of a plan on its own thread: one C call, GIL released."""

    def __init__(self, items: list[tuple[bytes, int]]) -> None:
        super().__init__(name="publish-scan", daemon=True)
        self.items = items
        self.scanned: _Scanned | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.scanned = originality.native_scanner().scan_package(self.items)
        except BaseException as exc:  # handed to the publishing thread, which raises it
            self.error = exc

    def result(self) -> _Scanned:
        self.join()
        if self.error is not None:
            raise self.error
        assert self.scanned is not None
        return self.scanned


def _cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def publish_content(store: Blockstore | None, src: Path, fmt: SnapshotFormat, *,
                    source_addrs: Sequence[str] = (), into: Batch | None = None) -> Content:
    """Snapshot ``src`` into ``store`` (``into``: its open batch) and scan its sources.

    Errors come in the order they always did: the snapshot's first, then the fingerprint's, then
    the API table's.

    Raises:
        InputError: ``src`` missing or unreadable; ApiError (one) for a source that is not
            UTF-8 or too large.
        OriginalityError: the native scanner is missing.
        StoreError: the store cannot be written.
    """
    try:
        sources = originality.source_files(src) if src.exists() else None
    except OSError:
        sources = None
    if sources is None:
        # Missing or unreadable: the snapshot names the problem (or, for a file it leaves out,
        # reading the sources after it does), as without the scan thread.
        snap = make_snapshot(store, src, fmt, source_addrs=source_addrs, into=into)
        sources = originality.source_files(src)
        fp, table = scan_sources(src, sources)
    else:
        try:
            plan = _plan(src, sources)
        except Exception:
            # A source the table refuses (or no scanner): the snapshot's own error comes
            # first, as it always did; else this one.
            make_snapshot(store, src, fmt, source_addrs=source_addrs, into=into, known=sources)
            raise
        if _cpus() < 2:  # one CPU: a second thread would only add switching
            snap = make_snapshot(store, src, fmt, source_addrs=source_addrs, into=into,
                                 known=sources)
            fp, table = _finish(plan, originality.native_scanner().scan_package(plan.items))
        else:
            scan = _Scan(plan.items)
            scan.start()
            try:
                snap = make_snapshot(store, src, fmt, source_addrs=source_addrs, into=into,
                                     known=sources)
            except BaseException:
                scan.join()  # its result (or error) no longer matters: the snapshot's does
                raise
            # The table and its JSON are built here, not on the scan thread: Python on both
            # threads at once only trades the GIL back and forth.
            fp, table = _finish(plan, scan.result())
    api_info = store_api(*table, store, into) if table is not None else None
    return Content(snap, fp, api_info)
