"""Pack files: blocks appended one after another to large files, one writer per pack at a time.

Format of ``<root>/packs/<id>.pack`` (blockstore format 2)::

    header   8 bytes   b"CHPACK\\x00\\x02"
    record   1 byte    0xB1 (a record starts here)
             1 byte    length of the binary CID (n)
             4 bytes   length of the block (m), unsigned little-endian
             n bytes   the binary CID
             m bytes   the block

Records are only ever appended. Each record names its CID so a pack can be read without the
index (:func:`scan`: migration checks, and rebuilding an index by hand); the index
(:mod:`cheng_build.cas.packindex`) points at the block bytes of each record directly. Bytes past
the pack's *committed* length (the index's ``packs.committed``) were written by a batch that was
never acknowledged (killed or failed): the next writer to take the pack truncates them.

A writer owns a pack by holding ``flock(LOCK_EX)`` on its file for the whole batch; several
writers (processes or threads) each take a different pack, so they append in parallel and
meet only at the index commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from cheng_build.cas.packindex import PackIndex
from cheng_build.core.record import dataclass, field
from cheng_build.core.writeback import start_writeback

__all__ = ["HEADER", "PACK_LIMIT", "PackWriter", "acquire", "fresh", "pack_path", "record_header", "scan"]

HEADER = b"CHPACK\x00\x02"
_MARK = 0xB1
_REC = struct.Struct("<BBI")  # mark, cid length, block length
PACK_LIMIT = 256 << 20  # a batch moves on to another pack past this size (compaction granularity)
_CANDIDATES = 8  # open packs a writer tries before it starts a new one


def pack_path(packs_dir: Path, pack: int) -> Path:
    return packs_dir / f"{pack}.pack"


def record_header(key: bytes, length: int) -> bytes:
    return _REC.pack(_MARK, len(key), length) + key


@dataclass(slots=True)
class PackWriter:
    """One pack owned (flocked) by one batch: appends at :attr:`pos`, from :attr:`start` on."""

    pack: int
    fd: int
    start: int  # the committed length when this batch took the pack
    pos: int  # where the next record goes
    created: bool  # this batch created the file (its directory entry must be made durable)
    appended: list[int] = field(default_factory=list)
    flushing: int = -1  # writeback asked for up to here (-1: from :attr:`start`)

    def append(self, key: bytes, data: bytes | memoryview) -> int:
        """Write one record; returns the offset of the block's bytes.

        Raises:
            OSError: the write failed (the caller discards the batch).
        """
        head = record_header(key, len(data))
        want = len(head) + len(data)
        n = os.pwritev(self.fd, [head, data], self.pos)
        if n != want:  # a short write (a full disk on some file systems): finish it or fail
            rest = (head + bytes(data))[n:]
            while rest:
                k = os.pwrite(self.fd, rest, self.pos + want - len(rest))
                if k <= 0:
                    raise OSError("short write to a pack")
                rest = rest[k:]
        off = self.pos + len(head)
        self.pos += want
        return off

    def sync(self) -> None:
        os.fdatasync(self.fd)

    def start_writeback(self) -> None:
        """Have the disk start on what was appended since the last call (a hint; :meth:`sync`
        is still what makes it durable), so the final sync has little left to wait for."""
        begin = self.start if self.flushing < 0 else self.flushing
        if self.pos > begin and start_writeback(self.fd, begin, self.pos - begin):
            self.flushing = self.pos

    def release(self, *, rollback: bool) -> None:
        """Unlock and close; ``rollback`` first cuts off what this batch appended."""
        try:
            if rollback and self.pos > self.start:
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, self.start)
        finally:
            os.close(self.fd)  # closing releases the flock


def _take(packs_dir: Path, pack: int, index: PackIndex) -> PackWriter | None:
    """Lock pack ``pack`` for writing, or None when another writer holds it (or it is gone)."""
    path = pack_path(packs_dir, pack)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        # Read the committed length only now, under the pack's lock: a writer that held it a
        # moment ago has committed (and moved the mark) before it let go.
        committed = index.committed(pack)
        if committed is None:  # dropped by a compaction: not ours to write
            os.close(fd)
            return None
        size = os.fstat(fd).st_size
        if committed == 0:
            # A new pack, or one whose first batch never committed: start it afresh.
            os.ftruncate(fd, 0)
            os.pwrite(fd, HEADER, 0)
            return PackWriter(pack, fd, 0, len(HEADER), True)
        if size != committed:
            os.ftruncate(fd, committed)  # the tail of a batch that was never acknowledged
    except BaseException:
        os.close(fd)
        raise
    return PackWriter(pack, fd, committed, committed, False)


def acquire(packs_dir: Path, index: PackIndex, held: frozenset[int] = frozenset()) -> PackWriter:
    """A pack for one batch to append to: an open one nobody holds, else a new one. ``held``:
    the packs this batch has filled already (still uncommitted, so they look open): trying them
    again would fail the flock and close a freshly truncated file, which makes ext4 flush it
    (auto_da_alloc) in the middle of the batch.

    Raises:
        OSError / sqlite3.Error: the packs directory or the index cannot be written.
    """
    packs_dir.mkdir(parents=True, exist_ok=True)
    for pack in index.open_packs(_CANDIDATES + len(held), PACK_LIMIT):
        if pack in held:
            continue
        w = _take(packs_dir, pack, index)
        if w is not None:
            return w
    while True:
        w = _take(packs_dir, index.new_pack(), index)
        if w is not None:
            return w


def fresh(packs_dir: Path, index: PackIndex) -> PackWriter:
    """A new, empty pack (for compaction, which must not append to a pack it is emptying)."""
    packs_dir.mkdir(parents=True, exist_ok=True)
    while True:
        w = _take(packs_dir, index.new_pack(), index)
        if w is not None:
            return w


def scan(path: Path) -> Iterator[tuple[bytes, int, int]]:
    """Every record of a pack file: (binary CID, offset of the block, block length).

    Stops at the first incomplete or unrecognised record (the uncommitted tail of a crash).
    """
    with open(path, "rb") as fh:
        if fh.read(len(HEADER)) != HEADER:
            return
        pos = len(HEADER)
        while True:
            head = fh.read(_REC.size)
            if len(head) < _REC.size:
                return
            mark, klen, blen = _REC.unpack(head)
            if mark != _MARK:
                return
            key = fh.read(klen)
            if len(key) < klen:
                return
            off = pos + _REC.size + klen
            fh.seek(blen, os.SEEK_CUR)
            if fh.tell() > os.fstat(fh.fileno()).st_size:
                return
            yield key, off, blen
            pos = off + blen
