"""Differential test: our UnixFS importer against npm ``ipfs-unixfs-importer`` (same options).

Files from 0 bytes to 3 MiB around every 256 KiB chunk boundary, small chunk sizes that force two
and three tree levels, and a nested directory tree with awkward names must give identical root
CIDs. Skipped only when node/npm are absent; an npm install failure is a test failure.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from helpers_cas_js import JsImporter, tools_missing
from helpers_parts import require_part

from cheng_build.cas.importer import add_path

pytestmark = pytest.mark.network  # npm install reaches the registry

CHUNK = 262144


@pytest.fixture(scope="session")
def js(tmp_path_factory: pytest.TempPathFactory) -> JsImporter:
    why = tools_missing()
    if why:
        require_part(f"node and npm for the differential test ({why})",
                     "scripts/test.sh: apt-get install nodejs npm")
    return JsImporter.install(tmp_path_factory.mktemp("js-oracle"))


def _tree(root: Path, rng: random.Random) -> None:
    names = ["a", "B", "a.b", "a-b", "a_b", "ä", "日本", "z" * 40, "10", "9", "A", "émoji-🎉", ".hidden"]
    (root / "empty-dir").mkdir(parents=True)
    (root / "empty-file").write_bytes(b"")
    deep = root / "d1" / "d2" / "d3"
    deep.mkdir(parents=True)
    (deep / "leaf").write_bytes(rng.randbytes(CHUNK + 7))
    for name in names:
        (root / name).write_bytes(rng.randbytes(rng.randrange(0, 3000)))
        (root / "d1" / name).write_bytes(rng.randbytes(rng.randrange(0, 600_000)))


def test_roots_match_js_importer(js: JsImporter, tmp_path: Path) -> None:
    rng = random.Random(20261121)
    sizes = {0, 1, 2, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1, 3 * 1024 * 1024}
    sizes |= {rng.randrange(0, 3 * 1024 * 1024) for _ in range(6)}
    cases: list[dict[str, object]] = []
    ours: list[str] = []
    for i, size in enumerate(sorted(sizes)):
        f = tmp_path / f"f{i}"
        f.write_bytes(rng.randbytes(size))
        cases.append({"kind": "file", "path": str(f), "chunk": CHUNK})
        ours.append(str(add_path(None, f)))
    # Small chunks: 3,000 leaves (two levels) and 33,000 leaves (three levels).
    for size, chunk in [(3_000_000, 1000), (2_100_000, 64)]:
        f = tmp_path / f"deep{chunk}"
        f.write_bytes(rng.randbytes(size))
        cases.append({"kind": "file", "path": str(f), "chunk": chunk})
        ours.append(str(add_path(None, f, chunker=f"size-{chunk}")))
    tree = tmp_path / "tree"
    _tree(tree, rng)
    cases.append({"kind": "dir", "path": str(tree), "chunk": CHUNK})
    ours.append(str(add_path(None, tree)))
    theirs = js.roots(cases)
    mismatches = [(c["path"], o, t) for c, o, t in zip(cases, ours, theirs, strict=True) if o != t]
    assert mismatches == []
    assert ours[-1].startswith("bafybei")


def test_car_files_travel_both_ways(js: JsImporter, tmp_path: Path) -> None:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.car import export_car, import_car
    from cheng_build.cas.exporter import iter_dag, read_file

    rng = random.Random(5)
    data = rng.randbytes(3 * CHUNK + 1234)
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    tree = tmp_path / "tree"
    _tree(tree, rng)
    store = Blockstore(tmp_path / "ours")
    tree_root = add_path(store, tree)
    ours_car = tmp_path / "ours.car"
    n = export_car(store, tree_root, ours_car)
    js_export, js_read = js.car_ops([
        {"op": "export", "path": str(f), "chunk": CHUNK, "out": str(tmp_path / "js.car")},
        {"op": "read", "car": str(ours_car)},
    ])
    # Their CAR into our store: same root as our import of the same file, same bytes back.
    fresh = Blockstore(tmp_path / "fresh")
    roots = import_car(fresh, tmp_path / "js.car")
    assert [str(r) for r in roots] == [js_export["root"]] == [str(add_path(None, f))]
    assert read_file(fresh, roots[0]) == data
    assert len(list(iter_dag(fresh, roots[0]))) == js_export["blocks"]
    # Our CAR read by @ipld/car: our root, every block present and hashing to its CID.
    assert js_read == {"roots": [str(tree_root)], "blocks": n, "verified": n}
