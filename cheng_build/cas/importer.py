"""Import files and directory trees as UnixFS DAGs (the CIDs ``ipfs add`` computes).

Layout, matching ``ipfs add --cid-version=1 --raw-leaves`` and ``ipfs-unixfs-importer`` with
``rawLeaves: true, cidVersion: 1, layout: balanced(maxChildrenPerNode: 174)``:

- every chunk of a file is a raw block (codec 0x55); a file of one chunk *is* that raw block;
- otherwise leaves are grouped 174 at a time under dag-pb nodes whose UnixFS Data is
  ``{Type: File, filesize, blocksizes}``, and those again 174 at a time, until one root remains
  (the balanced layout); links carry an empty name and Tsize = the child's block plus everything
  below it;
- a directory is a dag-pb node ``{Type: Directory}`` with one link per entry, sorted by the
  UTF-8 bytes of the names; a symlink inside a tree is a ``{Type: Symlink, Data: target}`` node.
  Modes and mtimes are never recorded, so a checkout on any machine gives the same CID.

Large directories: go-ipfs and the JS importer switch a directory to a HAMT shard when its node
would exceed 256 KiB (roughly 3,000-8,000 entries, depending on name lengths). We always write a
flat directory node, which every IPFS tool reads; for such huge directories our CID therefore
differs from ``ipfs add``'s. Package snapshots do not come near that size; the exporter reads
HAMT-sharded directories made by other tools.

Only the hashing is per-byte work, and it happens in C or hashlib on threads
(:mod:`cheng_build.cas.chunker`); building the tree is Python over ~4,000 leaves per GiB, kept
as plain (binary CID, Tsize, filesize) tuples written by :mod:`cheng_build.cas.filenode`.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Mapping, Sequence
from pathlib import Path

from cheng_build.cas import dagpb, unixfs
from cheng_build.cas.chunker import (
    DEFAULT_CHUNKER,
    Chunker,
    ChunkerKind,
    bytes_leaves,
    default_threads,
    file_leaves,
    fixed_windows,
    parse_chunker,
)
from cheng_build.cas.cid import CID, cid_bytes, cid_from_digest, decode_cid_bytes, hasher_for
from cheng_build.cas.filenode import Child, file_node
from cheng_build.cas.ignore import IgnoreRules
from cheng_build.cas.progress import ImportProgress, ProgressCallback
from cheng_build.core.errors import DigestMismatchError, InputError, PolicyError
from cheng_build.core.record import dataclass

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Protocol

    from cheng_build.cas.blockstore import Batch, Blockstore
else:
    Protocol = object  # BlockSink below is read by the type checker only

__all__ = ["MAX_LINKS", "BlockSink", "ImportResult", "add_bytes", "add_path", "import_path"]

MAX_LINKS = 174  # children per node in the balanced layout (go-ipfs / js-ipfs default)


class BlockSink(Protocol):
    """Where an import puts its blocks (a blockstore batch)."""

    def put(self, cid: CID, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The root of an import and what went into it."""

    root: CID
    files: int
    bytes: int
    blocks: int


@dataclass(frozen=True, slots=True)
class _Entry:
    cid: CID
    tsize: int      # cumulative size of the DAG below (what a parent's link carries)
    filesize: int   # content bytes (file) - blocksizes of a parent


class _Builder:
    def __init__(self, sink: BlockSink | None, chunker: Chunker, hash: str, threads: int,
                 progress: ProgressCallback | None, tally: ImportProgress,
                 skip: frozenset[str] = frozenset(),
                 known: Mapping[str, bytes] | None = None) -> None:
        self.sink = sink
        self.known = known  # files the caller has read already: relative path -> bytes
        self.chunker = chunker
        self.hash = hash
        self.hasher = hasher_for(hash)
        self.threads = threads
        self.progress = progress
        self.tally = tally
        self.blocks = 0
        self.skip = skip  # real paths of directories never imported (the store itself)
        self._root: Path | None = None  # the tree being imported (links must stay inside it)
        self._root_real: str | None = None
        # Binary CIDs of a raw leaf / dag-pb node less the digest: leaves and file nodes are
        # built as bytes and become CID objects only where a sink or the caller needs one.
        self._leaf_prefix = cid_bytes(cid_from_digest(bytes(32), "raw", hash))[:-32]
        self._node_prefix = cid_bytes(cid_from_digest(bytes(32), "dag-pb", hash))[:-32]

    # -- blocks -----------------------------------------------------------------------------

    def _emit(self, cid: CID, data: bytes | memoryview, *, hashed_these_bytes: bool = False) -> None:
        self.blocks += 1
        if self.sink is not None:
            # A CID computed from these very bytes in memory (a node, a leaf of a buffer) needs
            # no second hash in the store batch (``Batch.put_verified``). Leaves of a large file
            # are read again after hashing, so they are verified: the file may have changed.
            put = getattr(self.sink, "put_verified", None) if hashed_these_bytes else None
            if put is None:
                # Any sink may keep what it is given: never a view of a buffer we reuse.
                self.sink.put(cid, bytes(data) if isinstance(data, memoryview) else data)
            else:
                put(cid, data)

    def _node(self, node: dagpb.PBNode, below: int) -> tuple[CID, int]:
        block = dagpb.encode(node)
        cid = cid_from_digest(self.hasher(block), "dag-pb", self.hash)
        self._emit(cid, block, hashed_these_bytes=True)
        return cid, len(block) + below

    # -- files ------------------------------------------------------------------------------

    def file_from_leaves(self, leaves: Sequence[Child]) -> _Entry:
        """Balanced layout over ``leaves`` (already emitted): (binary CID, Tsize, filesize)."""
        if len(leaves) == 1:
            raw, tsize, filesize = leaves[0]
            return _Entry(decode_cid_bytes(raw), tsize, filesize)
        level = list(leaves)
        while len(level) > 1:
            parents: list[Child] = []
            for i in range(0, len(level), MAX_LINKS):
                group = level[i:i + MAX_LINKS]
                block = file_node(group)
                raw = self._node_prefix + self.hasher(block)
                if self.sink is not None:
                    self._emit(decode_cid_bytes(raw), block, hashed_these_bytes=True)
                else:
                    self.blocks += 1
                parents.append((raw, len(block) + sum(c[1] for c in group),
                                sum(c[2] for c in group)))
            level = parents
        raw, tsize, filesize = level[0]
        return _Entry(decode_cid_bytes(raw), tsize, filesize)

    def add_buffer(self, data: bytes) -> _Entry:
        leaves: list[Child] = []
        for off, ln, digest in bytes_leaves(data, self.chunker, self.hash):
            cid = cid_from_digest(digest, "raw", self.hash)
            self._emit(cid, data[off:off + ln], hashed_these_bytes=True)
            leaves.append((self._leaf_prefix + digest, ln, ln))
        return self.file_from_leaves(leaves)

    def add_file(self, path: Path, size: int | None = None, data: bytes | None = None) -> _Entry:
        if size is None:
            size = path.stat().st_size
        if data is not None and len(data) == size and size < (1 << 20):
            # Read by the caller already (publish reads its sources once for every use); the
            # same leaves as reading it here. A size that moved since the scan reads it again.
            entry = self.add_buffer(data)
            self._advance_bytes(size)
        elif self.sink is not None and size < (1 << 20):
            entry = self.add_buffer(path.read_bytes())
            self._advance_bytes(size)
        elif self.sink is not None and self.chunker.kind is ChunkerKind.FIXED:
            entry = self.file_from_leaves(self._store_fixed(path))
        else:
            # Progress follows hashing when nothing is stored, else the writes (the slow part).
            raw = file_leaves(path, self.chunker, self.hash, threads=self.threads,
                              on_bytes=self._advance_bytes if self.sink is None else None)
            prefix = self._leaf_prefix
            leaves: list[Child] = [(prefix + d, ln, ln) for _, ln, d in raw]
            if self.sink is not None:
                with open(path, "rb") as fh:
                    fd = fh.fileno()
                    for (off, ln, _), leaf in zip(raw, leaves, strict=True):
                        # The sink verifies these bytes against the CID we hashed, so a file
                        # that changes while we read it fails loudly instead of storing a lie.
                        try:
                            self._emit(decode_cid_bytes(leaf[0]), os.pread(fd, ln, off))
                        except DigestMismatchError:
                            raise InputError(f"{path} changed while it was being imported",
                                             how="retry once nothing writes to it") from None
                        self._advance_bytes(ln)
            else:
                self.blocks += len(leaves)
            entry = self.file_from_leaves(leaves)
        self.tally.files_done += 1
        self._tick()
        return entry

    def _store_fixed(self, path: Path) -> list[Child]:
        """Read, hash and store a file's fixed-size leaves in one pass (a window at a time).

        Each block is stored from the very bytes its CID was computed over, so it needs no
        second hash, and a file that changes while we read it cannot store a block under a
        wrong CID (at worst the import is of a torn copy; a size change fails it).
        """
        assert self.sink is not None
        prefix = self._leaf_prefix
        leaves: list[Child] = []
        for view, part in fixed_windows(path, self.chunker, self.hash, threads=self.threads):
            base = part[0][0] if part else 0
            for off, ln, digest in part:
                raw = prefix + digest
                # The batch writes the block before it returns, so a view of the reused window
                # buffer is safe here (and saves copying every leaf).
                self._emit(decode_cid_bytes(raw), view[off - base:off - base + ln],
                           hashed_these_bytes=True)
                leaves.append((raw, ln, ln))
                self._advance_bytes(ln)
        return leaves

    def _advance_bytes(self, n: int) -> None:
        self.tally.bytes_done += n
        self._tick()

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress(self.tally)

    # -- trees ------------------------------------------------------------------------------

    def _check_contained(self, link: Path, rel: str) -> None:
        """A snapshot's link must stay inside the package, judged by resolving it on the real
        tree (a chain of links can climb out where each target looks contained as text)."""
        from cheng_build.cas.exporter import symlink_escapes  # the exporter's rule; only for links
        from cheng_build.core.contain import outside, real_root

        target = os.readlink(link)
        if self._root_real is None:
            self._root_real = real_root(self._root or link.parent)
        where = outside(self._root_real, link) if not symlink_escapes(rel, target) else target
        if where is not None:
            # A failed check (exit 1), not bad usage: the tree would leak a file outside it.
            raise PolicyError(f"symlink points outside the package: {link}",
                             why=f"its target is {target!r}, which leads to {where}; a checkout "
                                 "would refuse it",
                             how="replace it with a copy, or list it in .chengignore")

    def add_symlink(self, path: Path) -> _Entry:
        target = os.fsencode(os.readlink(path))
        data = unixfs.encode(unixfs.Data(unixfs.NodeType.SYMLINK, data=target))
        cid, tsize = self._node(dagpb.PBNode((), data), 0)
        return _Entry(cid, tsize, 0)

    def add_dir(self, path: Path, rel: str, rules: IgnoreRules | None) -> _Entry:
        children: list[tuple[bytes, str, _Entry]] = []
        if not rel and self._root is None:
            self._root = path
        for name, child, mode, size in _entries(path, rel, rules, self.skip):
            child_rel = f"{rel}/{name}" if rel else name
            if stat_mod.S_ISLNK(mode):
                if rules is not None:
                    self._check_contained(child, child_rel)
                entry = self.add_symlink(child)
            elif stat_mod.S_ISDIR(mode):
                entry = self.add_dir(child, child_rel, rules)
            else:
                entry = self.add_file(child, size,
                                      self.known.get(child_rel) if self.known is not None else None)
            children.append((name.encode("utf-8"), name, entry))
        children.sort(key=lambda c: c[0])
        links = tuple(dagpb.PBLink(e.cid, name, e.tsize) for _, name, e in children)
        data = unixfs.encode(unixfs.Data(unixfs.NodeType.DIRECTORY))
        cid, tsize = self._node(dagpb.PBNode(links, data), sum(e.tsize for _, _, e in children))
        return _Entry(cid, tsize, 0)


def _entries(path: Path, rel: str, rules: IgnoreRules | None,
             skip: frozenset[str] = frozenset()) -> list[tuple[str, Path, int, int]]:
    """The directory's entries kept by ``rules``: (name, path, lstat mode, size).

    ``skip`` holds real paths of directories never imported: the blockstore being written to,
    when it lies inside the tree (``cheng-pkg add .`` with ``./chengcache``).
    """
    out: list[tuple[str, Path, int, int]] = []
    with os.scandir(path) as it:
        for de in it:
            name = de.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(
                    f"file name is not valid UTF-8: {os.path.join(path, name)!r}",
                    why="UnixFS names are UTF-8 strings",
                    how="rename the file") from None
            st = de.stat(follow_symlinks=False)
            mode = st.st_mode
            if not (stat_mod.S_ISREG(mode) or stat_mod.S_ISDIR(mode) or stat_mod.S_ISLNK(mode)):
                raise InputError(f"unsupported file type: {de.path}",
                                 why="only regular files, directories and symlinks can be imported",
                                 how="remove it or list it in .chengignore")
            child_rel = f"{rel}/{name}" if rel else name
            if rules is not None and rules.excluded(child_rel, stat_mod.S_ISDIR(mode)):
                continue
            if skip and stat_mod.S_ISDIR(mode) and os.path.realpath(de.path) in skip:
                continue
            out.append((name, Path(de.path), mode, st.st_size))
    return out


def _scan(path: Path, rel: str, rules: IgnoreRules | None, tally: ImportProgress,
          skip: frozenset[str]) -> None:
    for name, child, mode, size in _entries(path, rel, rules, skip):
        if stat_mod.S_ISDIR(mode):
            _scan(child, f"{rel}/{name}" if rel else name, rules, tally, skip)
        elif stat_mod.S_ISREG(mode):
            tally.files_total += 1
            tally.bytes_total += size


def import_path(store: Blockstore | None, path: str | os.PathLike[str], *, chunker: str = DEFAULT_CHUNKER,
                snapshot: bool = False, hash: str = "sha2-256", threads: int | None = None,
                progress: ProgressCallback | None = None, pin: bool = False,
                into: Batch | None = None, known: Mapping[str, bytes] | None = None) -> ImportResult:
    """Import a file or directory; with ``store=None`` only compute the root CID.

    Args:
        store: where blocks go (in one batch: staged, fsynced together, then renamed in).
        path: a file, a directory, or a symlink to either (the top level is followed).
        chunker: ``size-<n>`` or ``fastcdc-<min>-<avg>-<max>``.
        snapshot: leave out build/cache dirs and what ``.chengignore`` lists, and refuse symlinks
            that point outside the tree.
        hash: ``sha2-256`` (default, IPFS-compatible) or ``blake3``.
        threads: hashing threads for large files.
        progress: called as files and bytes advance.
        pin: pin the root in ``store`` (under the same lock as the write, so no gc can slip in).
        into: an open batch of ``store`` to stage the blocks (and the pin) in; its owner commits
            it, so one caller writing several things pays one fsync (publish: snapshot and API).
        known: files of the directory the caller has read already (POSIX path relative to
            ``path`` -> bytes), used instead of reading them again when the size still agrees.

    Raises:
        InputError: no such file, unsupported file type, non-UTF-8 name.
        UsageError: a bad chunker spec.
        StoreError: the store cannot be written.
    """
    spec = parse_chunker(chunker)
    hasher_for(hash)  # validate early
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"no such file: {os.fspath(path)}") from None
    except NotADirectoryError:
        raise InputError(f"no such file: {os.fspath(path)}") from None
    tally = ImportProgress()
    rules = IgnoreRules.for_snapshot(p) if snapshot and stat_mod.S_ISDIR(st.st_mode) else None
    skip = frozenset([os.path.realpath(store.root)]) if store is not None else frozenset()
    if progress is not None:
        if stat_mod.S_ISDIR(st.st_mode):
            _scan(p, "", rules, tally, skip)
        else:
            tally.files_total, tally.bytes_total = 1, st.st_size
    nthreads = threads or default_threads()

    def run(sink: BlockSink | None) -> tuple[_Entry, _Builder]:
        b = _Builder(sink, spec, hash, nthreads, progress, tally, skip, known)
        if stat_mod.S_ISDIR(st.st_mode):
            return b.add_dir(p, "", rules), b
        if stat_mod.S_ISREG(st.st_mode):
            return b.add_file(p), b
        raise InputError(f"unsupported file type: {os.fspath(path)}",
                         why="only regular files, directories and symlinks can be imported")

    if into is not None:
        _check_into(store, into)
        entry, builder = run(into)
        if pin:
            into.pin(entry.cid)
    elif store is None:
        entry, builder = run(None)
    else:
        with store.batch() as batch:
            entry, builder = run(batch)
            if pin:
                batch.pin(entry.cid)
    return ImportResult(entry.cid, tally.files_done, tally.bytes_done, builder.blocks)


def add_path(store: Blockstore | None, path: str | os.PathLike[str], *, chunker: str = DEFAULT_CHUNKER,
             snapshot: bool = False, hash: str = "sha2-256", threads: int | None = None,
             progress: ProgressCallback | None = None, pin: bool = False) -> CID:
    """Import a file or directory and return its root CID (see :func:`import_path`)."""
    return import_path(store, path, chunker=chunker, snapshot=snapshot, hash=hash, threads=threads,
                       progress=progress, pin=pin).root


def add_bytes(store: Blockstore | None, data: bytes, *, chunker: str = DEFAULT_CHUNKER,
              hash: str = "sha2-256", pin: bool = False, into: Batch | None = None) -> CID:
    """Import one in-memory file and return its root CID.

    ``add_bytes(None, b"hello")`` is ``bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq``.
    With ``into`` (an open batch of ``store``) the blocks are staged there, committed by its owner.
    """
    spec = parse_chunker(chunker)
    tally = ImportProgress()
    if into is not None:
        _check_into(store, into)
        cid = _Builder(into, spec, hash, 1, None, tally).add_buffer(bytes(data)).cid
        if pin:
            into.pin(cid)
        return cid
    if store is None:
        return _Builder(None, spec, hash, 1, None, tally).add_buffer(bytes(data)).cid
    with store.batch() as batch:
        cid = _Builder(batch, spec, hash, 1, None, tally).add_buffer(bytes(data)).cid
        if pin:
            batch.pin(cid)
    return cid


def _check_into(store: Blockstore | None, into: Batch) -> None:
    # A batch of another store would put the blocks where the caller does not look for them.
    if into.store is not store:
        raise ValueError("into= must be a batch of the store passed as store=")
