"""A storage root's content: the project's CAS (UnixFS DAGs) plus the original's flat store, read-only.

Layout of a root (``build/cheng_storage`` by default)::

    <root>/packs/, index.sqlite CAS blocks (cheng_build.cas.blockstore, format 2)
    <root>/blocks/<cid>        the original tool's flat store: one file per *whole object*, named
                               by CIDv1(raw, sha2-256) of its bytes. Read (verified) when a CID is
                               not in the CAS; ``import-legacy`` moves it into the CAS.
    <root>/pins/<cid>          explicit pins (GC roots)
    <root>/leases/<id>.json    lease records (GC roots while unexpired; :mod:`.leases`)
    <root>/ledger.jsonl        the ledger (:mod:`cheng_build.ledger`)
    <root>/peer.key            the libp2p identity ``serve`` keeps across restarts

CIDs are accepted bare or with the original's ``cid://`` / ``cid:`` prefix, optionally followed by a
path inside a directory (``cid://bafy.../docs/a.txt``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import CID, RAW, CidError, cid_str, make_cid, parse_cid, verify_block
from cheng_build.core.errors import DigestMismatchError, InputError, NotFoundError

_PREFIXES = ("cid://", "cid:")


@dataclass(frozen=True, slots=True)
class CidRef:
    """A parsed ``[cid://|cid:]<cid>[/<path>]``."""

    cid: CID
    path: str = ""

    def __str__(self) -> str:
        return f"{self.cid}/{self.path}" if self.path else str(self.cid)


def parse_cid_ref(text: str) -> CidRef:
    """Parse a CID reference as the original accepted it, plus an optional path.

    Raises:
        CidError: the CID part is not a CID (exit 2, naming the text).
    """
    body = text.strip()
    for prefix in _PREFIXES:
        if body.startswith(prefix):
            body = body[len(prefix):]
            break
    head, _, rest = body.partition("/")
    how = "give a CID like bafy..., cid://bafy... or cid:bafy..."
    if not head:
        raise CidError(f"not a valid CID: {text[:80]!r}", how=how)
    try:
        cid = parse_cid(head)
    except CidError:
        raise CidError(f"not a valid CID: {text[:80]!r}", how=how) from None
    return CidRef(cid, rest.strip("/"))


class StorageStore(Blockstore):
    """The root's blockstore, which also reads the original's flat ``blocks/<cid>`` objects.

    A flat object is a raw block of the whole object; it is verified like any block, so a
    corrupted legacy file is reported, never returned.
    """

    def legacy_path(self, cid: CID) -> Path:
        return self.blocks_dir / cid_str(cid)

    def has(self, cid: CID) -> bool:
        if super().has(cid):
            return True
        if cid.codec.code != RAW:
            return False
        if self.legacy_path(cid).is_file():
            return True
        if (self.root / "legacy-map.json").exists():
            from cheng_build.storage.legacy_map import load_map

            return cid_str(cid) in load_map(self.root)
        return False

    def get(self, cid: CID) -> bytes:
        try:
            return super().get(cid)
        except NotFoundError:
            if cid.codec.code != RAW:
                raise
            path = self.legacy_path(cid)
            try:
                data = path.read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                if (self.root / "legacy-map.json").exists():
                    from cheng_build.storage.legacy_map import read_mapped

                    try:
                        return read_mapped(self, cid)
                    except NotFoundError:
                        pass
                raise NotFoundError(f"block {cid} is not in the store", why=f"looked in {self.root}",
                                    how="read it from a peer with --mode:p2p --peer:<multiaddr>") from None
            try:
                verify_block(cid, data)
            except DigestMismatchError as exc:
                raise DigestMismatchError(f"legacy object {cid} is corrupt",
                                          why=f"{path} does not hash to its CID") from exc
            return data

    def legacy_objects(self) -> Iterator[tuple[CID, Path]]:
        """Every flat object of the original's store (files directly under ``blocks/``)."""
        if not self.blocks_dir.is_dir():
            return
        for f in sorted(self.blocks_dir.iterdir()):
            if not f.is_file():
                continue
            try:
                yield parse_cid(f.name), f
            except CidError:
                continue


def open_root(root: Path, *, create: bool = False) -> StorageStore:
    """The store of a storage root.

    Raises:
        InputError: the root does not exist and ``create`` is false.
    """
    if create:
        (root / "blocks").mkdir(parents=True, exist_ok=True)
    elif not root.is_dir():
        raise InputError(f"storage root {root} does not exist",
                         how=f"run 'cheng-storage init --root:{root}' first, or pass --root:<dir>")
    return StorageStore(root)


def legacy_cid(data: bytes) -> CID:
    """The original's CID of a whole object: CIDv1(raw, sha2-256) of all its bytes."""
    return make_cid(data, "raw")


def missing_blocks(store: Blockstore, root: CID, limit: int = 1) -> list[CID]:
    """Up to ``limit`` blocks of the DAG under ``root`` that are not stored (empty: complete).

    Raises:
        DigestMismatchError: a stored node is corrupt.
    """
    from cheng_build.cas.walk import block_links

    missing: list[CID] = []
    seen: set[str] = set()
    stack = [root]
    while stack and len(missing) < limit:
        cid = stack.pop()
        key = cid_str(cid)
        if key in seen:
            continue
        seen.add(key)
        if not store.has(cid):
            missing.append(cid)
            continue
        if cid.codec.code != RAW:
            stack.extend(block_links(cid, store.get(cid)))
    return missing


def fetch_from_peers(store: Blockstore, root: CID, peers: Sequence[str]) -> None:
    """Read the DAG under ``root`` from ``peers`` into ``store`` (the original cached p2p reads too).

    Every block is verified against its CID as it arrives (bitswap session); reads are free, so no
    lease is involved and nothing is pinned.

    Raises:
        UsageError: no peers were given.
        TransportError / NotFoundError: no peer could be reached or none had the blocks.
    """
    from cheng_build.core.errors import UsageError

    if not peers:
        raise UsageError(f"{root} is not in this root and no peer was given",
                         how="add --peer:<multiaddr>/p2p/<id> (or IO_PEERS) to read from a peer")
    from cheng_build.cas.cid import cid_bytes
    from cheng_build.pkg.fetch.p2p.run import fetch_p2p

    fetch_p2p(store, [cid_bytes(root)], list(peers), stall_s=float(os.environ.get("IO_STALL_S", "15")))
