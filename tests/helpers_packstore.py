"""Test-only surgery on a packed blockstore: damage or drop one block as a disk or a bug would.

Tests use these where they used to write to a block's file: the store has no per-block files any
more, and the public API rightly offers no way to change a stored block.
"""

from __future__ import annotations

import os

from cheng_build.cas.blockstore import Blockstore, block_key
from cheng_build.cas.cid import CID


def tamper_block(store: Blockstore, cid: CID, data: bytes | None = None) -> None:
    """Overwrite the stored bytes of ``cid`` in place: one bit flipped in the middle, or ``data``
    (at most the block's length; a shorter ``data`` also makes the block that much shorter)."""
    loc = store.locate(cid)
    assert loc is not None, f"{cid} is not in the index"
    path = store.pack_path(loc.pack)
    with open(path, "r+b") as fh:
        if data is None:
            fh.seek(loc.offset + loc.length // 2)
            b = fh.read(1)
            fh.seek(loc.offset + loc.length // 2)
            fh.write(bytes([b[0] ^ 0x40]))
        else:
            assert len(data) <= loc.length
            fh.seek(loc.offset)
            fh.write(data)
    if data is not None and len(data) < loc.length:
        idx = store.index()
        assert idx is not None
        idx.commit([(block_key(cid), loc.pack, loc.offset, len(data))], {})
    store.close()  # no cached descriptor hides the change from the next read


def drop_block(store: Blockstore, cid: CID) -> None:
    """Forget ``cid`` (as if it had never been stored); its bytes stay in the pack."""
    idx = store.index()
    assert idx is not None and store.locate(cid) is not None, f"{cid} is not in the index"
    idx.delete([block_key(cid)])


def stored_block_bytes(store: Blockstore) -> int:
    """Bytes of every block the index holds."""
    return store.stats().block_bytes


def pack_files(store: Blockstore) -> list[str]:
    return sorted(f for f in os.listdir(store.packs_dir) if f.endswith(".pack")) \
        if store.packs_dir.is_dir() else []


def index_content(path: os.PathLike[str]) -> bytes:
    """What an index records (blocks, and packs with committed bytes) as bytes to compare; empty
    for an index that records nothing (one a refused write created)."""
    import sqlite3

    db = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)
    try:
        blocks = db.execute("SELECT cid, pack, off, len FROM blocks ORDER BY cid").fetchall()
        packs = db.execute("SELECT id, committed FROM packs WHERE committed > 0 ORDER BY id").fetchall()
    finally:
        db.close()
    return repr((blocks, packs)).encode() if blocks or packs else b""
