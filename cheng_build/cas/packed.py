"""What the pack maintenance code (migration, gc's sweep) needs of the store, as a protocol.

:class:`cheng_build.cas.blockstore.Blockstore` implements it; :mod:`.migrate` and :mod:`.packgc`
are written against this instead of importing the store, which imports them.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol

from cheng_build.cas.cid import CID
from cheng_build.cas.packindex import PackIndex

__all__ = ["PackedBatch", "PackedStore"]


class PackedBatch(Protocol):
    def __enter__(self) -> PackedBatch: ...

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def put_verified(self, cid: CID, data: bytes | memoryview) -> None: ...


class PackedStore(Protocol):
    root: Path
    blocks_dir: Path
    packs_dir: Path

    def index(self, *, create: bool = False) -> PackIndex | None: ...

    def pack_path(self, pack: int) -> Path: ...

    def batch_under_lock(self) -> PackedBatch: ...
