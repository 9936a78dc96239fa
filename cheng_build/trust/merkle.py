"""RFC 6962 (Certificate Transparency) Merkle tree over registry lines, and inclusion proofs.

- leaf hash  = SHA-256(0x00 || line bytes)   (the line without its newline)
- node hash  = SHA-256(0x01 || left || right)
- MTH of n leaves splits at k = the largest power of two below n (RFC 6962 section 2.1); the
  empty tree's hash is SHA-256 of nothing.

:class:`MerkleAccumulator` keeps only the "frontier" (the roots of the perfect subtrees the leaves
so far form, largest first), so the root of every prefix is available in O(log n) while a verify
streams through the log once; that is how each checkpoint's root is recomputed.
Inclusion proofs follow RFC 6962 section 2.1.1 (PATH) and are checked with RFC 9162 section
2.1.3.2's algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence

from cheng_build.core.errors import IntegrityError
from cheng_build.core.sha256 import sha256 as _sha256  # start-up: hashlib only for large logs

EMPTY_ROOT = _sha256(b"").digest()


class ProofError(IntegrityError):
    """An inclusion proof is malformed or does not lead to the claimed root."""


def leaf_hash(line: bytes) -> bytes:
    """RFC 6962 leaf hash of one line."""
    return _sha256(b"\x00" + line).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash."""
    return _sha256(b"\x01" + left + right).digest()


class MerkleAccumulator:
    """Streaming RFC 6962 root: ``add`` leaf hashes in order, ask ``root()`` at any size."""

    __slots__ = ("_frontier", "size")

    def __init__(self) -> None:
        # Roots of the perfect subtrees, largest first: one per set bit of ``size`` (so their
        # sizes need not be stored).
        self._frontier: list[bytes] = []
        self.size = 0

    def add(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        # The new leaf merges with one subtree per trailing one bit of the old size (a binary
        # counter's carries); amortised one node hash per leaf. Runs once per line on every
        # verify, hence node_hash inlined.
        n, h = self.size, leaf
        frontier = self._frontier
        while n & 1:
            h = _sha256(b"\x01" + frontier.pop() + h).digest()
            n >>= 1
        frontier.append(h)
        self.size += 1

    def root(self) -> bytes:
        """The RFC 6962 root of all leaves added so far."""
        if not self._frontier:
            return EMPTY_ROOT
        # The frontier's subtrees are perfect with strictly decreasing sizes; RFC 6962 splits at
        # the largest power of two, which is exactly the first subtree, so fold from the right.
        acc = self._frontier[-1]
        for h in reversed(self._frontier[:-1]):
            acc = node_hash(h, acc)
        return acc


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of a list of leaf hashes."""
    acc = MerkleAccumulator()
    for leaf in leaves:
        acc.add(leaf)
    return acc.root()


def _split(n: int) -> int:
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 PATH(index, leaves): the audit path proving ``leaves[index]`` is in the tree.

    Raises:
        ValueError: ``index`` out of range (a caller bug: the CLI checks the line number first).
    """
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} outside a tree of {len(leaves)}")
    path: list[bytes] = []
    lo, hi = 0, len(leaves)
    # Walk down from the root, remembering the sibling subtree at each level.
    siblings: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo = lo + k
    for a, b in reversed(siblings):
        path.append(root_of(leaves[a:b]))
    return path


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """Recompute the root an inclusion proof leads to (RFC 9162 section 2.1.3.2).

    Raises:
        ProofError: the proof has the wrong length for ``index`` and ``size``.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r
