"""The fast dag-pb link scanner gc and proofs use agrees with the strict decoder (the oracle)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cas import dagpb
from cheng_build.cas.cid import cid_bytes, make_cid
from cheng_build.storage.links import codec, links

_links = st.lists(st.tuples(st.binary(min_size=1, max_size=8), st.one_of(st.none(), st.integers(0, 2**63))),
                  max_size=30)


@given(_links, st.sampled_from([None, "", "named"]), st.one_of(st.none(), st.binary(max_size=20)))
@settings(max_examples=300)
def test_links_equal_the_decoder(entries: list[tuple[bytes, int | None]], name: str | None,
                                 data: bytes | None) -> None:
    ls = tuple(dagpb.PBLink(hash=make_cid(seed, "raw"), name=name, tsize=t) for seed, t in entries)
    block = dagpb.encode(dagpb.PBNode(links=ls, data=data))
    want = [(cid_bytes(link.hash), link.tsize or 0) for link in dagpb.decode(block).links]
    assert links(block) == want
    assert links(memoryview(block)) == want


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_links_raise_only_dagpb_error(data: bytes) -> None:
    try:
        got = links(data)
    except dagpb.DagPbError:
        return
    try:
        want = [(cid_bytes(link.hash), link.tsize or 0) for link in dagpb.decode(data).links]
    except dagpb.DagPbError:
        return  # the scanner is structural only (documented): it may accept what the decoder refuses
    assert got == want


def test_codec() -> None:
    assert codec(cid_bytes(make_cid(b"x", "raw"))) == 0x55
    assert codec(cid_bytes(make_cid(b"x", "dag-pb"))) == 0x70
    assert codec(b"\x12\x20" + bytes(32)) == 0x70 and codec(b"") == -1
