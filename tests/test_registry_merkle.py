"""RFC 6962 Merkle tree: roots against the recursive definition, inclusion proofs both ways."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.trust import merkle


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written as the spec states it (the oracle)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


@settings(deadline=None)  # shared CI machines: timing is not what these test
@given(st.lists(st.binary(max_size=8), max_size=70))
def test_accumulator_matches_definition_at_every_size(lines: list[bytes]) -> None:
    acc = merkle.MerkleAccumulator()
    assert acc.root() == mth([])
    for i, line in enumerate(lines, 1):
        acc.add(merkle.leaf_hash(line))
        assert acc.root() == mth(lines[:i])


@pytest.mark.parametrize("size", [*range(1, 18), 31, 32, 33, 100])
def test_inclusion_proofs_verify_and_tampering_fails(size: int) -> None:
    lines = [f"line {i}".encode() for i in range(size)]
    leaves = [merkle.leaf_hash(x) for x in lines]
    root = mth(lines)
    for i in range(size):
        path = merkle.inclusion_path(leaves, i)
        assert merkle.root_from_inclusion(i, size, leaves[i], path) == root
        if size > 1:
            assert merkle.root_from_inclusion(i, size, merkle.leaf_hash(b"forged"), path) != root
            with pytest.raises(merkle.ProofError):
                merkle.root_from_inclusion(i, size, leaves[i], [*path, path[0]])
