"""Rebuild a store's index from its pack files (the index is lost, or damaged and moved away).

Each pack record names its CID (:mod:`.packfile`), so the packs alone say what the store holds.
Every block is verified against its CID before it is indexed: a record whose bytes do not match
(bit rot, a torn write) is left out and counted, and a later good copy of the same CID (a repair
appends one) wins. A pack's committed length becomes the end of its last whole record, so the
uncommitted tail of a killed batch is cut by the pack's next writer, as always.

Why it matters: without it, a store whose index went missing started a fresh, empty index, whose
first pack id (1) named an existing pack file, and the next write cut that pack down to its
"committed" length of 0: every block in it was lost. A missing index is now rebuilt before
anything is written (:meth:`Blockstore._ensure_index`), and ``cheng-pkg store reindex`` rebuilds
one that is damaged.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cheng_build.cas.cid import decode_cid_bytes, verify_block
from cheng_build.cas.packfile import scan
from cheng_build.cas.packindex import create_index_file
from cheng_build.core.record import dataclass, field

__all__ = ["ReindexResult", "pack_files", "rebuild_index"]


@dataclass(slots=True)
class ReindexResult:
    """What a rebuild found: packs read, blocks indexed (and their bytes), records left out."""

    packs: int = 0
    blocks: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)  # "<pack>@<offset>: <why>"


def pack_files(packs_dir: Path) -> dict[int, Path]:
    """Pack id -> file, for every ``<id>.pack`` in ``packs_dir`` (other names are not packs)."""
    found: dict[int, Path] = {}
    if packs_dir.is_dir():
        for p in packs_dir.iterdir():
            stem, dot, ext = p.name.partition(".")
            if dot and ext == "pack" and stem.isdigit() and p.is_file():
                found[int(stem)] = p
    return found


def rebuild_index(packs_dir: Path, index_path: Path) -> ReindexResult:
    """Write a new index at ``index_path`` (atomically: built aside, renamed) from the packs.

    The caller holds the store lock exclusively and has moved any old index away.

    Raises:
        OSError / sqlite3.Error: a pack cannot be read or the index cannot be written.
    """
    res = ReindexResult()
    rows: dict[bytes, tuple[int, int, int]] = {}
    committed: dict[int, int] = {}
    for pack, path in sorted(pack_files(packs_dir).items()):
        res.packs += 1
        end = 0
        with open(path, "rb") as fh:
            for key, off, length in scan(path):
                end = off + length
                fh.seek(off)
                data = fh.read(length)
                try:
                    verify_block(decode_cid_bytes(key), data)
                except Exception as exc:  # a CID we cannot read, or bytes that do not match it
                    res.corrupt.append(f"{path.name}@{off}: {exc}")
                    continue
                rows[key] = (pack, off, length)
        committed[pack] = end

    def fill(db: sqlite3.Connection) -> None:
        db.executemany("INSERT INTO packs (id, committed) VALUES (?, ?)", sorted(committed.items()))
        db.executemany("INSERT INTO blocks VALUES (?, ?, ?, ?)",
                       [(k, p, o, n) for k, (p, o, n) in rows.items()])

    create_index_file(index_path, fill)
    res.blocks = len(rows)
    res.bytes = sum(n for _, _, n in rows.values())
    return res
