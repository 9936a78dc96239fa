"""Fixtures shared by the net tests: a dict block store and two-host bitswap harnesses."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from typing import Any

from multiformats import CID, multihash

from cheng_build.core.errors import DigestMismatchError, NotFoundError


def raw_cid(data: bytes) -> CID:
    return CID("base32", 1, "raw", multihash.wrap(hashlib.sha256(data).digest(), "sha2-256"))


class DictStore:
    """A block store in memory with the Blockstore method names (verifies on put, like it)."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}
        self.puts = 0

    def has(self, cid: CID) -> bool:
        return bytes(cid) in self.blocks

    def get(self, cid: CID) -> bytes:
        try:
            return self.blocks[bytes(cid)]
        except KeyError:
            raise NotFoundError(f"block {cid} not in store") from None

    @contextlib.contextmanager
    def batch(self) -> Iterator[DictStore]:
        yield self

    def pin(self, cid: CID) -> None:
        pass

    def put(self, cid: CID, data: bytes) -> None:
        if hashlib.sha256(data).digest() != cid.raw_digest:
            raise DigestMismatchError(f"block {cid} does not match its CID")
        self.blocks[bytes(cid)] = bytes(data)
        self.puts += 1


class CorruptStore(DictStore):
    """Serves every block with its first byte flipped: a peer sending forged data."""

    def get(self, cid: CID) -> bytes:
        data = bytearray(super().get(cid))
        data[0] ^= 0xFF
        return bytes(data)

    def put(self, cid: CID, data: bytes) -> None:  # fill without verifying
        self.blocks[bytes(cid)] = bytes(data)


def random_blocks(n: int, size: int, seed: int = 0) -> list[tuple[CID, bytes]]:
    rng = hashlib.sha256(str(seed).encode()).digest()
    out = []
    for i in range(n):
        data = rng + i.to_bytes(8, "big") + os.urandom(size - 40)
        out.append((raw_cid(data), data))
    return out


def fill(store: Any, blocks: list[tuple[CID, bytes]]) -> None:
    for cid, data in blocks:
        store.put(cid, data)


def unixfs_bytes(store: Any, data: bytes) -> bytes:
    """Import ``data`` as a UnixFS file (256 KiB chunks, raw leaves); return the binary root CID."""
    from cheng_build.cas.importer import add_bytes

    return bytes(add_bytes(store, data, chunker="size-262144"))


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` deterministic pseudo-random bytes."""
    out = bytearray()
    block = hashlib.sha256(f"seed{seed}".encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])
