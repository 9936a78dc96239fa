"""The ledger: chained appends, compat reading, tamper evidence, torn tails, locking, parsers."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.ledger.events import EVENT_KEYS, ordered
from cheng_build.ledger.ids import int32, legacy_lease_id, legacy_length_id, raw_cid
from cheng_build.ledger.log import (
    GENESIS,
    Ledger,
    LedgerError,
    encode_event,
    iter_events,
    latest_epoch,
    line_hash,
    parse_line,
    repair_torn_tail,
    verify_ledger,
)
from cheng_build.ledger.money import MoneyError, format_nano, mul_rate, read_money, to_nano

# A lease line exactly as the original wrote it (reference §1.3 key order, floats, no epoch).
ORIGINAL_LEASE = (
    '{"type":"lease","mode":"local","lease_id":"lease-bafkreig2y3tugx4co7wrvalve26aw47kly6cnei736x6'
    'bxb4ws6whnknrm","package_id":"pkg://demo/text","author_id":"node:alice","provider_id":"node:'
    'store-1","bytes":1048576,"duration_days":30,"replicas":1,"price_per_gb_month":0.25,"royalty_rate"'
    ':0.12,"treasury_rate":0.03,"start_ts":"1773912345","storage_cost":0.000244140625,"royalty":'
    '2.9296875e-05,"treasury":7.32421875e-06,"provider":0.00020751953125}'
)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_golden_ids_from_the_reference() -> None:
    assert raw_cid(b"hello") == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    assert legacy_lease_id("pkg://demo/text", "node:alice", "node:store-1", 1048576, 30, 1,
                           "1773912345") == \
        "lease-bafkreig2y3tugx4co7wrvalve26aw47kly6cnei736x6bxb4ws6whnknrm"
    payload = ["job-gpu-2", "pkg://cheng/fs", "node:alice", "node:exec-1", 0, 0, 0, 110000,
               int32(11811160064), 1, "A10G", "infer", 1, 1773912345]
    assert legacy_length_id("usage", payload) == "usage-98"
    assert int32(17179869184) == 0 and int32(16106127360) == -1073741824


def test_append_chains_orders_and_fills_ids(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.jsonl"
    led = Ledger(path)
    a = led.append({"provider": 5, "type": "lease", "package_id": "pkg://x", "mode": "",
                    "author_id": "node:a", "epoch": 3})
    b = led.append({"type": "storage_proof", "provider_id": "p", "cid": "bafy", "status": "ok"})
    lines = _lines(path)
    assert len(lines) == 2
    assert a["seq"] == 0 and a["prev"] == GENESIS
    assert b["seq"] == 1 and b["prev"] == line_hash(lines[0])
    # original key order first, new keys after, chain last; empty mode dropped
    assert list(a) == ["type", "lease_id", "package_id", "author_id", "provider", "epoch", "seq", "prev"]
    assert str(a["lease_id"]).startswith("lease-baf") and str(b["proof_id"]).startswith("proof-baf")
    assert json.loads(lines[0]) == a
    assert list(iter_events(path)) == [a, b]
    rep = verify_ledger(path)
    assert rep.ok and rep.events == 2 and rep.chained == 2 and rep.head == line_hash(lines[1])
    assert latest_epoch(path) == 3


def test_identical_events_get_distinct_ids(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.jsonl")
    ids = {led.append({"type": "exec_receipt", "status": "ok"})["receipt_id"] for _ in range(50)}
    assert len(ids) == 50


def test_caller_id_kept_and_money_must_be_int(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.jsonl")
    assert led.append({"type": "lease", "lease_id": "lease-mine"})["lease_id"] == "lease-mine"
    with pytest.raises(TypeError):
        led.append({"type": "lease", "royalty": 0.5})
    with pytest.raises(TypeError):
        led.append({"mode": "local"})
    assert len(_lines(tmp_path / "l.jsonl")) == 1


def test_original_ledger_is_read_and_continued(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    # raw control character inside a string (the original escaped only \\ " \n \r \t), blank line,
    # surrounding whitespace, a non-UTF-8 byte
    legacy = [ORIGINAL_LEASE.encode(), b"", b'  {"type":"audit","note":"tab\x01here","penalty":0.1} ',
              b'{"type":"storage_proof","note":"\xff","epoch":-1}']
    path.write_bytes(b"\n".join(legacy) + b"\n")
    events = list(iter_events(path))
    assert [e["type"] for e in events] == ["lease", "audit", "storage_proof"]
    assert events[1]["note"] == "tab\x01here"
    assert read_money(events[0], "royalty") == 29297  # 29296.875 nano rounds half-even up
    assert read_money(events[0], "price_per_gb_month") == 250_000_000
    new = Ledger(path).append({"type": "lease", "royalty": 7})
    assert new["seq"] == 4  # line index, blank line included
    rep = verify_ledger(path)
    assert rep.ok, rep.problems
    assert rep.legacy == 3 and rep.chained == 1
    assert read_money(new, "royalty") == 7


@pytest.mark.parametrize("attack", ["edit", "remove", "insert", "reorder", "unchained"])
def test_tampering_is_evident(tmp_path: Path, attack: str) -> None:
    path = tmp_path / "ledger.jsonl"
    led = Ledger(path)
    for i in range(4):
        led.append({"type": "lease", "bytes": i, "royalty": i})
    lines = _lines(path)
    if attack == "edit":
        lines[1] = lines[1].replace(b'"royalty":1', b'"royalty":9')
    elif attack == "remove":
        del lines[1]
    elif attack == "insert":
        lines.insert(2, lines[1])
    elif attack == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    else:
        lines.insert(2, b'{"type":"lease","royalty":1.5}')
    path.write_bytes(b"\n".join(lines) + b"\n")
    rep = verify_ledger(path)
    assert not rep.ok
    assert rep.problems[0].line in (2, 3)


def test_torn_tail_refused_then_repaired(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    led = Ledger(path)
    led.append({"type": "lease"})
    before = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b'{"type":"lea')
    with pytest.raises(LedgerError, match="torn"):
        led.append({"type": "lease"})
    assert verify_ledger(path).torn
    with pytest.raises(LedgerError, match="line 2"):
        list(iter_events(path))
    assert repair_torn_tail(path) == len(b'{"type":"lea')
    assert path.read_bytes() == before
    led.append({"type": "lease"})
    assert verify_ledger(path).ok


def test_failed_write_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.jsonl"
    led = Ledger(path)
    led.append({"type": "lease"})
    before = path.read_bytes()

    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        led.append_many([{"type": "lease"}, {"type": "audit"}])
    monkeypatch.undo()
    assert path.read_bytes() == before


def _writer(path: str, who: int, n: int) -> None:
    led = Ledger(Path(path))
    for i in range(n):
        led.append({"type": "audit", "auditor_id": f"w{who}", "note": str(i)})


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rep = verify_ledger(path)
    assert rep.ok, rep.problems
    assert rep.events == 160


def test_skip_bad_reads_like_the_original(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'{"type":"lease"}\nnot json\n[1]\n{"no_type":1}\n{"type":"audit"}\n')
    assert [e["type"] for e in iter_events(path, skip_bad=True)] == ["lease", "audit"]
    with pytest.raises(LedgerError, match="line 2: not a JSON object"):
        list(iter_events(path))
    assert verify_ledger(path).problem_count == 3
    assert list(iter_events(tmp_path / "missing.jsonl")) == []


def test_money() -> None:
    assert to_nano("0.25") == 250_000_000 and to_nano(2e-5) == 20_000 and to_nano(3) == 3 * 10**9
    assert format_nano(1_500_000_000) == "1.5" and format_nano(-5) == "-0.000000005"
    assert format_nano(2 * 10**9) == "2"
    assert mul_rate(244_140_625, 120_000_000) == 29_296_875
    assert mul_rate(5, 500_000_000) == 2 and mul_rate(7, 500_000_000) == 4  # half to even
    for bad in ("nan", "inf", "1e", "", "0x10"):
        with pytest.raises(MoneyError):
            to_nano(bad)
    with pytest.raises(MoneyError):
        to_nano(True)
    with pytest.raises(MoneyError):
        read_money({"prev": GENESIS, "royalty": 0.5}, "royalty")


def test_ordered_keeps_every_reference_order() -> None:
    for etype, keys in EVENT_KEYS.items():
        ev = {k: 1 for k in reversed(keys)}
        ev["type"] = etype
        if "mode" in keys:
            ev["mode"] = "p2p"
        assert list(ordered(ev)) == list(keys)


# --- property tests: the line parser and codec ------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
_events = st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k not in ("seq", "prev")),
                          _scalars, max_size=8).map(lambda d: {**d, "type": "x-event"})


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_parse_line_raises_only_ledger_error(data: bytes) -> None:
    try:
        ev = parse_line(data)
    except LedgerError:
        return
    assert isinstance(ev["type"], str) and ev["type"]


@given(_events)
@settings(max_examples=200)
def test_encode_parse_round_trip(event: dict[str, object]) -> None:
    line = encode_event(ordered(event))
    assert b"\n" not in line
    assert parse_line(line) == ordered(event)


@given(st.lists(_events, min_size=1, max_size=5))
@settings(max_examples=30, deadline=None)
def test_any_events_append_and_verify(tmp_path_factory: pytest.TempPathFactory,
                                      events: list[dict[str, object]]) -> None:
    path = tmp_path_factory.mktemp("h") / "ledger.jsonl"
    written = Ledger(path).append_many(events)
    assert list(iter_events(path)) == written
    assert verify_ledger(path).ok


@given(st.text(max_size=30))
@settings(max_examples=300)
def test_to_nano_raises_only_money_error(text: str) -> None:
    try:
        n = to_nano(text)
    except MoneyError:
        return
    assert isinstance(n, int)
