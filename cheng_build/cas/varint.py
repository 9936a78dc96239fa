"""Unsigned LEB128 varints, as protobuf (dag-pb, UnixFS, bitswap), CIDs, CAR section headers and
libp2p frames write them: the one varint codec of cheng_build.

Decoding is strict: a varint must be minimal (no redundant ``0x80 ... 0x00`` groups) and fit in
64 bits, so every value has exactly one encoding and a block's bytes cannot be varied without
changing its CID (the dag-pb spec asks decoders to refuse non-canonical forms).
"""

from __future__ import annotations

__all__ = ["VarintError", "VarintTruncatedError", "decode", "encode"]

_MAX_BYTES = 10  # 64-bit values need at most 10 groups of 7 bits


class VarintError(ValueError):
    """Truncated, over-long or non-minimal varint."""


class VarintTruncatedError(VarintError):
    """The bytes end inside the varint: a stream reader may read more and try again."""


def encode(value: int) -> bytes:
    """Encode a non-negative integer below 2**64."""
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"varint out of range: {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode(buf: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None) -> tuple[int, int]:
    """Decode one varint from ``buf[pos:end]``; returns ``(value, next_pos)``.

    Raises:
        VarintError: truncated, longer than 64 bits, or not minimally encoded.
    """
    stop = len(buf) if end is None else end
    value = 0
    shift = 0
    i = pos
    while True:
        if i >= stop:
            raise VarintTruncatedError(f"truncated varint at offset {pos}")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and i - pos > 1:
                raise VarintError(f"non-minimal varint at offset {pos}")
            break
        shift += 7
        if i - pos >= _MAX_BYTES:
            raise VarintError(f"varint longer than 64 bits at offset {pos}")
    if value >= 1 << 64:
        raise VarintError(f"varint longer than 64 bits at offset {pos}")
    return value, i
