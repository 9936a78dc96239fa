"""Early writeback of appended pack bytes: a hint that never fails a write, never loses a byte."""

from __future__ import annotations

import hashlib
import os
import sys

import pytest

from cheng_build.cas.blockstore import Blockstore
from cheng_build.core.writeback import start_writeback
from cheng_build.pkg.fetch.blocks import to_cid
from cheng_build.pkg.fetch.sink import BlockSink


def _raw(data: bytes) -> bytes:
    return b"\x01\x55\x12\x20" + hashlib.sha256(data).digest()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_writeback_is_asked_for_on_linux_and_the_bytes_stay(tmp_path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.pwrite(fd, b"a" * 100_000, 0)
        assert start_writeback(fd, 0, 100_000)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"a" * 100_000


def test_a_refused_hint_is_no_error(tmp_path) -> None:
    assert not start_writeback(-1, 0, 4096)  # a bad descriptor: refused, nothing raised
    fd = os.open(tmp_path / "g", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        assert not start_writeback(fd, 0, 0)  # nothing to write
    finally:
        os.close(fd)


def test_a_fetch_sink_starts_writeback_of_each_staged_stretch(tmp_path) -> None:
    blocks = [os.urandom(70_000 + i) for i in range(6)]
    sink = BlockSink(Blockstore(tmp_path))
    sink.stage([(_raw(b), memoryview(b)) for b in blocks[:3]])
    writers = list(sink._batch._writers)
    assert writers and all(w.flushing == w.pos for w in writers)
    first = writers[0].flushing
    sink.stage([(_raw(b), memoryview(b)) for b in blocks[3:]])
    assert sink._batch._writers[-1].flushing > first  # only the new stretch is asked for
    sink.close()
    store = Blockstore(tmp_path)
    assert all(store.get(to_cid(_raw(b))) == b for b in blocks)
