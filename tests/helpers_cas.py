"""Test helpers for the cas area: an in-memory blockstore for DAGs too many-blocked for disk tests."""

from __future__ import annotations

from types import TracebackType

from cheng_build.cas.cid import CID, cid_str, verify_block
from cheng_build.core.errors import NotFoundError


class MemoryStore:
    """The read/write surface of :class:`Blockstore` (get/has/batch/put), held in a dict."""

    def __init__(self) -> None:
        self.blocks: dict[str, bytes] = {}

    def get(self, cid: CID) -> bytes:
        try:
            data = self.blocks[cid_str(cid)]
        except KeyError:
            raise NotFoundError(f"block {cid} is not in the store") from None
        verify_block(cid, data)
        return data

    def has(self, cid: CID) -> bool:
        return cid_str(cid) in self.blocks

    def put(self, cid: CID, data: bytes) -> None:
        verify_block(cid, data)
        self.blocks[cid_str(cid)] = bytes(data)

    def pin(self, cid: CID) -> None:
        pass

    def batch(self) -> MemoryStore:
        return self

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None
