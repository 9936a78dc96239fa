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


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = fh.read(n - len(out))
        if not chunk:
            raise CarStreamError(f"CAR stream ended {n - len(out)} bytes early")
        out += chunk
    return bytes(out)


def _read_varint(fh: BinaryIO) -> int | None:
    raw = bytearray()
    while True:
        b = fh.read(1)
        if not b:
            if raw:
                raise CarStreamError("CAR stream ended inside a length")
            return None
        raw += b
        if not b[0] & 0x80:
            return read_uvarint(bytes(raw), 0)[0]
        if len(raw) > 9:
            raise CarStreamError("CAR length varint too long")


def cid_length(buf: bytes) -> int:
    """Length of the binary CID at the start of ``buf`` (v1, or a v0 bare sha2-256 multihash)."""
    if buf[:2] == b"\x12\x20":
        return 34
    pos = 0
    for _ in range(3):  # version, codec, multihash code
        _, pos = read_uvarint(buf, pos)
    length, pos = read_uvarint(buf, pos)
    return pos + length


def read_sections(fh: BinaryIO) -> Iterator[tuple[bytes, bytes]]:
    """Yield (binary CID, data) per section of a CAR v1 stream; the header is checked for v1.

    Raises:
        CarStreamError: malformed or truncated stream.
    """
    n = _read_varint(fh)
    if n is None or n > MAX_HEADER:
        raise CarStreamError("missing or oversized CAR header")
    from cheng_build.cas.car import CarError, read_header

    try:
        version, _roots = read_header(_read_exact(fh, n))
    except CarError as exc:
        raise CarStreamError(exc.what) from None
    if version != 1:
        raise CarStreamError(f"CAR version {version}; a gateway stream must be version 1")
    while True:
        n = _read_varint(fh)
        if n is None:
            return
        if n > MAX_SECTION:
            raise CarStreamError(f"CAR section of {n} bytes exceeds {MAX_SECTION}")
        sec = _read_exact(fh, n)
        try:
            k = cid_length(sec)
        except ValueError as exc:
            raise CarStreamError(f"bad CID in CAR section: {exc}") from None
        if k > len(sec):
            raise CarStreamError("CAR section shorter than its CID")
        yield sec[:k], sec[k:]
