"""Where verified blocks of a fetch go: staged to the store as they arrive, made durable together.

The transfer code (bitswap, the HTTP fetcher) hashes every block it receives to recognise it, so
a block handed to :class:`BlockSink` is already verified. The sink stages it with
``Batch.put_verified`` (one hash per block in all, not two) into one long-lived store batch, and
commits that batch once ``COMMIT_BYTES`` are staged and when the fetch ends: a 64 MiB package
costs one ``fdatasync`` of a pack and one index commit (see ``cas/blockstore.py``). Staged blocks
are appended to a pack at once, not held in memory, so a large fetch holds little.

A fetch that fails still commits what it staged (:meth:`close` always commits): every verified
block is kept and the next fetch resumes from it. A process killed mid-fetch loses at most the
blocks since the last commit (``COMMIT_BYTES``), and leaves only an uncommitted pack tail that
the next writer, ``Blockstore.clean_orphans`` or gc cuts off.

Stores without ``batch()`` (the duck-typed stores of tests and embedders) get ``put`` per block,
which verifies again; the trusted path is only taken where the store offers it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from cheng_build.pkg.fetch.blocks import BlockStore, to_cid

# Staged bytes after which the batch is committed and a new one begun: bounds what a killed
# process loses, while a typical package (<= 64 MiB) is made durable in one go.
COMMIT_BYTES = 64 * 1024 * 1024

__all__ = ["COMMIT_BYTES", "BlockSink"]


class BlockSink:
    """Verified blocks -> ``store``; call :meth:`stage` from one worker thread at a time.

    Args:
        store: the block store (``cas.blockstore.Blockstore`` for the trusted, batched path).
        commit_bytes: staged bytes per durable commit.
    """

    def __init__(self, store: BlockStore, *, commit_bytes: int = COMMIT_BYTES) -> None:
        self.store = store
        self.commit_bytes = commit_bytes
        self._cm: Any = None  # the store's batch context manager, while one is open
        self._batch: Any = None  # ... and what it yielded
        self._trusted = callable(getattr(store, "batch", None))
        self._staged_bytes = 0
        self._lock = threading.Lock()  # stage/commit may run on different worker threads
        self.committed = 0  # commits done (tests count them)

    def stage(self, items: Sequence[tuple[bytes, bytes | memoryview]]) -> None:
        """Write ``items`` (binary CID, already verified bytes) to the store.

        Raises:
            StoreError: the store cannot be written (the open batch's staged blocks are
                removed by the store; :meth:`close` still ends the batch).
        """
        with self._lock:
            if not self._trusted:
                # A store of someone else's may keep what it is given: hand it bytes of its
                # own, not a view into a received message's buffer.
                for c, data in items:
                    self.store.put(to_cid(c), bytes(data))
                return
            for c, data in items:
                if self._batch is None:
                    self._cm = self.store.batch()  # type: ignore[attr-defined]
                    self._batch = self._cm.__enter__()
                put = getattr(self._batch, "put_verified", None) or self._batch.put
                put(to_cid(c), data)
                self._staged_bytes += len(data)
                if self._staged_bytes >= self.commit_bytes:
                    self._commit_locked()
            kick = getattr(self._batch, "start_writeback", None)
            if kick is not None:  # the disk works while the next blocks arrive
                kick()

    def commit(self) -> None:
        """Make everything staged so far durable and visible.

        Raises:
            StoreError: the commit failed (the staged blocks are cut off their pack).
        """
        with self._lock:
            self._commit_locked()

    def _commit_locked(self) -> None:
        cm, self._cm, self._batch, self._staged_bytes = self._cm, None, None, 0
        if cm is not None:
            cm.__exit__(None, None, None)
            self.committed += 1

    def close(self) -> None:
        """Commit what is staged (also after a failed fetch: verified blocks are kept)."""
        self.commit()
