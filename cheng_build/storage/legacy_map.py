"""Reads through ``<root>/legacy-map.json``: an imported legacy object by its old CID (see
:mod:`.legacy`). Its own module because the store reads through it while the importer writes
through the store, and neither may import the other back.
"""

from __future__ import annotations

import json
from pathlib import Path

from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import CID, cid_str, parse_cid, verify_block
from cheng_build.cas.exporter import read_file
from cheng_build.core.errors import NotFoundError

MAP_NAME = "legacy-map.json"


def load_map(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / MAP_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def read_mapped(store: Blockstore, cid: CID) -> bytes:
    """The bytes of an imported legacy object by its old CID (checked against it).

    Raises:
        NotFoundError: not an imported legacy CID.
    """
    new = load_map(store.root).get(cid_str(cid))
    if new is None:
        raise NotFoundError(f"block {cid} is not in the store")
    data = read_file(store, parse_cid(new))
    verify_block(cid, data)
    return data
