"""The audit sampling formula (reference 1.7: golden vectors), ratelimit and repute (1.8)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.compute.sampling import SampleParams, rate_to_bps, sample, score, selected
from cheng_build.compute.standing import level_of, ratelimit, repute


@pytest.mark.parametrize(("seed", "expected"), [
    ("round-1", [4183, 1959, 720]), ("demo", [5686, 1679, 1486]), ("", [5776, 9298, 7888])])
def test_golden_scores(seed: str, expected: list[int]) -> None:
    assert [score(f"receipt-{n}", seed) for n in (60, 61, 62)] == expected


@pytest.mark.parametrize(("rate", "bps"), [(0.10, 1000), (1.0, 10000), (0.0, 0), (-3, 0),
                                           (50, 5000), (100, 10000), (250, 250), (20000, 10000),
                                           (0.00004, 0), (0.00005, 1)])
def test_rate_to_bps(rate: float, bps: int) -> None:
    assert rate_to_bps(rate) == bps


def test_rate_bounds() -> None:
    assert not selected("receipt-62", "round-1", 0)
    assert selected("receipt-60", "round-1", 10000)
    assert selected("receipt-62", "round-1", 721) and not selected("receipt-62", "round-1", 720)


def _receipt(rid: str, **kw: Any) -> dict[str, Any]:
    ev = {"type": "exec_receipt", "receipt_id": rid, "request_id": "req-" + rid, "task_id": "t",
          "executor_id": "node:e", "usage_id": "u-" + rid, "status": "ok", "epoch": 5}
    ev.update(kw)
    return ev


def _ids() -> Any:
    counter = itertools.count()
    return lambda: f"sample-{next(counter)}"


def test_risk_reasons_in_order() -> None:
    evs = [
        _receipt("r1", status="bad"),
        _receipt("r2", request_id=""),
        _receipt("r3", task_id=""),
        _receipt("r4", executor_id=""),
        _receipt("r5", usage_id=""),
        _receipt("r6", executor_id="node:x"),
        _receipt("r7", executor_id="node:y"),
        _receipt("r8", executor_id="node:z"),
        {"type": "fraud_report", "receipt_id": "r6", "epoch": 5},
        {"type": "fraud_report", "executor_id": "node:y", "epoch": 4},
        {"type": "exec_receipt", "receipt_id": "old", "executor_id": "node:z", "status": "err",
         "epoch": 3},
        {"type": "fraud_report", "executor_id": "node:q", "epoch": 1},  # outside the window
        _receipt("r9", executor_id="node:q"),
    ]
    res = sample(evs, SampleParams(epoch=5, base_rate=0, high_risk_rate=1.0), ts="1",
                 new_id=_ids())
    got = {s.receipt_id: s.risk_reason for s in res.samples}
    assert got == {"r1": "receipt_status_non_ok", "r2": "request_missing", "r3": "task_missing",
                   "r4": "executor_missing", "r5": "usage_missing", "r6": "fraud_linked_receipt",
                   "r7": "fraud_linked_executor", "r8": "executor_history_bad"}
    assert res.high_risk_count == 8 and res.to_json()["count"] == 8


def test_same_ledger_same_seed_same_selection() -> None:
    evs = [_receipt(f"receipt-{i}") for i in range(300)]
    a = sample(evs, SampleParams(base_rate=0.3, seed="beacon-7"), ts="1", new_id=_ids())
    b = sample(list(reversed(list(reversed(evs)))), SampleParams(base_rate=0.3, seed="beacon-7"),
               ts="2", new_id=_ids())
    assert [s.receipt_id for s in a.samples] == [s.receipt_id for s in b.samples]
    c = sample(evs, SampleParams(base_rate=0.3, seed="beacon-8"), ts="1", new_id=_ids())
    assert [s.receipt_id for s in a.samples] != [s.receipt_id for s in c.samples]


@pytest.mark.parametrize("rate", [0.05, 0.25, 0.5])
def test_catch_rate_matches_r_statistically(rate: float) -> None:
    """Half the receipts are a cheater's; the share of them the sample catches is r within 4
    sigma (seeded: the test is deterministic)."""
    n = 4000
    evs = [_receipt(f"receipt-{i}", executor_id="node:cheat" if i % 2 else "node:honest")
           for i in range(n)]
    res = sample(evs, SampleParams(base_rate=rate, seed="stat-1"), ts="1", new_id=_ids())
    caught = sum(1 for s in res.samples if s.executor_id == "node:cheat")
    cheats = n // 2
    sigma = math.sqrt(cheats * rate * (1 - rate))
    assert abs(caught - cheats * rate) <= 4 * sigma


def test_epoch_filter_and_window_use_latest_epoch() -> None:
    evs = [_receipt("a", epoch=1), _receipt("b", epoch=2, executor_id="node:x"),
           {"type": "fraud_report", "executor_id": "node:x", "epoch": 0}, {"type": "lease"}]
    res = sample(evs, SampleParams(epoch=-1, base_rate=0, high_risk_rate=1, risk_window_epochs=3),
                 ts="1", new_id=_ids())
    assert [s.receipt_id for s in res.samples] == ["b"]  # window 0..2 includes epoch 0
    res = sample(evs, SampleParams(epoch=2, base_rate=0, high_risk_rate=1, risk_window_epochs=2),
                 ts="1", new_id=_ids())
    assert res.samples == ()


_ev = st.fixed_dictionaries({"type": st.sampled_from(["exec_receipt", "fraud_report", "lease"])},
                            optional={k: st.one_of(st.text(max_size=6), st.integers(), st.floats(),
                                                   st.none())
                                      for k in ("receipt_id", "request_id", "task_id",
                                                "executor_id", "usage_id", "status", "epoch")})


@settings(max_examples=100, deadline=None)
@given(st.lists(_ev, max_size=20), st.floats(-5, 20000, allow_nan=False), st.text(max_size=5))
def test_sampling_never_fails(evs: list[dict[str, Any]], rate: float, seed: str) -> None:
    sample(evs, SampleParams(base_rate=rate, seed=seed), ts="1", new_id=_ids())


def test_ratelimit_counts_and_allows() -> None:
    evs = [{"type": "exec_request", "requester_id": "app", "epoch": 1}] * 3 + \
          [{"type": "exec_request", "requester_id": "app", "epoch": 2},
           {"type": "exec_receipt", "executor_id": "e", "epoch": 1}]
    rl = ratelimit(evs, requester="app", executor="e", max_requests=3, max_receipts=0, epoch=1)
    assert (rl.request_count, rl.receipt_count, rl.allow_request, rl.allow_receipt) == \
        (3, 1, False, True)
    assert list(rl.to_json()) == ["epoch", "requester_id", "executor_id", "request_count",
                                  "receipt_count", "max_requests", "max_receipts",
                                  "allow_request", "allow_receipt"]
    assert ratelimit(evs, requester="app", max_requests=5).request_count == 4


def test_repute_formula_hand_computed() -> None:
    evs = ([{"type": "exec_receipt", "executor_id": "e", "status": "ok"}] * 10
           + [{"type": "exec_receipt", "executor_id": "e", "status": "bad"}] * 2
           + [{"type": "audit", "executor_id": "e", "status": "ok"}] * 4
           + [{"type": "audit", "executor_id": "e", "status": "bad"}]
           + [{"type": "fraud_report", "executor_id": "e"}]
           + [{"type": "audit_sample", "executor_id": "e"}, {"type": "exec_receipt",
                                                             "executor_id": "other"}])
    r = repute(evs, "e")
    expected = 1.0 + 0.001 * 10 + 0.005 * 4 - 0.01 * 2 - 0.05 * 1 - 0.1 * 1
    assert r.score == pytest.approx(expected) and r.level == "good"
    assert (r.ok_receipt_count, r.bad_receipt_count, r.audit_ok_count, r.audit_bad_count,
            r.fraud_report_count) == (10, 2, 4, 1, 1)
    assert repute([], "e").score == 1.0
    assert repute([{"type": "fraud_report", "executor_id": "e"}] * 20, "e").score == 0.0
    assert [level_of(x) for x in (0.95, 0.9, 0.8, 0.5, 0.49)] == \
        ["excellent", "excellent", "good", "warn", "bad"]
