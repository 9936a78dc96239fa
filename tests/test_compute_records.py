"""Compute records: golden vectors of the reference, compat reading, round trips (hypothesis)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.compute.legacy import legacy_id
from cheng_build.compute.records import (
    RECORDS,
    Audit,
    AuditSample,
    ExecRequest,
    FraudReport,
    Receipt,
    Record,
    RecordError,
    Usage,
    parse_event,
)
from cheng_build.ledger.events import EVENT_KEYS
from cheng_build.ledger.money import to_nano
from cheng_build.ledger.pricing import Prices, compat_cost, nano_cost, normalize_workload

JOB_GPU_2 = dict(task_id="job-gpu-2", package_id="pkg://cheng/fs", author_id="node:alice",
                 executor_id="node:exec-1", gpu_ms=110000, gpu_mem_bytes=11811160064, gpu_count=1,
                 gpu_type="A10G", workload_kind="infer", epoch=1, start_ts="1773912345")
GPU_PRICES = Prices(gpu_ms=to_nano("0.00002"), gpu_mem_gb=to_nano("0.15"),
                    royalty_rate=to_nano("0.12"), treasury_rate=to_nano("0.03"))


def test_usage_98_golden_legacy_id() -> None:
    assert legacy_id(Usage(**JOB_GPU_2)) == "usage-98"


def test_gpu_cost_golden_nano_and_compat() -> None:
    split = nano_cost(0, 0, 0, 110000, 11811160064, "infer", GPU_PRICES)
    assert (split.total, split.royalty, split.treasury, split.executor) == \
        (3_272_500_000, 392_700_000, 98_175_000, 2_781_625_000)
    f = compat_cost(0, 0, 0, 110000, 11811160064, "infer", GPU_PRICES)
    assert f.total == pytest.approx(3.2725) and f.royalty == pytest.approx(0.3927)
    assert f.treasury == pytest.approx(0.098175) and f.executor == pytest.approx(2.781625)


@given(st.integers(0, 10**9), st.integers(0, 1 << 40), st.integers(0, 1 << 40),
       st.integers(0, 10**9), st.integers(0, 1 << 40),
       st.sampled_from(["train", "infer", "other", " TRAIN ", "x"]),
       st.integers(0, 10**9), st.integers(0, 10**9))
def test_nano_parts_always_add_up(cpu: int, mem: int, io: int, gpu: int, gmem: int, wl: str,
                                  roy: int, tre: int) -> None:
    p = Prices(1000, 10**8, 5 * 10**7, 20000, 15 * 10**7, roy // 2, tre // 2)
    s = nano_cost(cpu, mem, io, gpu, gmem, wl, p)
    assert s.royalty + s.treasury + s.executor == s.total
    assert min(s.total, s.royalty, s.treasury) >= 0


def test_workload_normalised() -> None:
    assert [normalize_workload(w) for w in ("Train", " infer ", "", "gpu")] == \
        ["train", "infer", "other", "other"]


def test_original_line_reads_with_float_money_and_forgiving_getters() -> None:
    # The shape the original wrote: floats for money, no chain, unknown keys, a float int field.
    line = ('{"type":"compute","mode":"local","usage_id":"usage-98","task_id":"job-gpu-2",'
            '"cpu_ms":12.9,"gpu_ms":110000,"price_gpu_ms":2e-05,"total":3.2725,"royalty":0.3927,'
            '"epoch":1,"start_ts":"1773912345","future_key":[1,2]}')
    u = Usage.from_event(json.loads(line))
    assert u.cpu_ms == 12 and u.price_gpu_ms == 20000 and u.total == 3_272_500_000
    assert u.royalty == 392_700_000 and u.mode == "local" and u.author_id == ""
    assert u.to_compat_event()["total"] == pytest.approx(3.2725)


def test_chained_line_money_is_nano() -> None:
    ev = {"type": "audit", "penalty": 100_000_000, "prev": "0" * 64, "seq": 3}
    assert Audit.from_event(ev).penalty == 100_000_000
    assert Audit.from_event({"type": "audit", "penalty": 0.1}).penalty == 100_000_000


def test_wrong_type_is_refused() -> None:
    with pytest.raises(RecordError):
        Usage.from_event({"type": "lease"})
    assert parse_event({"type": "lease"}) is None


def test_key_order_matches_the_ledgers_table() -> None:
    for cls in RECORDS.values():
        full = {k: ("x" if kind == "str" else 1) for k, kind, _ in cls.SPEC}
        rec = cls.from_event({"type": cls.TYPE, "mode": "p2p", **full})
        keys = list(rec.to_event())
        original = [k for k in EVENT_KEYS[cls.TYPE] if k in keys]
        assert keys[:len(original)] == original, cls.TYPE


def test_receipt_always_writes_every_original_key() -> None:
    ev = Receipt(receipt_id="receipt-1").to_event()
    for k in EVENT_KEYS["exec_receipt"]:
        if k != "mode":
            assert k in ev


_text = st.text(max_size=20)


def _record_strategy(cls: type[Record]) -> st.SearchStrategy[Record]:
    kw: dict[str, Any] = {}
    for key, kind, _flags in cls.SPEC:
        if kind == "str":
            kw[key] = _text
        elif kind in ("int", "money"):
            kw[key] = st.integers(0, 2**62)
        else:
            kw[key] = st.floats(0, 1e6, allow_nan=False)
    kw["mode"] = st.sampled_from(["", "local", "p2p"]) if cls.has_mode() else st.just("")
    return st.builds(cls, **kw)


@pytest.mark.parametrize("cls", list(RECORDS.values()), ids=list(RECORDS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip_every_record(cls: type[Record], data: st.DataObject) -> None:
    rec = data.draw(_record_strategy(cls))
    wire = json.loads(json.dumps(rec.to_event()))
    assert cls.from_event(wire, money_nano=True) == rec
    chained = {**wire, "seq": 1, "prev": "0" * 64}
    assert cls.from_event(chained) == rec
    assert rec.digest() == cls.from_event(chained).digest()


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) |
                     st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@pytest.mark.parametrize("cls", list(RECORDS.values()), ids=list(RECORDS))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_parser_never_fails_on_any_values(cls: type[Record], data: st.DataObject) -> None:
    keys = [k for k, _, _ in cls.SPEC] + ["mode", "prev", "other"]
    obj = data.draw(st.dictionaries(st.sampled_from(keys), _json, max_size=12))
    obj["type"] = cls.TYPE
    rec = cls.from_event(obj)
    json.dumps(rec.to_event(), allow_nan=False)  # whatever came in, what goes out is clean JSON


def test_every_record_type_has_a_legacy_id() -> None:
    from cheng_build.ledger.events import ID_FIELDS

    for cls in (ExecRequest, Usage, Receipt, Audit, AuditSample, FraudReport):
        prefix = ID_FIELDS[cls.TYPE][1]
        assert legacy_id(cls()).startswith(prefix + "-")
