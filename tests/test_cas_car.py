"""CAR v1 export/import, v2 read, header codec against cbor2, all-or-nothing imports."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from helpers_cas import MemoryStore
from helpers_parts import import_part
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build.cas import varint
from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.car import CARV2_PRAGMA, CarError, encode_header, export_car, import_car, read_header
from cheng_build.cas.cid import CidError, make_cid
from cheng_build.cas.exporter import iter_dag, read_file
from cheng_build.cas.importer import add_bytes
from cheng_build.core.errors import DigestMismatchError, InputError


def test_round_trip_between_stores(tmp_path: Path) -> None:
    a, b = Blockstore(tmp_path / "a"), Blockstore(tmp_path / "b")
    data = os.urandom(5000)
    root = add_bytes(a, data, chunker="size-700")
    n = export_car(a, root, tmp_path / "x.car")
    assert n == len(list(iter_dag(a, root))) == 9
    assert import_car(b, tmp_path / "x.car", pin=True) == [root]
    assert read_file(b, root) == data and b.pins() == [root]


@settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000), st.integers(16, 1024))
def test_car_round_trip_property(tmp_path: Path, data: bytes, chunk: int) -> None:
    src, dst = MemoryStore(), MemoryStore()
    root = add_bytes(src, data, chunker=f"size-{chunk}")  # type: ignore[arg-type]
    out = tmp_path / "p.car"
    export_car(src, root, out)  # type: ignore[arg-type]
    assert import_car(dst, out) == [root]  # type: ignore[arg-type]
    assert dst.blocks == src.blocks


def test_header_matches_cbor2() -> None:
    cbor2 = import_part("cbor2", "pip install '.[test]' (scripts/test.sh does)")
    roots = [make_cid(b"1"), make_cid(b"2", "dag-pb")]
    ours = encode_header(roots)
    theirs = cbor2.dumps({"roots": [cbor2.CBORTag(42, b"\x00" + bytes(c)) for c in roots], "version": 1})
    assert ours == theirs
    assert read_header(theirs) == (1, roots)


@settings(deadline=None)
@given(st.binary(max_size=120))
def test_header_garbage_is_a_car_error(raw: bytes) -> None:
    try:
        read_header(raw)
    except CarError:
        pass


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_garbage_files_fail_cleanly(tmp_path: Path, raw: bytes) -> None:
    p = tmp_path / "g.car"
    p.write_bytes(raw)
    store = MemoryStore()
    try:
        import_car(store, p)  # type: ignore[arg-type]
    except (CarError, CidError, InputError, DigestMismatchError):
        assert store.blocks == {}


def test_one_bad_block_refuses_everything(tmp_path: Path) -> None:
    a, b = Blockstore(tmp_path / "a"), Blockstore(tmp_path / "b")
    root = add_bytes(a, os.urandom(3000), chunker="size-1000")
    car = tmp_path / "x.car"
    export_car(a, root, car)
    raw = bytearray(car.read_bytes())
    raw[-10] ^= 0xFF  # inside the last block
    car.write_bytes(bytes(raw))
    last = list(iter_dag(a, root))[-1]
    with pytest.raises(DigestMismatchError) as info:
        import_car(b, car)
    assert str(last) in info.value.what
    assert list(b.iter_cids()) == []


def test_truncated_car(tmp_path: Path) -> None:
    a = Blockstore(tmp_path / "a")
    root = add_bytes(a, os.urandom(3000), chunker="size-1000")
    car = tmp_path / "x.car"
    export_car(a, root, car)
    car.write_bytes(car.read_bytes()[:-5])
    b = Blockstore(tmp_path / "b")
    with pytest.raises(CarError, match="truncated"):
        import_car(b, car)
    assert list(b.iter_cids()) == []


def test_reads_carv2(tmp_path: Path) -> None:
    a = Blockstore(tmp_path / "a")
    data = os.urandom(2500)
    root = add_bytes(a, data, chunker="size-1000")
    v1 = tmp_path / "v1.car"
    export_car(a, root, v1)
    payload = v1.read_bytes()
    offset = len(CARV2_PRAGMA) + 40
    fixed = bytes(16) + struct.pack("<QQQ", offset, len(payload), 0)
    (tmp_path / "v2.car").write_bytes(CARV2_PRAGMA + fixed + payload)
    b = Blockstore(tmp_path / "b")
    assert import_car(b, tmp_path / "v2.car") == [root]
    assert read_file(b, root) == data


def test_repair_from_car(tmp_path: Path) -> None:
    store = Blockstore(tmp_path / "s")
    root = add_bytes(store, os.urandom(3000), chunker="size-1000")
    car = tmp_path / "backup.car"
    export_car(store, root, car)
    leaf = list(iter_dag(store, root))[1]
    p = store.path_for(leaf)
    os.chmod(p, 0o644)
    p.write_bytes(b"\x00" + p.read_bytes()[1:])
    with pytest.raises(DigestMismatchError, match=str(leaf)):
        read_file(store, root)
    import_car(store, car)
    read_file(store, root)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        import_car(MemoryStore(), tmp_path / "nope.car")  # type: ignore[arg-type]
    (tmp_path / "e.car").write_bytes(b"")
    with pytest.raises(CarError, match="empty"):
        import_car(MemoryStore(), tmp_path / "e.car")  # type: ignore[arg-type]


def test_section_limit(tmp_path: Path) -> None:
    header = encode_header([make_cid(b"x")])
    p = tmp_path / "big.car"
    p.write_bytes(varint.encode(len(header)) + header + varint.encode(1 << 30))
    with pytest.raises(CarError, match="exceeds"):
        import_car(MemoryStore(), p)  # type: ignore[arg-type]


def test_carv2_section_past_declared_size(tmp_path: Path) -> None:
    a = Blockstore(tmp_path / "a")
    root = add_bytes(a, os.urandom(2500), chunker="size-1000")
    export_car(a, root, tmp_path / "v1.car")
    payload = (tmp_path / "v1.car").read_bytes()
    offset = len(CARV2_PRAGMA) + 40
    fixed = bytes(16) + struct.pack("<QQQ", offset, len(payload) - 100, 0)  # size cuts a block
    (tmp_path / "v2.car").write_bytes(CARV2_PRAGMA + fixed + payload)
    with pytest.raises(CarError, match="past the declared data size"):
        import_car(MemoryStore(), tmp_path / "v2.car")  # type: ignore[arg-type]
