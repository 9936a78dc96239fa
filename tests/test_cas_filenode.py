"""filenode.file_node writes the same bytes as dagpb.encode of the PBNode the importer used to build."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cas import dagpb, unixfs
from cheng_build.cas.cid import cid_bytes, cid_from_digest, decode_cid_bytes
from cheng_build.cas.filenode import file_node

_child = st.tuples(st.binary(min_size=32, max_size=32), st.sampled_from(["raw", "dag-pb"]),
                   st.sampled_from(["sha2-256", "blake3"]),
                   st.integers(0, 2**63), st.integers(0, 2**63))


def _reference(children: list[tuple[bytes, int, int]]) -> bytes:
    data = unixfs.encode(unixfs.Data(unixfs.NodeType.FILE, filesize=sum(c[2] for c in children),
                                     blocksizes=tuple(c[2] for c in children)))
    links = tuple(dagpb.PBLink(decode_cid_bytes(c[0]), "", c[1]) for c in children)
    return dagpb.encode(dagpb.PBNode(links, data))


@settings(max_examples=300, deadline=None)
@given(st.lists(_child, min_size=1, max_size=200))
def test_same_bytes_as_dagpb_encode(kids: list[tuple[bytes, str, str, int, int]]) -> None:
    children = [(cid_bytes(cid_from_digest(d, codec, h)), tsize, fsize)
                for d, codec, h, tsize, fsize in kids]
    if sum(c[2] for c in children) >= 2**64:
        return  # not a file anyone can have; both encoders refuse it
    block = file_node(children)
    assert block == _reference(children)
    node = dagpb.decode(block)
    assert [cid_bytes(link.hash) for link in node.links] == [c[0] for c in children]
    assert unixfs.decode(node.data).blocksizes == tuple(c[2] for c in children)


def test_a_known_block() -> None:
    """Two raw leaves of 262144 and 10 bytes: links, then Data {Type 2, filesize 262154, blocksizes}."""
    leaves = [(cid_bytes(cid_from_digest(bytes([i]) * 32, "raw")), n, n) for i, n in ((1, 262144), (2, 10))]
    block = file_node(leaves)
    assert block == _reference(leaves)
    assert block.endswith(b"\x0a\x0c\x08\x02\x18\x8a\x80\x10\x20\x80\x80\x10\x20\x0a")
    assert block.count(b"\x12\x00\x18") == 2  # each link: empty name, then Tsize
