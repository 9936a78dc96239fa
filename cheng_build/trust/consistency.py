"""RFC 6962 consistency proofs: the log of ``m`` lines is a prefix of the log of ``n`` lines.

A client that remembers the Merkle root of the first ``m`` lines (its last verified checkpoint)
and is shown a signed root of ``n >= m`` lines asks for ``PROOF(m, D[n])`` (RFC 6962 section
2.1.2) and checks it with RFC 9162 section 2.1.4.2's algorithm before it downloads a line: a
source that rewrote any of the first ``m`` lines cannot produce a proof that passes, so the fork
is caught from two hashes and ``log2(n)`` proof nodes, as Certificate Transparency and Go's
checksum database do. Leaves and node hashes are those of :mod:`cheng_build.trust.merkle`.
"""

from __future__ import annotations

from collections.abc import Sequence

from cheng_build.trust.merkle import EMPTY_ROOT, ProofError, node_hash, root_of


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def consistency_proof(leaves: Sequence[bytes], m: int) -> list[bytes]:
    """RFC 6962 PROOF(m, D[n]) for the ``n = len(leaves)`` leaf hashes given.

    Empty for ``m == 0`` (the empty log is a prefix of every log) and for ``m == n``.

    Raises:
        ValueError: ``m`` is negative or above ``n`` (a caller bug: the server checks first).
    """
    n = len(leaves)
    if not 0 <= m <= n:
        raise ValueError(f"consistency proof from {m} outside a tree of {n}")
    if m == 0 or m == n:
        return []
    out: list[bytes] = []
    # SUBPROOF(m, D[lo:hi], b), iteratively: each step either descends left (the old tree lies
    # within the left subtree; the right subtree's root joins the proof) or right.
    lo, hi, whole = 0, n, True
    tail: list[bytes] = []
    while True:
        size = hi - lo
        if m == size:
            if not whole:
                out.append(root_of(leaves[lo:hi]))
            break
        k = _split(size)
        if m <= k:
            tail.append(root_of(leaves[lo + k:hi]))
            hi = lo + k
        else:
            tail.append(root_of(leaves[lo:lo + k]))
            m -= k
            lo += k
            whole = False
    out.extend(reversed(tail))
    return out


def verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that ``proof`` shows the tree of ``m`` leaves with root ``old_root`` is a prefix of
    the tree of ``n`` leaves with root ``new_root`` (RFC 9162 section 2.1.4.2).

    Raises:
        ProofError: the proof is malformed or does not connect the two roots.
    """
    if not 0 <= m <= n:
        raise ProofError(f"consistency from {m} to {n} lines: the old tree is larger")
    if any(len(p) != 32 for p in proof):
        raise ProofError("a consistency proof node is not 32 bytes")
    if m == 0:
        # Every log extends the empty one; there is nothing to check but that nothing is claimed.
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        if n == 0 and new_root != EMPTY_ROOT:
            raise ProofError("the empty tree has another root")
        return
    if m == n:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("two trees of the same size have different roots")
        return
    path = list(proof)
    if m & (m - 1) == 0:  # m is a power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    if not path:
        raise ProofError("empty consistency proof")
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the remembered root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")


__all__ = ["consistency_proof", "verify_consistency"]
