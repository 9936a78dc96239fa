"""dag-pb and UnixFS codecs: round trips, canonical form, strict decoding of garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cas import dagpb, unixfs, varint
from cheng_build.cas.cid import make_cid
from cheng_build.cas.dagpb import DagPbError, PBLink, PBNode

cids = st.builds(make_cid, st.binary(max_size=8), st.sampled_from(["raw", "dag-pb"]))
links = st.builds(PBLink, cids, st.one_of(st.none(), st.text(max_size=12)),
                  st.one_of(st.none(), st.integers(0, 2**64 - 1)))


@st.composite
def nodes(draw: st.DrawFn) -> PBNode:
    ls = draw(st.lists(links, max_size=6))
    ls.sort(key=lambda link: (link.name or "").encode())
    return PBNode(tuple(ls), draw(st.one_of(st.none(), st.binary(max_size=50))))


@settings(deadline=None)
@given(nodes())
def test_round_trip(node: PBNode) -> None:
    enc = dagpb.encode(node)
    assert dagpb.decode(enc) == node
    assert dagpb.encode(dagpb.decode(enc)) == enc


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_garbage_gives_clear_error_or_canonical_node(raw: bytes) -> None:
    try:
        node = dagpb.decode(raw)
    except DagPbError as exc:
        assert exc.what.startswith("malformed dag-pb")
        return
    # Whatever strict decoding accepts re-encodes to the same bytes: one encoding per node.
    assert dagpb.encode(node) == raw


def test_known_empty_directory_block() -> None:
    node = PBNode((), unixfs.encode(unixfs.Data(unixfs.NodeType.DIRECTORY)))
    assert dagpb.encode(node) == b"\x0a\x02\x08\x01"
    assert str(make_cid(dagpb.encode(node), "dag-pb")) == \
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"


def test_data_before_links_is_refused() -> None:
    link = PBLink(make_cid(b"x"), "a", 1)
    canonical = dagpb.encode(PBNode((link,), b"d"))
    data_part = b"\x0a\x01d"
    links_part = canonical[: -len(data_part)]
    with pytest.raises(DagPbError, match="link follows Data"):
        dagpb.decode(data_part + links_part)


@pytest.mark.parametrize("raw,msg", [
    (b"\x08\x01", "unexpected field"),            # varint wire type at node level
    (b"\x0a\x05ab", "runs past the end"),          # truncated Data
    (b"\x0a\x00\x0a\x00", "Data repeated"),
    (b"\x12\x00", "no Hash"),
    (b"\x1a\x00", "unexpected field"),             # field 3 in a node
    (b"\x0a\x80\x00", "non-minimal"),
])
def test_specific_malformations(raw: bytes, msg: str) -> None:
    with pytest.raises(DagPbError, match=msg):
        dagpb.decode(raw)


def test_unsorted_links_are_a_caller_bug() -> None:
    a, b = PBLink(make_cid(b"1"), "b"), PBLink(make_cid(b"2"), "a")
    with pytest.raises(ValueError, match="sorted"):
        dagpb.encode(PBNode((a, b)))


@settings(deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_varint_round_trip(n: int) -> None:
    enc = varint.encode(n)
    assert varint.decode(enc) == (n, len(enc))


unixfs_msgs = st.builds(
    unixfs.Data, st.sampled_from(list(unixfs.NodeType)), st.one_of(st.none(), st.binary(max_size=20)),
    st.one_of(st.none(), st.integers(0, 2**63)), st.lists(st.integers(0, 2**40), max_size=5).map(tuple),
    st.one_of(st.none(), st.integers(0, 100)), st.one_of(st.none(), st.integers(0, 1024)))


@settings(deadline=None)
@given(unixfs_msgs)
def test_unixfs_round_trip(msg: unixfs.Data) -> None:
    assert unixfs.decode(unixfs.encode(msg)) == msg


@settings(deadline=None)
@given(st.binary(max_size=60))
def test_unixfs_garbage(raw: bytes) -> None:
    try:
        unixfs.decode(raw)
    except unixfs.UnixFSError as exc:
        assert "UnixFS" in exc.what or "dag-pb" in exc.what


def test_unixfs_packed_blocksizes_and_ignored_mode() -> None:
    packed = b"\x08\x02\x18\x05\x22\x02\x02\x03\x38\xa4\x03"
    msg = unixfs.decode(packed)
    assert msg.type is unixfs.NodeType.FILE and msg.blocksizes == (2, 3) and msg.filesize == 5
