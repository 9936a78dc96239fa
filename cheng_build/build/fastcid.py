"""The input root and artifact CIDs from digests chengc already has, without the CAS importer.

Why hand-written: ``cheng_build.cas`` computes these CIDs too, but importing it loads
``multiformats`` and the native library (~45-60 ms), more than half of the wrapper's whole
budget on a cache miss. Source files are small, so the shapes needed here are the two simplest
of UnixFS (as ``ipfs add --cid-version=1 --raw-leaves`` and :mod:`cheng_build.cas.importer`
build them): a file of at most one 256 KiB chunk *is* a raw block (CID = raw + sha2-256 of its
bytes), and a directory is a dag-pb node ``{Links (sorted by name): Hash, Name, Tsize;
Data: UnixFS{Type: Directory}}``. Anything larger returns None and the caller uses the CAS.
``tests/test_chengc_fastcid.py`` checks every result against the CAS importer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Both import nothing heavy (no multiformats, no native library): the one varint codec and the
# one base32 CID encoder, shared with the CAS.
from cheng_build.cas.cid import cid_text
from cheng_build.cas.varint import encode as _uvarint
from cheng_build.core.sha256 import sha256

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import cast
else:
    def cast(_type: object, value: object) -> object:  # typing.cast, without importing typing
        return value

CHUNK = 262144  # the default UnixFS chunker, "size-262144"
_RAW, _DAG_PB, _SHA256 = 0x55, 0x70, 0x12
_DIR_DATA = b"\x08\x01"  # UnixFS Data {Type: Directory}


def _cid_bytes(codec: int, digest: bytes) -> bytes:
    return bytes([1, codec, _SHA256, 32]) + digest


def raw_cid(sha256_hex: str) -> str:
    """The CID of a single-block file whose SHA-256 is ``sha256_hex``."""
    return cid_text(_cid_bytes(_RAW, bytes.fromhex(sha256_hex)))


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _uvarint(len(payload)) + payload


def _dir_node(entries: list[tuple[bytes, bytes, int]]) -> bytes:
    """dag-pb bytes of a directory; entries are (name utf-8, child CID bytes, child Tsize)."""
    out = bytearray()
    for name, cid, tsize in sorted(entries, key=lambda e: e[0]):
        link = _field(0x0A, cid) + _field(0x12, name) + bytes([0x18]) + _uvarint(tsize)
        out += _field(0x12, link)
    out += _field(0x0A, _DIR_DATA)
    return bytes(out)


def _tree(files: Iterable[tuple[str, int, str]]) -> dict[str, object] | None:
    tree: dict[str, object] = {}  # name -> subtree dict, or (size, sha256 hex) for a file
    for path, size, sha in files:
        if size > CHUNK:
            return None
        node = tree
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})  # type: ignore[assignment]
            if not isinstance(node, dict):
                raise ValueError(f"{path}: a file and a directory share a name")
        node[parts[-1]] = (size, sha)
    return tree


def tree_car(data: Mapping[str, bytes]) -> bytes | None:
    """The CARv1 bytes of the UnixFS tree ``{posix path: bytes}`` (root = :func:`tree_root`),
    blocks in depth-first pre-order from the root and each block once, as
    :func:`cheng_build.cas.car.export_car` writes them; None when a file spans more than one
    chunk. ``chengc --sign`` writes the inputs with it without importing the CAS (the CAS path
    costs a durable block store and ~100 ms; this is one buffer)."""
    tree = _tree((p, len(b), sha256(b).hexdigest()) for p, b in data.items())
    if tree is None:
        return None
    by_sha = {sha256(b).hexdigest(): b for b in data.values()}
    blocks: list[tuple[bytes, bytes]] = []  # (cid bytes, block) in pre-order

    def build(node: dict[str, object]) -> tuple[bytes, int, list[tuple[bytes, bytes]]]:
        entries: list[tuple[bytes, bytes, int]] = []
        below: list[tuple[bytes, bytes]] = []
        for name, child in sorted(node.items(), key=lambda kv: kv[0].encode("utf-8")):
            if isinstance(child, dict):
                cid, tsize, sub = build(child)
                below += sub
            else:
                fsize, fsha = cast("tuple[int, str]", child)
                cid, tsize = _cid_bytes(_RAW, bytes.fromhex(fsha)), int(fsize)
                below.append((cid, by_sha[fsha]))
            entries.append((name.encode("utf-8"), cid, tsize))
        block = _dir_node(entries)
        cid = _cid_bytes(_DAG_PB, sha256(block).digest())
        return cid, len(block) + sum(e[2] for e in entries), [(cid, block), *below]

    root, _tsize, ordered = build(tree)
    seen: set[bytes] = set()
    for cid, block in ordered:
        if cid not in seen:
            seen.add(cid)
            blocks.append((cid, block))
    # dag-cbor {"roots": [CID], "version": 1}: keys in canonical (length-first) order, the CID as
    # tag 42 over its bytes with the identity-multibase 0x00 prefix.
    link = b"\x00" + root
    header = (b"\xa2\x65roots\x81\xd8\x2a" + bytes([0x58, len(link)]) + link + b"\x67version\x01")
    out = bytearray(_uvarint(len(header)) + header)
    for cid, block in blocks:
        out += _uvarint(len(cid) + len(block)) + cid + block
    return bytes(out)


def tree_root(files: Iterable[tuple[str, int, str]]) -> str | None:
    """The UnixFS directory CID of ``(posix path, size, sha256 hex)`` files, or None when a
    file spans more than one chunk (then the CAS importer must build its DAG)."""
    tree = _tree(files)
    if tree is None:
        return None

    def build(node: dict[str, object]) -> tuple[bytes, int]:
        entries: list[tuple[bytes, bytes, int]] = []
        for name, child in node.items():
            if isinstance(child, dict):
                cid, tsize = build(child)
            else:
                fsize, fsha = cast("tuple[int, str]", child)
                cid, tsize = _cid_bytes(_RAW, bytes.fromhex(fsha)), int(fsize)
            entries.append((name.encode("utf-8"), cid, tsize))
        block = _dir_node(entries)
        return _cid_bytes(_DAG_PB, sha256(block).digest()), len(block) + sum(e[2] for e in entries)

    return cid_text(build(tree)[0])


__all__ = ["CHUNK", "raw_cid", "tree_car", "tree_root"]
