"""``chengc --emit:bundle``: exactly the inputs of a build as one deterministic CAR v1 file.

The CAR's single root is the build's input root (the UnixFS directory of the staged input tree:
``<entry>.cheng`` plus ``pkgroots/<n>/...``), so ``PKG_ROOTS=pkgroots/0,pkgroots/1,...`` inside
an unpacked bundle resolves every import to the same file; anyone can recompute the root from
the files. Blocks follow in depth-first pre-order from the root, each block once, so the same
inputs always give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def stage_tree(dest: Path, data: Mapping[str, bytes]) -> None:
    """Write ``{staged path: bytes}`` under ``dest`` (which must exist and be empty).

    Each directory is made once and files are written with plain ``os`` calls: staging runs on
    every cache miss, and per-file ``Path.mkdir(parents=True)`` cost as much as the writes.
    """
    base = os.fspath(dest)
    dirs = sorted({staged.rsplit("/", 1)[0] for staged in data if "/" in staged})
    made: set[str] = set()
    for d in dirs:
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in made:
                os.mkdir(os.path.join(base, sub))
                made.add(sub)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for staged, blob in data.items():
        fd = os.open(os.path.join(base, staged), flags, 0o644)
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


def tree_cid(directory: Path) -> str:
    """The UnixFS directory CID of a staged tree (``ipfs add -r --cid-version=1 --raw-leaves``)."""
    from cheng_build.cas.importer import add_path

    return str(add_path(None, directory))


def write_bundle(dest: Path, data: Mapping[str, bytes]) -> str:
    """Write the CAR of the tree ``data`` to ``dest`` atomically; return its root CID.

    The tree is imported into a private temporary store, so the bundle holds exactly its own
    blocks, then written by :func:`cheng_build.cas.car.export_car` (blocks in DAG order).

    Raises:
        OSError: ``dest`` cannot be written (nothing is left half-written).
    """
    import shutil
    import tempfile  # here, not at the top: a cache miss stages through this module too

    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.car import export_car
    from cheng_build.cas.importer import import_path

    work = Path(tempfile.mkdtemp(prefix="chengc-bundle-"))
    try:
        tree = work / "tree"
        tree.mkdir()
        stage_tree(tree, data)
        store = Blockstore(work / "store")
        root = import_path(store, tree).root
        export_car(store, root, dest)
        return str(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["stage_tree", "tree_cid", "write_bundle"]
