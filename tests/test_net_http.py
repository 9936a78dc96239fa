"""The trustless HTTP gateway and the HTTP fetcher, against each other on 127.0.0.1."""

from __future__ import annotations

import http.client
import io

import pytest
from helpers_net import CorruptStore, DictStore, pattern, raw_cid, unixfs_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cas import car
from cheng_build.core.errors import DigestMismatchError, NotFoundError, UsageError
from cheng_build.pkg.fetch.blocks import cid_text, walk
from cheng_build.pkg.fetch.http import fetch_dag, gateway_url
from cheng_build.pkg.serve import Gateway

pytestmark = pytest.mark.network


@pytest.fixture()
def served():
    store = DictStore()
    root = unixfs_bytes(store, pattern(1_500_000, seed=3))
    gw = Gateway(store)
    yield store, root, gw
    gw.close()


def _get(url: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), body


def test_raw_block_and_car_follow_the_trustless_gateway_convention(served) -> None:
    store, root, gw = served
    status, headers, body = _get(gw.url, f"/ipfs/{cid_text(root)}?format=raw")
    assert status == 200 and headers["Content-Type"] == "application/vnd.ipld.raw"
    assert body == store.blocks[root]
    status, headers, body = _get(gw.url, f"/ipfs/{cid_text(root)}",
                                 {"Accept": "application/vnd.ipld.car"})
    assert status == 200 and headers["Content-Type"].startswith("application/vnd.ipld.car")
    sections = list(car.read_sections(io.BytesIO(body)))
    assert [c for c, _ in sections] == [c for c, _ in walk(store, root)]
    assert all(store.blocks[c] == d for c, d in sections)


@pytest.mark.parametrize(("path", "code"), [
    ("/ipfs/bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq?format=raw", 404),
    ("/ipfs/not-a-cid?format=raw", 400),
    ("/ipns/x", 404),
    ("/ipfs/bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq", 406),
    ("/ipfs/bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq?format=tar", 406),
])
def test_gateway_refuses_what_it_cannot_serve_verifiably(served, path: str, code: int) -> None:
    _, _, gw = served
    assert _get(gw.url, path)[0] == code


def test_gateway_is_read_only(served) -> None:
    _, root, gw = served
    host, port = gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("PUT", f"/ipfs/{cid_text(root)}", body=b"x")
    assert conn.getresponse().status == 405


def test_http_fetch_verifies_and_resumes_without_refetching(served) -> None:
    store, root, gw = served
    dst = DictStore()
    stats = fetch_dag(dst, root, gw.url)
    assert dst.blocks == store.blocks and stats.blocks_fetched == len(store.blocks)
    # Lose half the leaves (an interrupted fetch): only those are fetched again.
    lost = [c for c in list(dst.blocks) if c != root][::2]
    for c in lost:
        del dst.blocks[c]
    stats = fetch_dag(dst, root, gw.url)
    assert stats.blocks_fetched == len(lost) and dst.blocks == store.blocks


def test_http_fetch_refuses_a_gateway_serving_forged_bytes() -> None:
    good = DictStore()
    root = unixfs_bytes(good, pattern(600_000, seed=4))
    bad = CorruptStore()
    bad.blocks = dict(good.blocks)
    # Leave the root intact so the walk reaches the corrupted leaves.
    gw = Gateway(_RootIntact(bad, good, root))
    try:
        dst = DictStore()
        with pytest.raises(DigestMismatchError, match="sent a bad block"):
            fetch_dag(dst, root, gw.url)
        assert all(good.blocks[c] == d for c, d in dst.blocks.items())
    finally:
        gw.close()


class _RootIntact:
    def __init__(self, bad, good, root) -> None:
        self.bad, self.good, self.root = bad, good, root

    def has(self, cid):
        return self.good.has(cid)

    def get(self, cid):
        return self.good.get(cid) if bytes(cid) == self.root else self.bad.get(cid)


def test_http_fetch_of_an_unknown_cid_is_not_found(served) -> None:
    _, _, gw = served
    with pytest.raises(NotFoundError):
        fetch_dag(DictStore(), bytes(raw_cid(b"nobody has this")), gw.url)


def test_gateway_addresses() -> None:
    assert gateway_url("/ip4/127.0.0.1/tcp/8080/http") == "http://127.0.0.1:8080"
    assert gateway_url("http://h:1/") == "http://h:1"
    with pytest.raises(UsageError):
        gateway_url("/ip4/127.0.0.1/tcp/8080")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=8))
def test_car_stream_round_trips(blobs: list[bytes]) -> None:
    cids = [bytes(raw_cid(b)) for b in blobs]
    pairs = list(zip(cids, blobs, strict=True))
    data = car.header_bytes(cids[0]) + b"".join(car.section(c, b) for c, b in pairs)
    assert list(car.read_sections(io.BytesIO(data))) == pairs
    with pytest.raises(car.CarError):
        list(car.read_sections(io.BytesIO(data[:-1] if blobs[-1] else data[:-2])))


def test_gateway_car_is_byte_identical_to_cas_export_car(tmp_path) -> None:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.car import export_car, import_car
    from cheng_build.cas.cid import decode_cid_bytes

    store = Blockstore(tmp_path / "s")
    root = unixfs_bytes(store, pattern(1_200_000, seed=12))
    gw = Gateway(store)
    try:
        status, _, body = _get(gw.url, f"/ipfs/{cid_text(root)}?format=car")
    finally:
        gw.close()
    export_car(store, decode_cid_bytes(root), tmp_path / "x.car")
    assert status == 200 and body == (tmp_path / "x.car").read_bytes()
    (tmp_path / "y.car").write_bytes(body)
    assert [bytes(c) for c in import_car(Blockstore(tmp_path / "t"), tmp_path / "y.car")] == [root]
