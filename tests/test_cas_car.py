"""CAR v1 export/import, v2 read, header codec against cbor2, all-or-nothing imports."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from helpers_cas import MemoryStore
from helpers_packstore import tamper_block
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
    good = store.get(leaf)
    tamper_block(store, leaf, bytes([good[0] ^ 0xFF]) + good[1:])  # always a change
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


# --- one reader: a file (`car import`) and a gateway's stream accept the same CARs ---------------


def _both(tmp_path: Path, data: bytes) -> tuple[object, object]:
    """What the file reader and the stream reader make of the same CAR v1 bytes."""
    import io

    from cheng_build.cas.car import iter_car, read_sections

    p = tmp_path / "same.car"
    p.write_bytes(data)
    out: list[object] = []
    for read in (lambda: [(bytes(c), d) for c, d in iter_car(p)[1]],
                 lambda: [(c, bytes(d)) for c, d in read_sections(io.BytesIO(data))]):
        try:
            out.append(read())
        except CarError as exc:
            out.append(type(exc))
    return out[0], out[1]


def test_a_header_over_64_kib_is_read_from_a_file_and_a_stream_alike(tmp_path: Path) -> None:
    roots = [make_cid(os.urandom(8)) for _ in range(2000)]  # ~80 KB of header
    header = encode_header(roots)
    assert len(header) > 64 * 1024
    leaf = b"leaf"
    cid = bytes(make_cid(leaf))
    data = varint.encode(len(header)) + header + varint.encode(len(cid) + len(leaf)) + cid + leaf
    by_file, by_stream = _both(tmp_path, data)
    assert by_stream == [(cid, leaf)]
    assert by_file == [(cid, leaf)] or by_file == [(make_cid(leaf), leaf)]


@pytest.mark.parametrize("length", [b"\x85\x80\x00", b"\xff" * 11, bytes([0x80 | 5])])
def test_a_bad_section_length_is_refused_by_both(tmp_path: Path, length: bytes) -> None:
    header = encode_header([make_cid(b"x")])
    data = varint.encode(len(header)) + header + length + b"\x01\x55\x12\x20"
    assert _both(tmp_path, data) == (CarError, CarError)


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 400), st.integers(0, 255))
def test_a_flipped_byte_is_judged_the_same_by_both(tmp_path: Path, where: int, value: int) -> None:
    leaves = [b"a" * 30, b"b" * 40]
    header = encode_header([make_cid(leaves[0])])
    body = b"".join(varint.encode(len(c) + len(x)) + c + x
                    for x in leaves for c in [bytes(make_cid(x))])
    data = bytearray(varint.encode(len(header)) + header + body)
    data[where % len(data)] = value
    by_file, by_stream = _both(tmp_path, bytes(data))
    # The file reader also decodes each CID, so it may refuse more; it never accepts less.
    if by_stream is CarError:
        assert by_file is CarError
    elif by_file is not CarError:
        assert [(bytes(c) if not isinstance(c, bytes) else c, d)
                for c, d in by_file] == by_stream  # type: ignore[union-attr]
