"""Verified blocks into the store: the trusted put, the fetch sink, one hash per fetched block."""

from __future__ import annotations

import io

import pytest
from helpers_net import DictStore, pattern, raw_cid, unixfs_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cas import blockstore as bs_mod
from cheng_build.cas import car
from cheng_build.cas.blockstore import Blockstore
from cheng_build.core.errors import DigestMismatchError
from cheng_build.pkg.fetch import blocks
from cheng_build.pkg.fetch.blocks import cid_text, walk
from cheng_build.pkg.fetch.http import fetch_dag
from cheng_build.pkg.fetch.sink import BlockSink
from cheng_build.pkg.serve import Gateway


def _count(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    calls = [0]
    real = getattr(module, name)

    def counted(*a: object, **k: object) -> object:
        calls[0] += 1
        return real(*a, **k)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_put_verified_does_not_hash_and_reads_still_verify(tmp_path, monkeypatch) -> None:
    good = pattern(5000, seed=1)
    cid = raw_cid(good)
    bad = b"X" + good[1:]
    bad_cid = raw_cid(pattern(5000, seed=2))
    store = Blockstore(tmp_path)
    hashed = _count(monkeypatch, bs_mod, "verify_block")
    with store.batch() as batch:
        batch.put_verified(cid, good)
        batch.put_verified(bad_cid, bad)  # a caller breaking the contract ...
        assert batch.staged == 2
    assert hashed[0] == 0
    assert store.get(cid) == good
    with pytest.raises(DigestMismatchError, match=cid_text(bytes(bad_cid))):
        store.get(bad_cid)  # ... is still caught on the first read
    # The untrusted put is unchanged: it hashes and refuses.
    with pytest.raises(DigestMismatchError), store.batch() as batch:
        batch.put(raw_cid(b"other"), b"not other")
    assert hashed[0] == 3  # the two reads and the untrusted put each hashed


def test_put_verified_outside_a_batch_is_misuse(tmp_path) -> None:
    batch = Blockstore(tmp_path).batch()
    with pytest.raises(RuntimeError):
        batch.put_verified(raw_cid(b"x"), b"x")


def test_sink_commits_once_per_package_and_on_close(tmp_path) -> None:
    src = DictStore()
    root = unixfs_bytes(src, pattern(1_200_000, seed=4))
    items = list(walk(src, root))
    store = Blockstore(tmp_path)
    sink = BlockSink(store)
    sink.stage(items[:3])
    assert sink.committed == 0 and not store.has(blocks.to_cid(items[0][0]))  # staged, not visible
    sink.stage(items[3:])
    sink.close()
    assert sink.committed == 1
    assert all(store.get(blocks.to_cid(c)) == d for c, d in items)
    small = BlockSink(Blockstore(tmp_path / "small"), commit_bytes=300_000)
    small.stage(items)
    small.close()
    assert small.committed == 3  # 6 blocks (5 leaves of <= 256 KiB): a commit every 2


def test_sink_puts_into_a_store_without_batches() -> None:
    class Plain(DictStore):
        batch = None  # type: ignore[assignment]

    store = Plain()
    sink = BlockSink(store)
    data = pattern(1000, seed=5)
    sink.stage([(bytes(raw_cid(data)), data)])
    sink.close()
    assert store.puts == 1


@pytest.mark.network
def test_http_fetch_hashes_each_block_exactly_once(tmp_path, monkeypatch) -> None:
    src = DictStore()
    root = unixfs_bytes(src, pattern(1_500_000, seed=6))
    n = len(list(walk(src, root)))
    gw = Gateway(src)
    try:
        recognised = _count(monkeypatch, blocks, "digest")
        rehashed = _count(monkeypatch, bs_mod, "verify_block")
        stats = fetch_dag(Blockstore(tmp_path), root, gw.url)
    finally:
        gw.close()
    assert stats.blocks_fetched == n
    assert recognised[0] == n and rehashed[0] == 0
    store = Blockstore(tmp_path)
    assert all(store.get(blocks.to_cid(c)) == d for c, d in walk(src, root))


@pytest.mark.network
def test_http_fetch_drops_a_corrupted_block_and_names_it(tmp_path) -> None:
    src = DictStore()
    root = unixfs_bytes(src, pattern(1_500_000, seed=8))
    leaves = [c for c, _ in walk(src, root) if c[:2] == b"\x01\x55"]
    victim = leaves[2]
    src.blocks[victim] = b"\x00" + src.blocks[victim][1:]
    gw = Gateway(src)
    try:
        with pytest.raises(DigestMismatchError) as err:
            fetch_dag(Blockstore(tmp_path), root, gw.url)
    finally:
        gw.close()
    assert cid_text(victim) in err.value.what and gw.url in err.value.what
    store = Blockstore(tmp_path)
    assert not store.has(blocks.to_cid(victim))
    assert store.has(blocks.to_cid(root))  # what came before it, verified, is kept


class _Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read (a slow socket)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=8),
       st.integers(1, 700), st.integers(1, 5000))
def test_car_reader_survives_any_read_pattern(blobs: list[bytes], step: int, read_size: int) -> None:
    root = bytes(raw_cid(blobs[0]))
    body = car.header_bytes(root) + b"".join(
        car.section(bytes(raw_cid(b)), b) for b in blobs)
    got = list(car.read_sections(_Trickle(body, step), car.CarLimits(read_size=read_size)))
    assert [(c, bytes(d)) for c, d in got] == [(bytes(raw_cid(b)), b) for b in blobs]
    with pytest.raises(car.CarError):
        list(car.read_sections(io.BytesIO(body[:-1]), car.CarLimits(read_size=read_size)))


@pytest.mark.network
def test_p2p_fetch_hashes_each_block_exactly_once(tmp_path, monkeypatch) -> None:
    import trio

    from cheng_build.pkg.fetch import libp2p_adapter as lp
    from cheng_build.pkg.fetch.p2p.node import BitswapNode
    from cheng_build.pkg.fetch.p2p.session import fetch

    src = DictStore()
    root = unixfs_bytes(src, pattern(1_500_000, seed=9))
    n = len(list(walk(src, root)))
    recognised = _count(monkeypatch, blocks, "digest")
    rehashed = _count(monkeypatch, bs_mod, "verify_block")

    async def main() -> int:
        import multiaddr

        prov, fetcher = lp.make_host(), lp.make_host()
        async with prov.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]), \
                BitswapNode.running(prov, src), fetcher.run(listen_addrs=[]), \
                BitswapNode.running(fetcher, Blockstore(tmp_path), serve=False) as node:
            stats = await fetch(node, [root], [lp.parse_peer_addr(lp.listen_addrs(prov)[0])])
            return stats.blocks_fetched

    assert trio.run(main) == n
    assert recognised[0] == n and rehashed[0] == 0
    store = Blockstore(tmp_path)
    assert all(store.get(blocks.to_cid(c)) == d for c, d in walk(src, root))
