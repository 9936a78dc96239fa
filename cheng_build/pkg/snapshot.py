"""Package snapshots in the three registry formats, stored in the CAS.

``dag`` (default)
    The package tree imported as a UnixFS directory DAG (:func:`cheng_build.cas.importer.add_path`
    with ``snapshot=True``: build/cache dirs and ``.chengignore`` left out), leaves cut by FastCDC
    (recorded in the registry line as ``chunker``, so anyone can recompute the CID) so a new
    version shares its unchanged chunks with the old one. A source package (no file above
    :data:`SOURCE_PROFILE_MAX_FILE`) is cut with :data:`SOURCE_CHUNKER`, 8 KiB average chunks:
    source files are tens of KiB and a release edits a few lines of each, so 256 KiB chunks
    made every changed file wholly new (measured on three versions of real Cheng code by
    ``benchmarks/corpus.py``: 1.2-1.5x the changed files' bytes stored per version at 256 KiB,
    0.13-0.29x at 8 KiB). A tree with a larger file keeps :data:`SNAPSHOT_CHUNKER`.
    ``$CHENG_SNAPSHOT_CHUNKER`` overrides both (a spec of :func:`cheng_build.cas.chunker.parse_chunker`).

``tar``
    A deterministic tar archive of the same tree, stored as one UnixFS file (fixed 256 KiB
    chunks: ``ipfs add`` of the archive gives the same CID). Deterministic: entries sorted by their
    UTF-8 path, POSIX pax format, ``mtime`` = ``SOURCE_DATE_EPOCH`` (0 when unset), uid/gid 0 with
    empty owner names, modes normalised to 0644/0755 (0755 only for executable files), no
    device/fifo entries. ``--file:<archive>`` publishes an existing archive as it is.

``source`` (the seed's A1.1 "no-copy" publish)
    A source manifest, stored as one JSON file (compact, sorted keys)::

        {"format": "cheng-source-manifest/1",
         "files": [{"path": "src/a.cheng", "cid": "bafkrei...", "size": 123}, ...],
         "source_addrs": ["/ip4/127.0.0.1/tcp/4005"]}

    Each file's bytes are stored under their own CID; ``source_addrs`` says where peers serve them.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from enum import Enum
from pathlib import Path

from cheng_build.core.errors import InputError, NotFoundError, UsageError
from cheng_build.core.record import dataclass

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

    from cheng_build.cas.blockstore import Batch, Blockstore
    from cheng_build.cas.cid import CID

SNAPSHOT_CHUNKER = "fastcdc-65536-262144-1048576"
SOURCE_CHUNKER = "fastcdc-2048-8192-65536"
SOURCE_PROFILE_MAX_FILE = 8 << 20  # a larger file is not hand-written source: big-chunk profile
FILE_CHUNKER = "size-262144"
SOURCE_MANIFEST_FORMAT = "cheng-source-manifest/1"
MAX_MANIFEST_BYTES = 64 << 20


class SnapshotFormat(Enum):
    """How a snapshot is laid out in the CAS."""

    DAG = "dag"
    TAR = "tar"
    SOURCE = "source"

    @classmethod
    def parse(cls, text: str) -> SnapshotFormat:
        """Parse ``dag|tar|source``.

        Raises:
            UsageError: anything else.
        """
        try:
            return cls(text)
        except ValueError:
            raise UsageError(f"unknown snapshot format {text!r}", how="use dag, tar or source") from None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A stored snapshot: its root CID, format, and what produced it."""

    cid: str
    format: SnapshotFormat
    chunker: str | None
    files: int
    source_addrs: tuple[str, ...] = ()


def _walk(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(relative POSIX path, path, lstat) of every entry a snapshot keeps, sorted by UTF-8 bytes."""
    from cheng_build.cas.ignore import IgnoreRules

    rules = IgnoreRules.for_snapshot(root)

    def visit(d: Path, rel: str) -> Iterator[tuple[str, Path, os.stat_result]]:
        try:
            names = sorted(os.listdir(d), key=lambda n: n.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            raise InputError(f"cannot list {d}", why=str(exc)) from None
        for name in names:
            p = d / name
            r = f"{rel}/{name}" if rel else name
            st = p.lstat()
            is_dir = stat.S_ISDIR(st.st_mode)
            if rules.excluded(r, is_dir):
                continue
            try:
                r.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"file name is not UTF-8: {p}") from None
            yield r, p, st
            if is_dir:
                yield from visit(p, r)

    yield from visit(root, "")


def source_date_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` (reproducible-builds.org), 0 when unset.

    Raises:
        UsageError: set but not a non-negative integer.
    """
    raw = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"SOURCE_DATE_EPOCH={raw!r} is not an integer") from None
    if value < 0:
        raise UsageError("SOURCE_DATE_EPOCH must not be negative")
    return value


def deterministic_tar(root: str | os.PathLike[str]) -> tuple[bytes, int]:
    """The deterministic tar of a package tree (format in the module doc); returns (bytes, files).

    Raises:
        InputError: unreadable tree, non-UTF-8 names, special files.
    """
    base = Path(root)
    mtime = source_date_epoch()
    import tarfile  # only the tar format needs it: not on a dag publish's start-up

    buf = io.BytesIO()
    files = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, p, st in _walk(base):
            info = tarfile.TarInfo(rel)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if stat.S_ISDIR(st.st_mode):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.mode = tarfile.SYMTYPE, 0o777
                info.linkname = os.readlink(p)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                data = p.read_bytes()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                files += 1
            else:
                raise InputError(f"cannot snapshot special file {p}",
                                 why="only files, directories and symlinks go into a package",
                                 how="remove it or list it in .chengignore")
    return buf.getvalue(), files


def _put_bytes(store: Blockstore | None, data: bytes, into: Batch | None = None) -> str:
    from cheng_build.cas import importer

    return str(importer.add_bytes(store, data, chunker=FILE_CHUNKER, into=into))


def source_manifest(store: Blockstore | None, root: str | os.PathLike[str],
                    source_addrs: Sequence[str] = (), into: Batch | None = None) -> tuple[bytes, int]:
    """Store every file of a tree and return (manifest bytes, files) in the format above.

    ``into``: an open batch of ``store`` to stage every file in (else one batch per file)."""
    base = Path(root)
    entries: list[dict[str, Any]] = []
    if base.is_file():
        data = base.read_bytes()
        entries.append({"path": base.name, "cid": _put_bytes(store, data, into), "size": len(data)})
    else:
        for rel, p, st in _walk(base):
            if stat.S_ISREG(st.st_mode):
                data = p.read_bytes()
                entries.append({"path": rel, "cid": _put_bytes(store, data, into), "size": len(data)})
            elif stat.S_ISLNK(st.st_mode):
                entries.append({"path": rel, "link": os.readlink(p)})
    doc = {"format": SOURCE_MANIFEST_FORMAT, "files": entries, "source_addrs": list(source_addrs)}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return raw, sum(1 for e in entries if "cid" in e)


def make_snapshot(store: Blockstore | None, src: str | os.PathLike[str], fmt: SnapshotFormat, *,
                  source_addrs: Sequence[str] = (), into: Batch | None = None,
                  known: Mapping[str, bytes] | None = None) -> Snapshot:
    """Store ``src`` (a package directory, or one file) in the CAS in format ``fmt``.

    ``into``: an open batch of ``store`` to stage the blocks and the root's pin in; they are
    durable only once its owner commits it (publish writes its registry line after that).
    ``known``: files of ``src`` read already (relative POSIX path -> bytes; publish's sources),
    not read again by a ``dag`` snapshot; the snapshot is the same either way.

    A single file: ``dag`` stores it as a UnixFS file, ``tar`` stores it unchanged (it is the
    archive), ``source`` makes a one-entry manifest.

    Raises:
        InputError: ``src`` is missing or unreadable.
        StoreError: the store cannot be written.
    """
    from cheng_build.cas import importer

    p = Path(src)
    if not p.exists():
        raise InputError(f"no such file or directory: {p}")
    if source_addrs and fmt is not SnapshotFormat.SOURCE:
        raise UsageError("--source-addr only goes with --format:source")
    if fmt is SnapshotFormat.DAG:
        chunker = dag_chunker(p) if p.is_dir() else FILE_CHUNKER
        res = importer.import_path(store, p, chunker=chunker, snapshot=True, pin=store is not None,
                                   into=into, known=known if p.is_dir() else None)
        return Snapshot(str(res.root), fmt, chunker, res.files, ())
    if fmt is SnapshotFormat.TAR:
        if p.is_dir():
            data, files = deterministic_tar(p)
        else:
            data, files = p.read_bytes(), 1
        return Snapshot(_put_bytes(store, data, into), fmt, FILE_CHUNKER, files, ())
    raw, files = source_manifest(store, p, source_addrs, into)
    return Snapshot(_put_bytes(store, raw, into), fmt, FILE_CHUNKER, files, tuple(source_addrs))


def dag_chunker(root: Path) -> str:
    """The chunker a ``dag`` snapshot of directory ``root`` is cut with (see the module doc).

    Raises:
        UsageError: ``$CHENG_SNAPSHOT_CHUNKER`` is not a chunker spec.
    """
    override = os.environ.get("CHENG_SNAPSHOT_CHUNKER")
    if override:
        from cheng_build.cas.chunker import parse_chunker

        return str(parse_chunker(override))
    for _, _, st in _walk(root):
        if stat.S_ISREG(st.st_mode) and st.st_size > SOURCE_PROFILE_MAX_FILE:
            return SNAPSHOT_CHUNKER
    return SOURCE_CHUNKER


def parse_source_manifest(raw: bytes) -> dict[str, Any]:
    """Read a source manifest.

    Raises:
        InputError: not a manifest of our format.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise InputError("source manifest is too large")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("source manifest is not JSON", why=str(exc)) from None
    if not isinstance(doc, dict) or doc.get("format") != SOURCE_MANIFEST_FORMAT \
            or not isinstance(doc.get("files"), list):
        raise InputError(f"not a {SOURCE_MANIFEST_FORMAT} document")
    return doc


def read_snapshot_file(store: Blockstore, cid: str, format: str, relpath: str) -> bytes | None:
    """One file of a stored snapshot, or None when the snapshot has no such path.

    ``relpath`` is POSIX and relative to the package root; ``""`` reads a one-file snapshot.

    Raises:
        NotFoundError: a block of the snapshot is not in the store.
        DigestMismatchError: a block does not hash to its CID.
        InputError: the snapshot is not of the claimed format.
    """
    from cheng_build.cas import exporter
    from cheng_build.cas.cid import parse_cid

    fmt = SnapshotFormat.parse(format)
    root = parse_cid(cid)
    rel = relpath.strip("/")
    if fmt is SnapshotFormat.DAG:
        if not rel:
            return read_whole(store, root)
        try:
            return exporter.read_path(store, root, rel)
        except NotFoundError as exc:
            if exc.what.startswith("no such path"):  # the snapshot is there, the file is not
                return None
            raise
    blob = read_whole(store, root)
    if fmt is SnapshotFormat.TAR:
        import tarfile

        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
                if not rel:
                    return blob
                try:
                    member = tar.getmember(rel)
                except KeyError:
                    return None
                fh = tar.extractfile(member)
                return fh.read() if fh is not None else None
        except tarfile.TarError as exc:
            raise InputError(f"snapshot {cid} is not a tar archive", why=str(exc)) from None
    doc = parse_source_manifest(blob)
    for entry in doc["files"]:
        if isinstance(entry, dict) and entry.get("path") == rel and isinstance(entry.get("cid"), str):
            return read_whole(store, parse_cid(entry["cid"]))
    return None


def check_snapshot_content(store: Blockstore, cid: str, format: str | None) -> int:
    """Read every block of a stored snapshot, verifying each against its CID.

    For ``source`` snapshots the files the manifest names are checked too.

    Returns:
        The number of blocks checked.

    Raises:
        NotFoundError: a block is missing (names the CID).
        DigestMismatchError: a block does not hash to its CID: the content is not what was signed.
    """
    from cheng_build.cas.cid import parse_cid
    from cheng_build.cas.walk import walk_dag

    roots = [parse_cid(cid)]
    if format == SnapshotFormat.SOURCE.value:
        doc = parse_source_manifest(read_whole(store, roots[0]))
        roots.extend(parse_cid(e["cid"]) for e in doc["files"]
                     if isinstance(e, dict) and isinstance(e.get("cid"), str))
    n = 0
    for root in roots:
        for _ in walk_dag(store.get, root):
            n += 1
    return n


def read_whole(store: Blockstore, root: CID) -> bytes:
    """A stored file's bytes: a raw block directly, a chunked file through the exporter."""
    from cheng_build.cas.cid import RAW

    if root.codec.code == RAW:
        return store.get(root)
    from cheng_build.cas import exporter

    return bytes(exporter.read_file(store, root))
