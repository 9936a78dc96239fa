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

import hashlib
from collections.abc import Iterable
from typing import cast

# Both import nothing heavy (no multiformats, no native library): the one varint codec and the
# one base32 CID encoder, shared with the CAS.
from cheng_build.cas.cid import cid_text
from cheng_build.cas.varint import encode as _uvarint

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


def tree_root(files: Iterable[tuple[str, int, str]]) -> str | None:
    """The UnixFS directory CID of ``(posix path, size, sha256 hex)`` files, or None when a
    file spans more than one chunk (then the CAS importer must build its DAG)."""
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
        return _cid_bytes(_DAG_PB, hashlib.sha256(block).digest()), len(block) + sum(e[2] for e in entries)

    return cid_text(build(tree)[0])


__all__ = ["CHUNK", "raw_cid", "tree_root"]
