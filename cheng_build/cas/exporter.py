"""Read UnixFS DAGs back: file bytes, paths inside a tree, listings, whole trees on disk.

Everything read comes from :meth:`Blockstore.get`, which verifies each block against its CID,
so the exporter never returns bytes that are not what the root CID names. On top of that the
exporter checks the UnixFS structure itself (a file's children add up to its ``filesize``; names
are safe path components; no duplicate names) because a DAG from a peer is untrusted input.

Reads directories written by other IPFS tools too: flat directories and HAMT-sharded ones
(``Type: HAMTShard``; link names are a hex bucket prefix, alone for a sub-shard or followed by the
entry's name), and dag-pb leaves (``Type: Raw``/``File`` with data) from non-raw-leaf imports.

(Over 400 lines on purpose: every reader here (file, path, listing, export) must run the same
structural checks of untrusted UnixFS, and one module keeps any reader from skipping one.)
"""

from __future__ import annotations

import contextlib
import enum
import os
import posixpath
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cheng_build.cas import dagpb, unixfs
from cheng_build.cas.cid import CID, DAG_PB, RAW
from cheng_build.cas.durable import fsync_dirs, fsync_files
from cheng_build.cas.walk import walk_dag
from cheng_build.core.errors import InputError, IntegrityError, NotFoundError
from cheng_build.core.record import dataclass

if TYPE_CHECKING:
    from cheng_build.cas.blockstore import Blockstore

__all__ = [
    "MAX_DEPTH",
    "SNAPSHOT_LIMITS",
    "DirEntry",
    "EntryKind",
    "ExportLimits",
    "UnixFSStructureError",
    "export_to",
    "iter_dag",
    "iter_file",
    "kind_of",
    "ls",
    "read_file",
    "read_path",
    "resolve_path",
    "symlink_escapes",
]


class UnixFSStructureError(IntegrityError):
    """A DAG's blocks are intact but do not form a valid UnixFS tree."""


class EntryKind(enum.Enum):
    """What a CID is, as a file system object."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One entry of a directory listing: name, CID, kind, and content size (files) or Tsize."""

    name: str
    cid: CID
    kind: EntryKind
    size: int


def _load(store: Blockstore, cid: CID) -> tuple[dagpb.PBNode | None, unixfs.Data | None, bytes]:
    data = store.get(cid)
    if cid.codec.code == RAW:
        return None, None, data
    if cid.codec.code != DAG_PB:
        raise UnixFSStructureError(f"{cid} is neither raw nor dag-pb")
    node = dagpb.decode(data)
    return node, unixfs.decode(node.data), data


def kind_of(store: Blockstore, cid: CID) -> EntryKind:
    """Whether ``cid`` is a file, a directory or a symlink."""
    _, meta, _ = _load(store, cid)
    return _kind(meta, cid)


def _kind(meta: unixfs.Data | None, cid: CID) -> EntryKind:
    if meta is None or meta.type in (unixfs.NodeType.FILE, unixfs.NodeType.RAW):
        return EntryKind.FILE
    if meta.type in (unixfs.NodeType.DIRECTORY, unixfs.NodeType.HAMT_SHARD):
        return EntryKind.DIRECTORY
    if meta.type is unixfs.NodeType.SYMLINK:
        return EntryKind.SYMLINK
    raise UnixFSStructureError(f"{cid} has UnixFS type {meta.type.name}, which we cannot read")


def iter_file(store: Blockstore, cid: CID) -> Iterator[bytes]:
    """Stream a file's bytes block by block (constant memory for any size).

    Raises:
        InputError: ``cid`` is a directory or symlink.
        UnixFSStructureError: the children do not add up to the declared sizes.
        NotFoundError / DigestMismatchError: a block is missing or corrupt.
    """
    node, meta, raw = _load(store, cid)
    if _kind(meta, cid) is not EntryKind.FILE:
        raise InputError(f"{cid} is a {_kind(meta, cid).value}, not a file",
                         how="use 'ls' for directories or 'get' to write a tree")
    yield from _file_chunks(store, cid, node, meta, raw)


# How deep a DAG may nest (files: links inside links; trees: directories inside directories).
# Real ones are shallow (a balanced file DAG of 1 TB is ~5 levels; a source tree rarely passes
# 50); a hostile one can nest thousands deep to exhaust a recursive reader. Every walk below is
# iterative and stops here with a clear error.
MAX_DEPTH = 512


def _too_deep(what: str, cid: CID) -> UnixFSStructureError:
    return UnixFSStructureError(f"{what} {cid} nests deeper than {MAX_DEPTH} levels",
                                why="no real snapshot is that deep; a DAG built to exhaust the "
                                    "reader is",
                                how="inspect it with 'cheng-pkg ls'; do not use it")


@dataclass(slots=True)
class _FileFrame:
    cid: CID
    node: dagpb.PBNode
    meta: unixfs.Data
    next: int = 0
    total: int = 0


def _file_chunks(store: Blockstore, cid: CID, node: dagpb.PBNode | None, meta: unixfs.Data | None,
                 raw: bytes) -> Iterator[bytes]:
    """A file node's bytes in order, walking its DAG with an explicit stack (any depth up to
    :data:`MAX_DEPTH`), each node's children checked against its ``blocksizes``/``filesize``."""
    if node is None or meta is None:
        yield raw
        return

    def enter(c: CID, n: dagpb.PBNode, m: unixfs.Data) -> _FileFrame:
        if m.blocksizes and len(m.blocksizes) != len(n.links):
            raise UnixFSStructureError(f"file node {c} has {len(n.links)} links but "
                                       f"{len(m.blocksizes)} blocksizes")
        return _FileFrame(c, n, m, total=len(m.data or b""))

    def child_done(parent: _FileFrame, child: CID, got: int) -> None:
        i = parent.next - 1
        if parent.meta.blocksizes and got != parent.meta.blocksizes[i]:
            raise UnixFSStructureError(f"file node {parent.cid}: child {child} holds {got} bytes, "
                                       f"blocksizes says {parent.meta.blocksizes[i]}")
        parent.total += got

    stack = [enter(cid, node, meta)]
    if meta.data:
        yield meta.data
    while stack:
        top = stack[-1]
        if top.next == len(top.node.links):
            stack.pop()
            if top.meta.filesize is not None and top.total != top.meta.filesize:
                raise UnixFSStructureError(f"file {top.cid} holds {top.total} bytes but declares "
                                           f"{top.meta.filesize}")
            if stack:
                child_done(stack[-1], top.cid, top.total)
            continue
        link = top.node.links[top.next]
        top.next += 1
        cnode, cmeta, craw = _load(store, link.hash)
        if _kind(cmeta, link.hash) is not EntryKind.FILE:
            raise UnixFSStructureError(f"file node {top.cid} links to non-file {link.hash}")
        if cnode is None or cmeta is None:
            yield craw
            child_done(top, link.hash, len(craw))
            continue
        if len(stack) >= MAX_DEPTH:
            raise _too_deep("file", cid)
        stack.append(enter(link.hash, cnode, cmeta))
        if cmeta.data:
            yield cmeta.data


def read_file(store: Blockstore, cid: CID) -> bytes:
    """A whole file's bytes (see :func:`iter_file` for streaming)."""
    return b"".join(iter_file(store, cid))


_MAX_SHARD_DEPTH = 64


def _safe_name(name: str, parent: CID) -> str:
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise UnixFSStructureError(f"directory {parent} has an unsafe entry name {name!r}",
                                   why="names must be single path components")
    return name


def _dir_links(store: Blockstore, cid: CID, node: dagpb.PBNode,
               meta: unixfs.Data, depth: int = 0) -> Iterator[tuple[str, CID]]:
    if meta.type is unixfs.NodeType.DIRECTORY:
        for link in node.links:
            yield _safe_name(link.name or "", cid), link.hash
        return
    # HAMT shard: bucket prefixes are the fanout's hex width (2 for the usual 256).
    fanout = meta.fanout or 256
    width = len(f"{fanout - 1:X}")
    for link in node.links:
        name = link.name or ""
        if len(name) < width:
            raise UnixFSStructureError(f"HAMT shard {cid} has a malformed link name {name!r}")
        if len(name) == width:
            sub_node, sub_meta, _ = _load(store, link.hash)
            if sub_node is None or sub_meta is None or sub_meta.type is not unixfs.NodeType.HAMT_SHARD:
                raise UnixFSStructureError(f"HAMT shard {cid}: bucket {name} is not a shard")
            if depth >= _MAX_SHARD_DEPTH:  # 64-bit hashes run out long before this
                raise UnixFSStructureError(f"HAMT shard {cid} nests deeper than "
                                           f"{_MAX_SHARD_DEPTH} levels")
            yield from _dir_links(store, link.hash, sub_node, sub_meta, depth + 1)
        else:
            yield _safe_name(name[width:], cid), link.hash


def _directory(store: Blockstore, cid: CID) -> list[tuple[str, CID]]:
    node, meta, _ = _load(store, cid)
    if node is None or meta is None or _kind(meta, cid) is not EntryKind.DIRECTORY:
        raise InputError(f"{cid} is not a directory")
    entries = list(_dir_links(store, cid, node, meta))
    names = [n for n, _ in entries]
    if len(set(names)) != len(names):
        raise UnixFSStructureError(f"directory {cid} lists a name twice")
    return sorted(entries, key=lambda e: e[0].encode("utf-8"))


def ls(store: Blockstore, cid: CID) -> list[DirEntry]:
    """The entries of a directory, sorted by name bytes, with kinds and file sizes.

    Raises:
        InputError: ``cid`` is not a directory.
    """
    out = []
    for name, child in _directory(store, cid):
        _, meta, raw = _load(store, child)
        kind = _kind(meta, child)
        if meta is None:
            size = len(raw)
        elif kind is EntryKind.FILE:
            size = meta.filesize if meta.filesize is not None else len(meta.data or b"")
        elif kind is EntryKind.SYMLINK:
            size = len(meta.data or b"")
        else:
            size = len(raw)
        out.append(DirEntry(name, child, kind, size))
    return out


def resolve_path(store: Blockstore, root: CID, relpath: str) -> CID:
    """The CID at ``relpath`` ("a/b.txt") below the directory ``root``.

    Raises:
        NotFoundError: a component does not exist, naming the path.
    """
    cid = root
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        entries = dict(_directory(store, cid))
        if part not in entries:
            raise NotFoundError(f"no such path in {root}: {'/'.join(parts[:i + 1])}")
        cid = entries[part]
    return cid


def read_path(store: Blockstore, root: CID, relpath: str) -> bytes:
    """The bytes of the file at ``relpath`` below ``root``."""
    return read_file(store, resolve_path(store, root, relpath))


def iter_dag(store: Blockstore, root: CID) -> Iterator[CID]:
    """Every block of the DAG under ``root`` (each verified as it is read), parents first."""
    return walk_dag(store.get, root)


def symlink_escapes(rel_link: str, target: str) -> bool:
    """Whether a symlink at ``rel_link`` (POSIX, relative to a tree's root) pointing at ``target``
    leaves the tree: an absolute target, or one whose ``..`` climb above the root."""
    if not target or target.startswith("/") or "\x00" in target:
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel_link), target))
    return joined == ".." or joined.startswith("../")


@dataclass(frozen=True, slots=True)
class ExportLimits:
    """Caps on what one export may write: a DAG can link one subtree many times, so a small
    DAG can expand to a huge tree (a zip bomb); these stop that early. ``None`` = no cap."""

    max_bytes: int | None = None
    max_entries: int | None = None


SNAPSHOT_LIMITS = ExportLimits(max_bytes=4 << 30, max_entries=500_000)


class _Writer:
    """Writes one DAG to disk, counting against the limits."""

    def __init__(self, store: Blockstore, root: CID, file_mode: int, contained: bool,
                 limits: ExportLimits) -> None:
        self.store = store
        self.root = root
        self.file_mode = file_mode
        self.contained = contained
        self.limits = limits
        self.files: list[Path] = []
        self.dirs: list[Path] = []
        self.links: list[tuple[Path, str]] = []
        self.bytes = 0
        self.entries = 0

    def _count(self, nbytes: int, entries: int) -> None:
        self.bytes += nbytes
        self.entries += entries
        lim = self.limits
        if (lim.max_bytes is not None and self.bytes > lim.max_bytes) or \
                (lim.max_entries is not None and self.entries > lim.max_entries):
            raise UnixFSStructureError(
                f"{self.root} expands past the export limits",
                why=f"more than {lim.max_bytes} bytes or {lim.max_entries} entries (a small DAG "
                    "can link one block many times)",
                how="a snapshot that large is suspicious; inspect it with 'cheng-pkg ls'; if it "
                    "is meant, raise the cap with --max-bytes:<size> / --max-entries:<n>")

    def check_links(self, top: Path) -> None:
        """Every link, resolved on the written tree (so chains of links are followed), must stay
        inside it; the text check in :meth:`write` cannot see a climb hidden in another link."""
        if not self.contained or not self.links:
            return
        from cheng_build.core.contain import outside, real_root

        root = real_root(top)
        for path, rel in self.links:
            where = outside(root, path)
            if where is not None:
                prefix = os.path.realpath(top).rstrip(os.sep) + os.sep
                raise UnixFSStructureError(
                    f"symlink {rel} in {self.root} points outside the snapshot",
                    why=f"its target is {os.readlink(path)!r}; following the links it meets, it "
                        f"leads to {where.removeprefix(prefix)}",
                    how="a package may only link to its own files")

    def plan(self, cid: CID) -> None:
        """Count what the DAG expands to before a byte is written: every entry and every file's
        declared size (exact: writing checks the bytes against it), and the nesting depth. A
        1 MB CAR that links one block a million times is refused here, not after filling the
        disk."""
        if self.limits.max_bytes is None and self.limits.max_entries is None:
            return
        todo: list[tuple[CID, int]] = [(cid, 0)]
        while todo:
            c, depth = todo.pop()
            if depth > MAX_DEPTH:
                raise _too_deep("directory tree", self.root)
            _node, meta, raw = _load(self.store, c)
            kind = _kind(meta, c)
            if kind is EntryKind.DIRECTORY:
                self._count(0, 1)
                todo.extend((child, depth + 1) for _, child in _directory(self.store, c))
            elif kind is EntryKind.FILE:
                size = len(raw) if meta is None else (
                    meta.filesize if meta.filesize is not None else len(meta.data or b""))
                self._count(size, 1)
            else:
                self._count(0, 1)
        self.bytes = self.entries = 0

    def write(self, cid: CID, path: Path, rel: str) -> None:
        """Write the tree under ``cid`` at ``path``: an explicit stack, not recursion, so a tree
        nested thousands deep is refused at :data:`MAX_DEPTH` instead of crashing."""
        todo: list[tuple[CID, Path, str, int]] = [(cid, path, rel, 0)]
        while todo:
            c, p, r, depth = todo.pop()
            if depth > MAX_DEPTH:
                raise _too_deep("directory tree", self.root)
            children = self._write_one(c, p, r)
            todo.extend((child, p / name, f"{r}/{name}" if r else name, depth + 1)
                        for name, child in reversed(children))

    def _write_one(self, cid: CID, path: Path, rel: str) -> list[tuple[str, CID]]:
        """Write one entry; returns a directory's children (to be written after it)."""
        node, meta, raw = _load(self.store, cid)
        kind = _kind(meta, cid)
        self._count(0, 1)
        if kind is EntryKind.SYMLINK:
            assert meta is not None
            target = os.fsdecode(meta.data or b"")
            if self.contained and symlink_escapes(rel or ".", target):
                raise UnixFSStructureError(f"symlink {rel or '.'} in {self.root} points outside the snapshot",
                                           why=f"its target is {target!r}",
                                           how="a package may only link to its own files")
            os.symlink(target, path)
            self.links.append((path, rel or "."))
        elif kind is EntryKind.FILE:
            # O_EXCL | O_NOFOLLOW: never write through a symlink or over something that appeared.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                for piece in _file_chunks(self.store, cid, node, meta, raw):
                    self._count(len(piece), 0)
                    fh.write(piece)
            os.chmod(path, self.file_mode)
            self.files.append(path)
        else:
            os.mkdir(path, 0o755)
            self.dirs.append(path)
            return _directory(self.store, cid)
        return []


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def export_to(store: Blockstore, cid: CID, out: str | os.PathLike[str], *, file_mode: int = 0o644,
              durable: bool = False, contained_symlinks: bool = False,
              limits: ExportLimits = ExportLimits()) -> Path:
    """Write the file, symlink or tree ``cid`` at ``out`` (which must not exist yet), all or nothing.

    The result is built under a temp name beside ``out`` and renamed into place when complete,
    so a failure (a missing block, a hostile DAG) leaves nothing at ``out``.

    Args:
        store: where the blocks are.
        cid: the root.
        out: the path to create.
        file_mode: permission bits of every file (modes are not part of UnixFS snapshots).
        durable: fsync every file and directory before the rename, and the rename itself.
        contained_symlinks: refuse symlinks that point outside the tree (a package snapshot
            must not lead a build to read ``~/.ssh/id_rsa`` through ``src/x.cheng``).
        limits: caps on bytes and entries written.

    Raises:
        InputError: ``out`` already exists (also when another process created it meanwhile).
        UnixFSStructureError / NotFoundError / DigestMismatchError: the DAG is bad or incomplete.
    """
    target = Path(out)
    if target.exists() or target.is_symlink():
        raise InputError(f"{target} already exists", how="choose a new --out: path or remove it first")
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{target.name}.tmp-{secrets.token_hex(6)}"
    writer = _Writer(store, cid, file_mode, contained_symlinks, limits)
    writer.plan(cid)
    try:
        writer.write(cid, tmp, "")
        writer.check_links(tmp)
        if durable:
            fsync_files(writer.files)
            fsync_dirs(list(reversed(writer.dirs)))
        if target.exists() or target.is_symlink():
            raise InputError(f"{target} already exists")
        try:
            os.rename(tmp, target)
        except OSError:
            if target.exists():  # a directory someone else put there meanwhile
                raise InputError(f"{target} already exists") from None
            raise
    except BaseException:
        _remove(tmp)
        raise
    if durable:
        fsync_dirs([parent])
    return target
