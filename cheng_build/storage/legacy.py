"""Importing the original tool's flat store (``<root>/blocks/<cid>``, one file per whole object).

Each object is verified against its name (CIDv1 raw sha2-256 of all its bytes), imported as a
UnixFS file (pinned: the original had no gc, so everything it stored was meant to stay), and then
removed from the flat store. An object up to one chunk (256 KiB) gets the same CID in both stores;
a larger one becomes a DAG with another root, so ``<root>/legacy-map.json`` maps the old CID to the
new root and reads of the old CID keep working (the bytes are checked against the old CID).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from cheng_build.cas.cid import cid_str, verify_block
from cheng_build.cas.importer import add_bytes
from cheng_build.core.atomic import atomic_write_text
from cheng_build.core.errors import DigestMismatchError
from cheng_build.storage.legacy_map import MAP_NAME, load_map
from cheng_build.storage.store import StorageStore


@dataclass(slots=True)
class LegacyImport:
    """What an import did: old CID -> new root, and the objects that failed verification."""

    imported: dict[str, str] = field(default_factory=dict)
    corrupt: list[str] = field(default_factory=list)


def import_legacy(store: StorageStore, *, keep: bool = False) -> LegacyImport:
    """Move every flat object into the CAS (see the module doc); corrupt ones are left in place."""
    out = LegacyImport()
    mapping = load_map(store.root)
    for cid, path in list(store.legacy_objects()):
        data = path.read_bytes()
        try:
            verify_block(cid, data)
        except DigestMismatchError:
            out.corrupt.append(cid_str(cid))
            continue
        root = add_bytes(store, data, pin=True)
        out.imported[cid_str(cid)] = cid_str(root)
        if root != cid:
            mapping[cid_str(cid)] = cid_str(root)
            atomic_write_text(store.root / MAP_NAME, json.dumps(mapping, sort_keys=True) + "\n")
        if not keep:
            os.unlink(path)
    return out
