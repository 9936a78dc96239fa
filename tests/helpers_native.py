"""Pure-Python reference implementations of docs/chunker.md, written from the document (not the C).

They are slow and only run on small inputs; the tests compare the C kernels against them so the
document, not the code, stays the contract.
"""

from __future__ import annotations

from collections.abc import Sequence

M64 = (1 << 64) - 1

# --- FastCDC ------------------------------------------------------------------------------------


def gear_table() -> list[int]:
    """SplitMix64 seeded with the ASCII bytes "chengcdc" read big-endian; 256 outputs."""
    state = int.from_bytes(b"chengcdc", "big")
    out = []
    for _ in range(256):
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        out.append(z ^ (z >> 31))
    return out


def mask(bits: int) -> int:
    """``bits`` one-bits at positions 62 - floor(48 k / bits), k = 0 .. bits-1."""
    return sum(1 << (62 - (48 * k) // bits) for k in range(bits))


def masks(avg: int, normalization: int) -> tuple[int, int]:
    b = avg.bit_length() - 1
    return mask(b + normalization), mask(b - normalization)


def cut(data: bytes, start: int, min_size: int, avg: int, max_size: int,
        mask_s: int, mask_l: int, gear: Sequence[int]) -> int:
    """Length of the chunk starting at ``start`` (``data`` is the whole input)."""
    n = len(data) - start
    if n <= min_size:
        return n
    end = min(n, max_size)
    center = min(n, avg)
    lo, mid, hi = min_size & ~1, center & ~1, end & ~1
    h = 0
    for i in range(lo, hi):
        h = ((h << 1) + gear[data[start + i]]) & M64
        if h & (mask_s if i < mid else mask_l) == 0:
            return i
    return end


def chunks(data: bytes, min_size: int, avg: int, max_size: int, normalization: int,
           gear: Sequence[int] | None = None, ms_ml: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    gear = gear or gear_table()
    mask_s, mask_l = ms_ml or masks(avg, normalization)
    out = []
    pos = 0
    while pos < len(data):
        n = cut(data, pos, min_size, avg, max_size, mask_s, mask_l, gear)
        out.append((pos, n))
        pos += n
    return out


# --- XXH64 and SimHash64 --------------------------------------------------------------------------

_P1, _P2, _P3, _P4, _P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                           0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & M64


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & M64
    return (_rotl(acc, 31) * _P1) & M64


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 as its specification describes it."""
    n = len(data)
    p = 0
    if n >= 32:
        v = [(seed + _P1 + _P2) & M64, (seed + _P2) & M64, seed, (seed - _P1) & M64]
        while p + 32 <= n:
            for k in range(4):
                v[k] = _round(v[k], int.from_bytes(data[p + 8 * k:p + 8 * k + 8], "little"))
            p += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M64
        for k in range(4):
            h ^= _round(0, v[k])
            h = (h * _P1 + _P4) & M64
    else:
        h = (seed + _P5) & M64
    h = (h + n) & M64
    while p + 8 <= n:
        h ^= _round(0, int.from_bytes(data[p:p + 8], "little"))
        h = (_rotl(h, 27) * _P1 + _P4) & M64
        p += 8
    if p + 4 <= n:
        h ^= (int.from_bytes(data[p:p + 4], "little") * _P1) & M64
        h = (_rotl(h, 23) * _P2 + _P3) & M64
        p += 4
    while p < n:
        h ^= (data[p] * _P5) & M64
        h = (_rotl(h, 11) * _P1) & M64
        p += 1
    h ^= h >> 33
    h = (h * _P2) & M64
    h ^= h >> 29
    h = (h * _P3) & M64
    h ^= h >> 32
    return h


def simhash64(tokens: Sequence[str | bytes]) -> int:
    hashes = [xxh64(t.encode() if isinstance(t, str) else bytes(t)) for t in tokens]
    fp = 0
    for b in range(64):
        ones = sum((h >> b) & 1 for h in hashes)
        if 2 * ones > len(hashes):
            fp |= 1 << b
    return fp
