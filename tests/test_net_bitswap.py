"""The bitswap 1.2.0 codec: round trips, and both directions against py-libp2p's generated protobuf."""

from __future__ import annotations

import pytest
from helpers_net import raw_cid
from hypothesis import given, settings
from hypothesis import strategies as st

# py-libp2p is a runtime dependency: its generated protobuf is the oracle, imported plainly.
from libp2p.bitswap.pb import bitswap_pb2 as pb2

from cheng_build.cas import varint
from cheng_build.pkg.fetch import bitswap as bs
from cheng_build.pkg.fetch.blocks import block_cid, matches, prefix_of

cids = st.binary(min_size=4, max_size=40)
entries = st.builds(bs.WantEntry, cids, st.integers(-(2**31), 2**31 - 1), st.booleans(),
                    st.sampled_from(list(bs.WantType)), st.booleans())
blocks = st.builds(bs.Block, st.binary(max_size=8), st.binary(max_size=2000))
presences = st.builds(bs.Presence, cids, st.sampled_from(list(bs.PresenceType)))
messages = st.builds(bs.Message, st.lists(entries, max_size=5).map(tuple), st.booleans(),
                     st.lists(blocks, max_size=4).map(tuple), st.lists(presences, max_size=4).map(tuple),
                     st.lists(st.binary(max_size=100), max_size=3).map(tuple),
                     st.integers(-(2**31), 2**31 - 1))


def _norm(m: bs.Message) -> tuple:
    return (m.wants, m.full, tuple((b.prefix, bytes(b.data)) for b in m.blocks), m.presences,
            tuple(bytes(b) for b in m.blocks_v100), m.pending_bytes)


def _to_pb(m: bs.Message):
    out = pb2.Message()
    for e in m.wants:
        pe = out.wantlist.entries.add()
        pe.block, pe.priority, pe.cancel = e.cid, e.priority, e.cancel
        pe.wantType, pe.sendDontHave = int(e.want_type), e.send_dont_have
    if m.full:
        out.wantlist.full = True
    for b in m.blocks:
        pb = out.payload.add()
        pb.prefix, pb.data = b.prefix, bytes(b.data)
    for p in m.presences:
        pp = out.blockPresences.add()
        pp.cid, pp.type = p.cid, int(p.type)
    out.blocks.extend(bytes(b) for b in m.blocks_v100)
    out.pendingBytes = m.pending_bytes
    return out


@settings(max_examples=200, deadline=None)
@given(messages)
def test_round_trip(m: bs.Message) -> None:
    assert _norm(bs.decode(bs.encode(m))) == _norm(m)


@settings(max_examples=200, deadline=None)
@given(messages)
def test_protobuf_oracle_reads_what_we_write_and_we_read_what_it_writes(m: bs.Message) -> None:
    parsed = pb2.Message.FromString(bs.encode(m))
    assert parsed == _to_pb(m)
    assert _norm(bs.decode(_to_pb(m).SerializeToString())) == _norm(m)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_crashes_the_decoder(data: bytes) -> None:
    try:
        bs.decode(data)
    except bs.WireError:
        pass


@given(st.integers(0, 2**63))
def test_uvarint_round_trip(n: int) -> None:
    enc = varint.encode(n)
    assert bs.read_uvarint(enc, 0) == (n, len(enc))


def test_a_non_minimal_varint_is_a_wire_error() -> None:
    # One varint rule everywhere (cas.varint): bitswap refuses what dag-pb and CAR refuse.
    with pytest.raises(bs.WireError):
        bs.read_uvarint(b"\x81\x00", 0)


def test_block_cid_recomputes_and_detects_forgery() -> None:
    data = b"hello"
    cid = bytes(raw_cid(data))
    assert block_cid(prefix_of(cid), data) == cid
    assert matches(cid, data) and not matches(cid, b"hellO")
    assert bs.cid_prefix(cid) == prefix_of(cid)


def test_oversized_message_is_refused() -> None:
    big = bs.Message(blocks=(bs.Block(b"\x01\x55\x12\x20", b"x" * (bs.MAX_MESSAGE_SIZE + 1)),))
    with pytest.raises(bs.WireError):
        bs.frame(big)


def test_dag_size_from_the_root_matches_the_sum_of_its_blocks() -> None:
    from helpers_net import DictStore, pattern, unixfs_bytes

    from cheng_build.pkg.fetch.blocks import dag_size, walk

    store = DictStore()
    root = unixfs_bytes(store, pattern(2_000_000, seed=13))
    assert dag_size(root, store.blocks[root]) == sum(len(d) for _, d in walk(store, root))
    leaf = bytes(raw_cid(b"abc"))
    assert dag_size(leaf, b"abc") == 3
