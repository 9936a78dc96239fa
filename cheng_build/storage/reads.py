"""Reading content from a storage root, and from peers in p2p mode (reads are free: no lease)."""

from __future__ import annotations

from pathlib import Path

from cheng_build.cas.cid import CID
from cheng_build.cas.exporter import export_to, read_file, resolve_path
from cheng_build.core.errors import NotFoundError
from cheng_build.storage.config import Mode, StorageConfig
from cheng_build.storage.store import StorageStore, fetch_from_peers, missing_blocks, open_root, parse_cid_ref


def _ready(cfg: StorageConfig, text: str) -> tuple[StorageStore, CID]:
    """The store and the resolved CID, fetching the DAG from peers first when p2p needs to."""
    ref = parse_cid_ref(text)
    store = open_root(cfg.root, create=cfg.mode is Mode.P2P)
    if cfg.mode is Mode.P2P and missing_blocks(store, ref.cid):
        fetch_from_peers(store, ref.cid, cfg.peers)
    elif not store.has(ref.cid):
        raise NotFoundError(f"{ref.cid} is not in {cfg.root}",
                            how="read it from a peer with --mode:p2p --peer:<multiaddr>")
    cid = resolve_path(store, ref.cid, ref.path) if ref.path else ref.cid
    return store, cid


def read_bytes(cfg: StorageConfig, text: str) -> bytes:
    """The bytes of the file named by ``text`` (``[cid://]<cid>[/path]``).

    Raises:
        CidError: not a CID. NotFoundError: not here (local) or at no peer (p2p).
        InputError: it names a directory.
    """
    store, cid = _ready(cfg, text)
    return read_file(store, cid)


def export(cfg: StorageConfig, text: str, out: Path) -> Path:
    """Write the file or tree named by ``text`` at ``out`` (all or nothing)."""
    store, cid = _ready(cfg, text)
    return export_to(store, cid, out)
