"""Storage proofs: challenge-response inclusion proofs on a UnixFS DAG, checked against its root CID.

The original's ``proof`` hashed the whole object on the prover's own word. Here a verifier who
knows only the root CID asks for ``k`` pieces chosen from a public seed, and the prover must answer
with the blocks on the path from the root to each (an IPFS Merkle inclusion proof).

Challenges
    ``T`` = the sum of the root's link ``Tsize`` fields (the DAG's size; 0 for a raw root). Challenge
    ``i`` (0 <= i < k) is the byte offset
    ``o_i = int(sha256(b"cheng.storage.proof.v1\\n" + seed + b"\\n" + root_cid_bytes + u32be(i))) mod T``.
    Walking down, at a dag-pb node with links of Tsizes ``t_1..t_n`` the offset falls into one link
    (cumulative sums); the walk continues in it with the offset reduced by the sizes before it and
    scaled to the child's own link total (a Tsize also counts the child node's bytes), and ends at
    a block with no links: a raw leaf, in practice. The seed is public (the previous
    settlement's hash, or ``--seed``), so anyone can recompute the challenges; the prover learns
    them only when asked, and the Tsizes come from blocks the root CID fixes.

Detection
    Leaves are chosen in proportion to their bytes; with equal-sized chunks, a prover missing a
    fraction ``f`` of the leaves fails one challenge with probability ``f`` and passes all ``k``
    with probability ``(1 - f)^k``.

Wire format (version 1; every integer an unsigned LEB128 varint, ``bytes`` = varint length + data)
    request  = version(1) | root_cid: bytes | seed: bytes | k
    response = version(1) | status (0 ok, 1 not held) | nblocks | nblocks * block: bytes
               | k | k * (plen | plen * block index)
    Each path lists, for one challenge, indexes into the block list from the root down to the
    leaf; a block shared by several paths (the root) is sent once. The verifier hashes each block
    against the CID its parent links to (the root against the root CID), so a wrong block, a
    wrong path or a path that stops early fails that challenge. The recorded ``proof_hash`` is
    sha256 of the request followed by the binary CIDs of the blocks checked along each path (the
    raw answer's sha256 when it could not be read that far).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cheng_build.cas import varint
from cheng_build.cas.cid import CID, CidError, cid_bytes, cid_from_bytes, decode_cid_bytes, verify_block
from cheng_build.core.errors import ChengError, InputError, NotFoundError
from cheng_build.storage.links import DAG_PB_CODEC, RAW_CODEC, codec, links

VERSION = 1
DOMAIN = b"cheng.storage.proof.v1\n"
MAX_K = 256
MAX_SEED = 256
MAX_CID = 128
MAX_DEPTH = 64
MAX_BLOCK = 4 * 1024 * 1024
MAX_RESPONSE = MAX_K * 2 * 1024 * 1024 + (1 << 20)
STATUS_OK = 0
STATUS_NOT_HELD = 1


class ProofFormatError(InputError):
    """A proof request or response does not decode."""


# --- varints ---------------------------------------------------------------------------------


_uv = varint.encode  # the one varint codec (cas/varint.py)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def uv(self, limit: int) -> int:
        n = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise ProofFormatError("proof message is truncated")
            b = self.data[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise ProofFormatError("proof message has an over-long varint")
        if n > limit:
            raise ProofFormatError(f"proof message value {n} exceeds {limit}")
        return n

    def blob(self, limit: int) -> bytes:
        n = self.uv(limit)
        if self.pos + n > len(self.data):
            raise ProofFormatError("proof message is truncated")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def view(self, limit: int) -> memoryview:
        """Like :meth:`blob` without the copy (blocks are hashed in place)."""
        n = self.uv(limit)
        if self.pos + n > len(self.data):
            raise ProofFormatError("proof message is truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProofFormatError("proof message has trailing bytes")


# --- messages --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A challenge: prove ``root`` for ``k`` offsets derived from ``seed``."""

    root: CID
    seed: bytes
    k: int


@dataclass(frozen=True, slots=True)
class Response:
    """A prover's answer: the blocks and, per challenge, the path through them."""

    status: int
    blocks: tuple[bytes | memoryview, ...]
    paths: tuple[tuple[int, ...], ...]


def encode_request(req: Request) -> bytes:
    rb = cid_bytes(req.root)
    return (_uv(VERSION) + _uv(len(rb)) + rb + _uv(len(req.seed)) + req.seed + _uv(req.k))


def decode_request(data: bytes) -> Request:
    """Raises: ProofFormatError on anything malformed."""
    r = _Reader(data)
    if r.uv(1 << 32) != VERSION:
        raise ProofFormatError("unsupported proof request version")
    raw = r.blob(MAX_CID)
    try:
        root = cid_from_bytes(raw)
    except ChengError:
        raise ProofFormatError("proof request names no valid CID") from None
    seed = r.blob(MAX_SEED)
    k = r.uv(MAX_K)
    r.end()
    if k < 1:
        raise ProofFormatError("proof request asks for no challenge")
    return Request(root, seed, k)


def encode_response(resp: Response) -> bytes:
    parts = [_uv(VERSION), _uv(resp.status), _uv(len(resp.blocks))]
    for b in resp.blocks:
        parts += [_uv(len(b)), bytes(b)]
    parts.append(_uv(len(resp.paths)))
    for p in resp.paths:
        parts.append(_uv(len(p)))
        parts += [_uv(i) for i in p]
    return b"".join(parts)


def decode_response(data: bytes) -> Response:
    """Raises: ProofFormatError on anything malformed (sizes and counts are bounded)."""
    if len(data) > MAX_RESPONSE:
        raise ProofFormatError("proof response is too large")
    r = _Reader(data)
    if r.uv(1 << 32) != VERSION:
        raise ProofFormatError("unsupported proof response version")
    status = r.uv(1)
    nblocks = r.uv(MAX_K * MAX_DEPTH + 1)
    blocks = tuple(r.view(MAX_BLOCK) for _ in range(nblocks))
    k = r.uv(MAX_K)
    paths = []
    for _ in range(k):
        plen = r.uv(MAX_DEPTH)
        path = tuple(r.uv(max(nblocks - 1, 0)) for _ in range(plen))
        if plen and not nblocks:
            raise ProofFormatError("proof path refers to no block")
        paths.append(path)
    r.end()
    return Response(status, blocks, tuple(paths))


# --- challenges ------------------------------------------------------------------------------


def offsets(seed: bytes, root: CID, k: int, total: int) -> list[int]:
    """The ``k`` challenge offsets in ``[0, total)`` (all 0 when ``total`` is 0)."""
    rb = cid_bytes(root)
    out = []
    for i in range(k):
        h = hashlib.sha256(DOMAIN + seed + b"\n" + rb + i.to_bytes(4, "big")).digest()
        out.append(int.from_bytes(h, "big") % total if total else 0)
    return out


_Memo = dict[bytes, list[tuple[bytes, int]]]


def _links(cid: bytes, data: bytes | memoryview, memo: _Memo | None = None) -> list[tuple[bytes, int]]:
    """``(binary CID, Tsize)`` of a block's links (none for a raw leaf).

    ``memo`` (per proof) keeps the root's links, which every challenge starts from: the block
    behind a CID never changes, so scanning it once is enough.
    """
    c = codec(cid)
    if c == RAW_CODEC:
        return []
    if c != DAG_PB_CODEC:
        raise ProofFormatError("a block on the path is neither raw nor dag-pb")
    if memo is None:
        return links(data)
    got = memo.get(cid)
    if got is None:
        got = memo[cid] = links(data)
    return got


def _total(cid: bytes, data: bytes | memoryview, memo: _Memo | None = None) -> int:
    return sum(t for _, t in _links(cid, data, memo))


def _step(entries: list[tuple[bytes, int]], offset: int) -> tuple[int, int] | None:
    """``(link index, offset inside it)`` for ``offset``, or None past the end (bad Tsizes)."""
    for i, (_, t) in enumerate(entries):
        if offset < t:
            return i, offset
        offset -= t
    return None


def _rescale(offset: int, tsize: int, child_cid: bytes, child: bytes | memoryview) -> int:
    """The offset inside a child, in the child's own link total.

    A link's Tsize counts the child's DAG *and* the child node's own bytes, so the child's links
    add up to a little less; the offset is scaled proportionally (both sides compute the same).
    """
    inner = _total(child_cid, child)
    return offset * inner // tsize if tsize else 0


def _verified(cid: bytes, data: bytes | memoryview) -> None:
    """Raise unless ``data`` hashes to the binary CID ``cid``."""
    verify_block(decode_cid_bytes(cid), data)


# --- prover ----------------------------------------------------------------------------------


def prove(get: Callable[[CID], bytes], req: Request) -> Response:
    """Answer a challenge from a store's ``get`` (verified reads).

    A challenge whose path hits a missing block gets the path as far as it goes (it fails); a
    missing root answers ``not held``.
    """
    try:
        root_data = get(req.root)
    except NotFoundError:
        return Response(STATUS_NOT_HELD, (), ())
    rb = cid_bytes(req.root)
    blocks: list[bytes | memoryview] = [root_data]
    index: dict[bytes, int] = {rb: 0}
    paths = []
    memo: _Memo = {}
    for off in offsets(req.seed, req.root, req.k, _total(rb, root_data, memo)):
        path = [0]
        cid = rb
        data: bytes | memoryview = root_data
        for _ in range(MAX_DEPTH):
            entries = _links(cid, data, memo)
            if not entries:
                break
            step = _step(entries, off)
            if step is None:
                break
            j, off = step
            cid, tsize = entries[j]
            if cid in index:
                data = blocks[index[cid]]
            else:
                try:
                    data = get(decode_cid_bytes(cid))
                except (NotFoundError, CidError, ValueError):
                    break
                index[cid] = len(blocks)
                blocks.append(data)
            path.append(index[cid])
            off = _rescale(off, tsize, cid, data)
        paths.append(tuple(path))
    return Response(STATUS_OK, tuple(blocks), tuple(paths))


# --- verifier --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a verifier concluded: per-challenge results and the first reason of a failure."""

    ok: bool
    k: int
    passed: int
    total_bytes: int
    reason: str
    proof_hash: str


def verify(req: Request, data: bytes | None) -> Verdict:
    """Check a response (its bytes, or None when there was no answer) against ``req`` alone."""
    if data is None:
        return Verdict(False, req.k, 0, 0, "no answer (timeout)", "")
    def raw_hash() -> str:  # evidence of a malformed answer, hashed only then
        return hashlib.sha256(data).hexdigest()

    try:
        resp = decode_response(data)
    except ProofFormatError as exc:
        return Verdict(False, req.k, 0, 0, f"malformed response: {exc.what}", raw_hash())
    if resp.status != STATUS_OK or not resp.blocks:
        return Verdict(False, req.k, 0, 0, "provider does not hold the root", raw_hash())
    if len(resp.paths) != req.k:
        return Verdict(False, req.k, 0, 0, f"{len(resp.paths)} paths for {req.k} challenges",
                       raw_hash())
    root_data = resp.blocks[0]
    rb = cid_bytes(req.root)
    try:
        verify_block(req.root, root_data)
        memo: _Memo = {}
        total = _total(rb, root_data, memo)
    except ChengError:
        return Verdict(False, req.k, 0, 0, "wrong root block", raw_hash())
    passed = 0
    reason = ""
    # The proof hash commits to the request and to the CIDs of every block checked on each path
    # (hashing the whole answer again would double the verifier's work).
    ph = hashlib.sha256(encode_request(req))
    checked: set[tuple[bytes, int]] = set()
    for i, (off, path) in enumerate(zip(offsets(req.seed, req.root, req.k, total), resp.paths,
                                        strict=True)):
        why = _check_path(rb, resp.blocks, path, off, memo, ph, checked)
        if why is None:
            passed += 1
        elif not reason:
            reason = f"challenge {i}: {why}"
    return Verdict(passed == req.k, req.k, passed, total, reason, ph.hexdigest())


def _check_path(root: bytes, blocks: tuple[bytes | memoryview, ...], path: tuple[int, ...], off: int,
                memo: _Memo, ph: Any, checked: set[tuple[bytes, int]]) -> str | None:
    if not path or path[0] != 0:
        return "path does not start at the root"
    cid, data = root, blocks[0]
    for depth in range(1, MAX_DEPTH + 1):
        try:
            entries = _links(cid, data, memo)
        except ChengError:
            return f"block {_show(cid)} does not decode"
        if not entries:
            return None if depth == len(path) else "path goes on below a leaf"
        step = _step(entries, off)
        if step is None:
            return f"offset beyond {_show(cid)}'s links"
        if depth >= len(path):
            return f"path stops at {_show(cid)}, above the challenged leaf (block missing)"
        j, off = step
        (cid, tsize), data = entries[j], blocks[path[depth]]
        try:
            seen = (cid, path[depth])
            if seen not in checked:  # two challenges landing on one leaf: hash it once
                _verified(cid, data)
                checked.add(seen)
            off = _rescale(off, tsize, cid, data)
        except (ChengError, ValueError):
            return f"wrong block for {_show(cid)}"
        ph.update(cid)
    return "path too deep"


def _show(cid: bytes) -> str:
    try:
        return str(decode_cid_bytes(cid))
    except (ChengError, ValueError):
        return cid.hex()
