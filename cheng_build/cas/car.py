"""CAR (Content Addressable aRchive): the one module for the format (spec:
https://ipld.io/specs/transport/car/carv1/): the header codec, sections, the limits every reader
obeys (:class:`CarLimits`), one streaming reader used for files (``car import``, v1 and v2) and
for a gateway's HTTP response alike, and export. Over 400 lines because it is one spec with one
set of rules; split only if a second version is written.

CARv1 format (what we write)::

    varint(len(header)) header                 header = dag-cbor {"roots": [CID...], "version": 1}
    varint(len(cid) + len(block)) cid block    one section per block, repeated to end of file

CIDs in the header are CBOR tag 42 around a byte string of ``0x00`` + the binary CID (dag-cbor's
CID encoding). Blocks are written parents first (a depth-first walk from the root), the order
``ipfs dag export`` uses, so a reader can stream a DAG top-down.

CARv2 (read only) wraps a CARv1 payload: an 11-byte pragma (``0a a1 67 'version' 02``), a 40-byte
header (16 bytes of characteristics, then little-endian u64 data offset, data size, index
offset), then the CARv1 bytes at [offset, offset + size); the index is ignored.

The header is the only CBOR we ever need, a fixed two-key map, so it is encoded and decoded by
hand here (strictly: exactly the keys roots and version, definite lengths, tag 42 CIDs) rather than
pulling in a general CBOR library.

Import is all-or-nothing: every block is checked against its CID while being staged in a
blockstore batch, and only when the whole file is good are they renamed into the store. One bad
block refuses the whole CAR, naming its CID.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cheng_build.cas import varint
from cheng_build.cas.cid import CID, CidError, cid_bytes, cid_from_bytes, decode_cid_bytes
from cheng_build.cas.walk import walk_blocks
from cheng_build.core.atomic import fsync_dir
from cheng_build.core.errors import DigestMismatchError, InputError

if TYPE_CHECKING:
    from cheng_build.cas.blockstore import Blockstore

__all__ = ["LIMITS", "CarError", "CarLimits", "cid_length", "encode_header", "export_car", "header_bytes",
           "import_car", "iter_car", "read_header", "read_sections", "section", "section_parts"]



@dataclass(frozen=True, slots=True)
class CarLimits:
    """Bounds on a CAR from outside, the same for every reader (``car import`` of a file and the
    HTTP fetcher's stream from a gateway), so both accept exactly the same streams."""

    max_header: int = 1 << 20
    max_section: int = 4 << 20  # blocks over 2 MiB are not exchanged by any IPFS tool
    read_size: int = 1 << 20  # bytes asked of the stream at a time


LIMITS = CarLimits()
CARV2_PRAGMA = bytes.fromhex("0aa16776657273696f6e02")


class CarError(InputError):
    """The file is not a well-formed CAR."""


# --- the header's CBOR --------------------------------------------------------------------------


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    if n < 1 << 8:
        return bytes((major << 5 | 24, n))
    if n < 1 << 16:
        return bytes((major << 5 | 25,)) + struct.pack(">H", n)
    if n < 1 << 32:
        return bytes((major << 5 | 26,)) + struct.pack(">I", n)
    return bytes((major << 5 | 27,)) + struct.pack(">Q", n)


def encode_header(roots: list[CID], version: int = 1) -> bytes:
    """The dag-cbor header ``{"roots": [...], "version": version}`` (keys in dag-cbor order)."""
    out = bytearray(_cbor_head(5, 2))
    out += _cbor_head(3, 5) + b"roots" + _cbor_head(4, len(roots))
    for cid in roots:
        raw = b"\x00" + cid_bytes(cid)
        out += b"\xd8\x2a" + _cbor_head(2, len(raw)) + raw
    out += _cbor_head(3, 7) + b"version" + _cbor_head(0, version)
    return bytes(out)


class _Cbor:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def head(self) -> tuple[int, int]:
        if self.pos >= len(self.buf):
            raise CarError("malformed CAR header: truncated CBOR")
        b = self.buf[self.pos]
        self.pos += 1
        major, info = b >> 5, b & 31
        if info < 24:
            return major, info
        size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if size is None or self.pos + size > len(self.buf):
            raise CarError("malformed CAR header: unsupported or truncated CBOR length")
        n = int.from_bytes(self.buf[self.pos:self.pos + size], "big")
        self.pos += size
        return major, n

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise CarError("malformed CAR header: truncated CBOR string")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out


def read_header(raw: bytes) -> tuple[int, list[CID]]:
    """Decode a CAR header; returns ``(version, roots)``.

    Raises:
        CarError: not the expected map, or CIDs that do not parse.
    """
    r = _Cbor(raw)
    major, n = r.head()
    if major != 5:
        raise CarError("malformed CAR header: not a CBOR map")
    version: int | None = None
    roots: list[CID] = []
    for _ in range(n):
        km, kn = r.head()
        if km != 3:
            raise CarError("malformed CAR header: a key is not a string")
        key = r.take(kn)
        if key == b"version":
            vm, version = r.head()
            if vm != 0:
                raise CarError("malformed CAR header: version is not an integer")
        elif key == b"roots":
            am, count = r.head()
            if am != 4:
                raise CarError("malformed CAR header: roots is not an array")
            for _ in range(count):
                tm, tag = r.head()
                bm, bn = r.head()
                if tm != 6 or tag != 42 or bm != 2:
                    raise CarError("malformed CAR header: a root is not a tag-42 CID")
                body = r.take(bn)
                if not body.startswith(b"\x00"):
                    raise CarError("malformed CAR header: a root CID lacks the 0x00 prefix")
                try:
                    roots.append(cid_from_bytes(body[1:]))
                except CidError as exc:
                    raise CarError(f"malformed CAR header: {exc.what}") from None
        else:
            raise CarError(f"malformed CAR header: unexpected key {key[:40]!r}")
    if r.pos != len(raw):
        raise CarError("malformed CAR header: trailing bytes")
    if version is None:
        raise CarError("malformed CAR header: no version")
    return version, roots


# --- reading ------------------------------------------------------------------------------------


class _Reader:
    """Reads a stream into large buffers with ``readinto`` and hands out views of them.

    A buffer is never reused or resized once a view of it is out (a fresh one is allocated and
    the unread tail copied over), so a section's data can be kept as a zero-copy slice until the
    store has written it. One copy per byte in all: the stream into our buffer.
    """

    def __init__(self, fh: BinaryIO, read_size: int) -> None:
        self.fh = fh
        self.read_size = read_size
        self.buf = bytearray(read_size)
        self.lo = 0  # next unread byte
        self.hi = 0  # end of the bytes read
        self.pos = 0  # bytes consumed from the stream so far

    def _fill(self, need: int) -> bool:
        """Make ``need`` unread bytes available; False when the stream ends first."""
        while self.hi - self.lo < need:
            if len(self.buf) - self.lo < need or self.hi == len(self.buf):
                new = bytearray(max(self.read_size, need))
                tail = self.hi - self.lo
                new[:tail] = memoryview(self.buf)[self.lo:self.hi]
                self.buf, self.lo, self.hi = new, 0, tail
            with memoryview(self.buf) as view:
                n = self.fh.readinto(view[self.hi:])  # type: ignore[attr-defined]
            if not n:
                return False
            self.hi += n
        return True

    def varint(self, what: str) -> int | None:
        """The next varint (:mod:`.varint`'s rules), or ``None`` at a clean end of stream."""
        while True:
            try:
                value, end = varint.decode(self.buf, self.lo, self.hi)
            except varint.VarintTruncatedError:
                have = self.hi - self.lo
                if self._fill(have + 1):
                    continue
                if have == 0:
                    return None
                raise CarError(f"truncated CAR: {what} is cut off") from None
            except varint.VarintError as exc:
                raise CarError(f"malformed CAR: {what}: {exc}") from None
            self.pos += end - self.lo
            self.lo = end
            return value

    def take(self, n: int, what: str) -> memoryview:
        if not self._fill(n):
            raise CarError(f"truncated CAR: {what} is cut off")
        view = memoryview(self.buf)[self.lo:self.lo + n]
        self.lo += n
        self.pos += n
        return view


def cid_length(buf: bytes | memoryview) -> int:
    """Length of the binary CID at the start of ``buf`` (v1, or a v0 bare sha2-256 multihash).

    Raises:
        CarError: ``buf`` does not start with a CID.
    """
    if buf[:2] == b"\x12\x20":
        return 34
    try:
        pos = 0
        for _ in range(3):  # version, codec, multihash code
            _, pos = varint.decode(buf, pos)
        length, pos = varint.decode(buf, pos)
    except varint.VarintError as exc:
        raise CarError(f"malformed CAR: a section does not start with a CID ({exc})") from None
    return pos + length


def _header(r: _Reader, limits: CarLimits) -> bytes | None:
    n = r.varint("the header length")
    if n is None:
        return None
    if n > limits.max_header:
        raise CarError(f"malformed CAR: a header of {n} bytes exceeds the {limits.max_header}-byte limit")
    return bytes(r.take(n, "the header"))


def _sections(r: _Reader, limits: CarLimits, end: int | None) -> Iterator[tuple[bytes, memoryview]]:
    """(binary CID, data view) per section until the stream ends or ``end`` is reached."""
    while end is None or r.pos < end:
        n = r.varint("a section length")
        if n is None:
            if end is not None:
                raise CarError("truncated CARv2: data ends before the declared size")
            return
        if n > limits.max_section:
            raise CarError(f"malformed CAR: a section of {n} bytes exceeds the "
                           f"{limits.max_section}-byte limit")
        sec = r.take(n, "the last block")
        if end is not None and r.pos > end:
            raise CarError("malformed CARv2: a section runs past the declared data size")
        k = cid_length(sec)
        if k > len(sec):
            raise CarError("malformed CAR: a section's CID runs past its end")
        yield bytes(sec[:k]), sec[k:]


def read_sections(fh: BinaryIO, limits: CarLimits = LIMITS) -> Iterator[tuple[bytes, memoryview]]:
    """(binary CID, data) per section of a CAR v1 stream (a gateway's response); the header is
    checked for version 1. The CIDs are not checked against the data here.

    ``fh`` needs ``readinto`` (a file, ``io.BytesIO``, an ``http.client.HTTPResponse``). The
    data are read-only-by-convention views of the reader's buffers, valid for as long as they
    are kept.

    Raises:
        CarError: malformed, truncated or over a limit.
    """
    r = _Reader(fh, limits.read_size)
    raw = _header(r, limits)
    if raw is None:
        raise CarError("malformed CAR: the stream has no header")
    version, _roots = read_header(raw)
    if version != 1:
        raise CarError(f"CAR version {version}; a stream must be version 1")
    yield from _sections(r, limits, None)


def _as_cid(c: bytes) -> CID:
    try:
        return decode_cid_bytes(c)
    except Exception as exc:
        raise CarError("malformed CAR: a section does not start with a valid CID", why=str(exc)) from None


def _open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a CAR file for reading, refusing anything but a regular file.

    The open itself must not block: a plain ``open`` of a FIFO waits forever for a writer. So
    open non-blocking, check the kind on the open descriptor (no race with a rename), and only
    then read from it.

    Raises:
        InputError: missing, or a FIFO, device, socket or directory.
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"no such file: {name}") from None
    except IsADirectoryError:
        raise InputError(f"{name} is a directory, not a CAR file") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
        raise InputError(f"{name} is {kind}, not a CAR file",
                         why="only a regular file can be imported (reading a FIFO or device can "
                             "block forever or never end)",
                         how="save the CAR to a file first, then import that file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def iter_car(path: str | os.PathLike[str],
             limits: CarLimits = LIMITS) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """Open a CAR (v1 or v2): its roots and a lazy iterator of ``(cid, block)`` (unverified).

    Raises:
        InputError: no such file.
        CarError: not a CAR, or malformed.
    """
    fh = _open_regular(path)
    try:
        r = _Reader(fh, limits.read_size)
        header = _header(r, limits)
        if header is None:
            raise CarError(f"{os.fspath(path)} is empty, not a CAR file")
        end: int | None = None
        if varint.encode(len(header)) + header == CARV2_PRAGMA:
            offset, size, _index = struct.unpack("<QQQ", bytes(r.take(40, "the CARv2 header"))[16:])
            if offset < r.pos:
                raise CarError("malformed CARv2: the data offset points into the header")
            r.take(offset - r.pos, "the CARv2 padding")
            header = _header(r, limits)
            if header is None:
                raise CarError("CARv2 payload is empty")
            end = offset + size
        version, roots = read_header(header)
        if version != 1:
            raise CarError(f"unsupported CAR version {version}", how="we read CAR v1 and v2")
    except BaseException:
        fh.close()
        raise

    def blocks() -> Iterator[tuple[CID, bytes]]:
        with fh:
            for c, data in _sections(r, limits, end):
                yield _as_cid(c), bytes(data)

    return roots, blocks()


def import_car(store: Blockstore, path: str | os.PathLike[str], *, pin: bool = False) -> list[CID]:
    """Verify every block of a CAR and store them all, or none; returns the roots.

    Args:
        store: the blockstore.
        path: a CAR v1 or v2 file.
        pin: pin the roots (those whose block is present) after storing.

    Raises:
        DigestMismatchError: a block does not match its CID (named); nothing is stored.
        CarError / InputError: the file is not a readable CAR; nothing is stored.
        CidError: a block uses a codec or hash this store does not hold.
    """
    roots, blocks = iter_car(path)
    seen: set[bytes] = set()
    with store.batch() as batch:
        for cid, data in blocks:
            try:
                norm = cid_from_bytes(cid_bytes(cid))  # CIDv0 -> v1; refuses foreign codecs
            except CidError as exc:
                raise CidError(f"CAR block {cid}: {exc.what}", why=exc.why) from None
            try:
                batch.put(norm, data)
                seen.add(cid_bytes(norm))
            except DigestMismatchError:
                raise DigestMismatchError(
                    f"CAR block {cid} does not match its CID",
                    why=f"{os.fspath(path)} is corrupt or was tampered with; nothing was imported",
                    how="get a good copy of the CAR file") from None
        if pin:
            for root in roots:
                if cid_bytes(root) in seen or store.has(root):
                    batch.pin(root)
    return roots


# --- writing ------------------------------------------------------------------------------------


def header_bytes(root: bytes) -> bytes:
    """The length-prefixed CAR v1 header naming one binary root CID."""
    body = encode_header([decode_cid_bytes(root)])
    return varint.encode(len(body)) + body


def section(cid: bytes, data: bytes) -> bytes:
    """One section: ``varint(len(cid) + len(data)) || cid || data``."""
    return varint.encode(len(cid) + len(data)) + cid + data


def section_parts(cid: bytes, data: bytes) -> list[bytes]:
    """A section as its pieces (length + CID, data), for a vectored send without a copy."""
    return [varint.encode(len(cid) + len(data)) + cid, data]


def export_car(store: Blockstore, root: CID, out: str | os.PathLike[str]) -> int:
    """Write the DAG under ``root`` as a CARv1 file (atomically); returns the number of blocks.

    Raises:
        NotFoundError / DigestMismatchError: a block of the DAG is missing or corrupt; ``out``
            is not created.
    """
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    count = 0
    try:
        with open(tmp, "wb") as fh:
            header = encode_header([root])
            fh.write(varint.encode(len(header)) + header)
            for cid, data in walk_blocks(store.get, root):
                prefix = cid_bytes(cid)
                fh.write(varint.encode(len(prefix) + len(data)) + prefix)
                fh.write(data)
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)
    return count
