"""The HTTP fetch's pipeline: raw leaves are hashed on a worker thread, never stored unchecked.

A gateway's CAR is read on one thread; each raw leaf's hash against its CID runs on a worker
while the next bytes arrive, and a leaf reaches the store only after it matched. A forged leaf
in any batch, in flight or the last one, refuses the gateway naming that leaf; the blocks before
it (verified) are kept, the forged one never is.
"""

from __future__ import annotations

import pytest
from helpers_net import DictStore, pattern, unixfs_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cas.blockstore import Blockstore
from cheng_build.core.errors import DigestMismatchError
from cheng_build.pkg.fetch import http as http_mod
from cheng_build.pkg.fetch.blocks import cid_text, to_cid, walk
from cheng_build.pkg.fetch.http import fetch_dag
from cheng_build.pkg.serve import Gateway

pytestmark = pytest.mark.network

CHUNK = 262144
LEAVES = 10


@pytest.fixture(scope="module")
def dag() -> tuple[DictStore, bytes, list[bytes]]:
    src = DictStore()
    root = unixfs_bytes(src, pattern(LEAVES * CHUNK, seed=19))
    order = [c for c, _ in walk(src, root)]  # the gateway's CAR order (depth first)
    return src, root, order


def _forged(src: DictStore, victim: bytes) -> DictStore:
    bad = DictStore()
    bad.blocks = dict(src.blocks)
    data = bad.blocks[victim]
    bad.blocks[victim] = bytes([data[0] ^ 1]) + data[1:]
    return bad


@settings(max_examples=12, deadline=None)
@given(pick=st.integers(min_value=0, max_value=LEAVES - 1),
       batch=st.sampled_from([1, CHUNK, 3 * CHUNK, 64 * CHUNK]),
       pending=st.sampled_from([0, 1, 4]))
def test_a_forged_leaf_in_any_batch_is_refused_and_never_stored(
        dag: tuple[DictStore, bytes, list[bytes]], tmp_path_factory: pytest.TempPathFactory,
        pick: int, batch: int, pending: int) -> None:
    src, root, order = dag
    leaves = [c for c in order if c[:2] == b"\x01\x55"]
    victim = leaves[pick]
    gw = Gateway(_forged(src, victim))
    dst = tmp_path_factory.mktemp("dst")
    saved = http_mod.BATCH_BYTES, http_mod.PENDING_BATCHES
    http_mod.BATCH_BYTES, http_mod.PENDING_BATCHES = batch, pending
    try:
        with pytest.raises(DigestMismatchError) as err:
            fetch_dag(Blockstore(dst), root, gw.url)
    finally:
        http_mod.BATCH_BYTES, http_mod.PENDING_BATCHES = saved
        gw.close()
    assert cid_text(victim) in err.value.what and gw.url in err.value.what
    store = Blockstore(dst)
    assert not store.has(to_cid(victim))
    before = order[:order.index(victim)]
    assert all(store.get(to_cid(c)) == src.blocks[c] for c in before)  # verified, kept
    for c in order:  # nothing stored is anything but the real block
        if store.has(to_cid(c)):
            assert store.get(to_cid(c)) == src.blocks[c]


def test_small_batches_many_in_flight_fetch_everything(
        dag: tuple[DictStore, bytes, list[bytes]], tmp_path, monkeypatch) -> None:
    src, root, order = dag
    monkeypatch.setattr(http_mod, "BATCH_BYTES", 1)
    monkeypatch.setattr(http_mod, "PENDING_BATCHES", 3)
    gw = Gateway(src)
    try:
        stats = fetch_dag(Blockstore(tmp_path), root, gw.url)
    finally:
        gw.close()
    assert stats.blocks_fetched == len(order)
    store = Blockstore(tmp_path)
    assert all(store.get(to_cid(c)) == src.blocks[c] for c in order)


def test_leaves_already_stored_are_not_written_twice(
        dag: tuple[DictStore, bytes, list[bytes]], tmp_path) -> None:
    src, root, order = dag
    store = Blockstore(tmp_path)
    kept = [c for c in order if c[:2] == b"\x01\x55"][::3]
    with store.batch() as b:
        for c in kept:
            b.put(to_cid(c), src.blocks[c])
    gw = Gateway(src)
    try:
        fetch_dag(store, root, gw.url)
    finally:
        gw.close()
    assert all(store.get(to_cid(c)) == src.blocks[c] for c in order)
    # The store's batch saw the kept copies and skipped them: the packs hold each block once.
    packs = sum(p.stat().st_size for p in (tmp_path / "packs").iterdir())
    assert packs < sum(len(src.blocks[c]) for c in order) + len(kept) * CHUNK // 2
