"""The hand-written input-root CIDs equal the CAS importer's (the ipfs-compatible oracle)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.build.fastcid import CHUNK, raw_cid, tree_root
from cheng_build.cas.importer import add_bytes, add_path

name = st.from_regex(r"[a-zA-Z0-9_.\-é中]{1,8}", fullmatch=True).filter(lambda s: s not in (".", ".."))
paths = st.lists(st.lists(name, min_size=1, max_size=3).map("/".join), min_size=1, max_size=8, unique=True)


def _dirs(p: str) -> set[str]:
    return {"/".join(p.split("/")[:i]) for i in range(1, p.count("/") + 1)}


def _consistent(ps: list[str]) -> list[str]:
    """Drop paths that would make a file and a directory share a name."""
    out: list[str] = []
    for p in ps:
        if any(q == p or q in _dirs(p) or p in _dirs(q) for q in out):
            continue
        out.append(p)
    return out


@settings(max_examples=40, deadline=None)
@given(paths, st.data())
def test_tree_root_matches_the_importer(ps: list[str], data: st.DataObject) -> None:
    ps = _consistent(ps)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        files = []
        for p in ps:
            blob = data.draw(st.binary(max_size=300))
            (root / p).parent.mkdir(parents=True, exist_ok=True)
            (root / p).write_bytes(blob)
            files.append((p, len(blob), hashlib.sha256(blob).hexdigest()))
        assert tree_root(files) == str(add_path(None, root))


def test_raw_cid_matches_the_importer_and_the_vector() -> None:
    hello = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    assert raw_cid(hashlib.sha256(b"hello").hexdigest()) == hello
    for blob in (b"", b"x" * CHUNK):
        assert raw_cid(hashlib.sha256(blob).hexdigest()) == str(add_bytes(None, blob))


def test_big_files_defer_to_the_cas() -> None:
    assert tree_root([("a", CHUNK + 1, "00" * 32)]) is None


@settings(max_examples=30, deadline=None)
@given(paths, st.data())
def test_tree_car_is_the_bundle_writers_car(ps: list[str], data: st.DataObject) -> None:
    """The signed build's inputs CAR is byte for byte what --emit:bundle (the CAS path) writes,
    duplicate file contents included (each block once)."""
    from cheng_build.build.bundle import write_bundle
    from cheng_build.build.fastcid import tree_car

    ps = _consistent(ps)
    same = data.draw(st.binary(max_size=64))
    files = {p: data.draw(st.sampled_from([same, b"", b"x" * 300])) if i % 2
             else data.draw(st.binary(max_size=2000)) for i, p in enumerate(ps)}
    with tempfile.TemporaryDirectory() as d:
        car = Path(d) / "b.car"
        root = write_bundle(car, files)
        assert tree_car(files) == car.read_bytes()
        assert root == tree_root((p, len(b), hashlib.sha256(b).hexdigest()) for p, b in files.items())
    assert tree_car({"big": b"\0" * (CHUNK + 1)}) is None
