"""CAR v1 as a byte stream: write sections to a socket, read them back from one.

Spec: https://ipld.io/specs/transport/car/carv1/ . A CAR is ``uvarint(len) || header`` where the
header is the dag-cbor map ``{"roots": [CID], "version": 1}``, then one section per block:
``uvarint(len(cid) + len(data)) || cid || data``.

``cas/car.py`` reads and writes CAR *files* (and owns the dag-cbor header codec, used here); the
gateway needs the same bytes streamed to an HTTP client as blocks are read, and the HTTP fetcher
needs to verify and store each block as it arrives without buffering a 64 MiB body, so here are
just the streaming section halves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from cheng_build.pkg.fetch.bitswap import read_uvarint, uvarint

MAX_SECTION = 4 * 1024 * 1024
MAX_HEADER = 64 * 1024


class CarStreamError(ValueError):
    """The stream is not a CAR v1 we can read (truncated, oversized, malformed)."""


def header(root: bytes) -> bytes:
    """The length-prefixed CAR v1 header naming one binary root CID."""
    from cheng_build.cas.car import encode_header
    from cheng_build.cas.cid import decode_cid_bytes

    body = encode_header([decode_cid_bytes(root)])
    return uvarint(len(body)) + body


def section(cid: bytes, data: bytes) -> bytes:
    return uvarint(len(cid) + len(data)) + cid + data


def section_parts(cid: bytes, data: bytes) -> list[bytes]:
    """A section as its pieces (length + CID, data), for a vectored send without a copy."""
    return [uvarint(len(cid) + len(data)) + cid, data]


class _Reader:
    """Reads a stream into large buffers with ``readinto`` and hands out views of them.

    A buffer is never reused or resized once a view of it is out (a fresh one is allocated and
    the unread tail copied over), so a section's data can be kept as a zero-copy slice until the
    store has written it. One copy per byte in all: the socket into our buffer.
    """

    def __init__(self, fh: BinaryIO, read_size: int) -> None:
        self.fh = fh
        self.read_size = read_size
        self.buf = bytearray(read_size)
        self.lo = 0  # next unread byte
        self.hi = 0  # end of the bytes read

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

    def varint(self) -> int | None:
        """The next uvarint, or ``None`` at a clean end of stream."""
        value = shift = i = 0
        while True:
            if self.hi - self.lo <= i and not self._fill(i + 1):
                if i == 0:
                    return None
                raise CarStreamError("CAR stream ended inside a length")
            b = self.buf[self.lo + i]
            i += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                self.lo += i
                return value
            shift += 7
            if i > 9:
                raise CarStreamError("CAR length varint too long")

    def take(self, n: int) -> memoryview:
        if not self._fill(n):
            raise CarStreamError(f"CAR stream ended {n - (self.hi - self.lo)} bytes early")
        view = memoryview(self.buf)[self.lo:self.lo + n]
        self.lo += n
        return view


def cid_length(buf: bytes | memoryview) -> int:
    """Length of the binary CID at the start of ``buf`` (v1, or a v0 bare sha2-256 multihash)."""
    if buf[:2] == b"\x12\x20":
        return 34
    pos = 0
    for _ in range(3):  # version, codec, multihash code
        _, pos = read_uvarint(buf, pos)
    length, pos = read_uvarint(buf, pos)
    return pos + length


def read_sections(fh: BinaryIO, *, read_size: int = 1 << 20
                  ) -> Iterator[tuple[bytes, memoryview]]:
    """Yield (binary CID, data) per section of a CAR v1 stream; the header is checked for v1.

    ``fh`` needs ``readinto`` (a file, ``io.BytesIO``, an ``http.client.HTTPResponse``). The
    data are read-only-by-convention views of the reader's buffers, valid for as long as they
    are kept.

    Raises:
        CarStreamError: malformed or truncated stream.
    """
    r = _Reader(fh, read_size)
    n = r.varint()
    if n is None or n > MAX_HEADER:
        raise CarStreamError("missing or oversized CAR header")
    from cheng_build.cas.car import CarError, read_header

    try:
        version, _roots = read_header(bytes(r.take(n)))
    except CarError as exc:
        raise CarStreamError(exc.what) from None
    if version != 1:
        raise CarStreamError(f"CAR version {version}; a gateway stream must be version 1")
    while True:
        n = r.varint()
        if n is None:
            return
        if n > MAX_SECTION:
            raise CarStreamError(f"CAR section of {n} bytes exceeds {MAX_SECTION}")
        sec = r.take(n)
        try:
            k = cid_length(sec)
        except ValueError as exc:
            raise CarStreamError(f"bad CID in CAR section: {exc}") from None
        if k > len(sec):
            raise CarStreamError("CAR section shorter than its CID")
        yield bytes(sec[:k]), sec[k:]
