"""Settlement against the reference's worked examples (storage-compute-formats.md §1.3-§1.9)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import yaml
from helpers_settle import audit, compute, fraud, lease, proof, receipt, request, sample, write_legacy

from cheng_build.settle.api import Mode, settle
from cheng_build.settle.hashorder import jenkins_i32, slot_of, table_order


def _doc(path: Path, **kw: Any) -> dict[str, Any]:
    return json.loads(settle(path, **kw).render("json"))


def test_hash_table_slots_match_the_reference() -> None:
    # §1.9: cap 64, alice -> 43, bob -> 29, exec-1 -> 29 (probes to 30), store-1 -> 4
    assert [slot_of(k) for k in ("node:alice", "node:bob", "node:exec-1", "node:store-1")] == [
        43, 29, 29, 4]
    assert table_order(["node:alice", "node:bob", "node:exec-1", "node:store-1"]) == [
        "node:store-1", "node:bob", "node:exec-1", "node:alice"]
    assert jenkins_i32("") == 0


def test_hash_table_grows_at_the_45th_key_and_keeps_every_key() -> None:
    keys = [f"node:k{i}" for i in range(45)]
    order44 = table_order(keys[:44])
    order45 = table_order(keys)
    assert sorted(order45) == sorted(keys) and sorted(order44) == sorted(keys[:44])
    # 44 keys fit 64 slots; the 45th doubles the table first, re-inserting the old keys in
    # their old slot order (not insertion order), then inserts the new key
    assert order44 == sorted(order44, key=lambda k: _probe_pos(keys[:44], k, 64))
    regrown = [*order44, keys[44]]
    assert order45 == sorted(order45, key=lambda k: _probe_pos(regrown, k, 128))
    assert order45 != sorted(order45, key=lambda k: _probe_pos(keys, k, 64))


def _probe_pos(keys: list[str], key: str, cap: int) -> int:
    slots: dict[int, str] = {}
    for k in keys:
        i = slot_of(k, cap)
        while i in slots:
            i = (i + 1) % cap
        slots[i] = k
    return next(i for i, k in slots.items() if k == key)


def test_demo_lease_compat_totals(tmp_path: Path) -> None:
    # §1.3 demo_io_lease: storage 0.000244140625, royalty 2.9296875e-05, treasury 7.32421875e-06,
    # provider 0.00020751953125. Leases carry no epoch: they settle under 0 and "all" only.
    led = write_legacy(tmp_path / "ledger.jsonl", [lease()])
    d = _doc(led, mode=Mode.COMPAT)
    assert d["storage_total"] == 0.000244140625
    assert d["treasury_total"] == 7.32421875e-06
    assert d["payouts"]["authors"] == {"node:alice": 2.9296875e-05}
    assert d["payouts"]["providers"] == {"node:store-1": 0.00020751953125}
    assert _doc(led, mode=Mode.COMPAT, epoch=0)["counts"]["lease"] == 1
    assert _doc(led, mode=Mode.COMPAT, epoch=1)["counts"]["lease"] == 0


def test_demo_lease_default_is_integer_nano_and_balances(tmp_path: Path) -> None:
    led = write_legacy(tmp_path / "ledger.jsonl", [lease()])
    d = _doc(led)
    # each float converted once (shortest decimal, half to even): 29296.875 -> 29297,
    # 7324.21875 -> 7324, 207519.53125 -> 207520
    assert d["payouts"]["authors"] == {"node:alice": 29297}
    assert d["payouts"]["providers"] == {"node:store-1": 207520}
    assert d["treasury_total"] == 7324
    assert d["storage_total"] == 29297 + 207520 + 7324


def test_gpu_example_pricing(tmp_path: Path) -> None:
    # §1.4 job-gpu-2: gpu 2.2 + 1.65, x0.85 (infer) = 3.2725; royalty 0.3927, treasury 0.098175,
    # executor 2.781625
    led = write_legacy(tmp_path / "ledger.jsonl", [compute("usage-98")])
    c = _doc(led, mode=Mode.COMPAT, epoch=1)
    assert c["pricing"] == {"alpha_map_bps": {"train": 13500, "infer": 8500, "other": 10000},
                            "gpu_core_total": 2.2, "gpu_mem_total": 1.65,
                            "gpu_alpha_weighted_total": 3.2725}
    assert c["compute_total"] == 3.2725
    assert c["payouts"]["executors"] == {"node:exec-1": 2.781625}
    d = _doc(led, epoch=1)
    assert (d["pricing"]["gpu_core_total"], d["pricing"]["gpu_mem_total"],
            d["pricing"]["gpu_alpha_weighted_total"]) == (2_200_000_000, 1_650_000_000, 3_272_500_000)
    assert d["compute_total"] == 3_272_500_000
    assert d["payouts"]["authors"] == {"node:alice": 392_700_000}


def test_alpha_weights_by_workload(tmp_path: Path) -> None:
    events = [compute(f"usage-{w}", workload=w, gpu_ms=1000, gpu_mem_bytes=0, price_gpu_ms=0.001)
              for w in (" TRAIN ", "infer", "", "quantum")]
    d = _doc(write_legacy(tmp_path / "l.jsonl", events), epoch=1)
    # core 1.0 each: 1.35 + 0.85 + 1.0 + 1.0
    assert d["pricing"]["gpu_alpha_weighted_total"] == 4_200_000_000


def test_compat_json_bytes_with_the_original_key_order(tmp_path: Path) -> None:
    led = write_legacy(tmp_path / "l.jsonl", [
        lease(royalty=0.5, treasury=0.25, prov=1.25),
        lease("node:bob", royalty=0.5, treasury=0.25, prov=1.25),
        compute("usage-1", royalty=1.0, treasury=0.5, executor_amount=2.5, epoch=0, gpu_ms=0,
                gpu_mem_bytes=0),
    ])
    got = settle(led, mode=Mode.COMPAT, top=0).render("json")
    assert got == (
        b'{"epoch":-1,"storage_total":4.0,"compute_total":4.0,"treasury_total":1.0,'
        b'"audit_total":0.0,"counts":{"lease":2,"compute":1,"audit":0,"exec_request":0,'
        b'"exec_receipt":0},"payouts":{"authors":{"node:bob":0.5,"node:alice":1.5},'
        b'"providers":{"node:store-1":2.5},"executors":{"node:exec-1":2.5},"penalties":{}},'
        b'"pricing":{"alpha_map_bps":{"train":13500,"infer":8500,"other":10000},'
        b'"gpu_core_total":0.0,"gpu_mem_total":0.0,"gpu_alpha_weighted_total":0.0},'
        b'"sampling":{"base_rate_bps":1000,"high_risk_rate_bps":10000,"selected_count":0,'
        b'"high_risk_selected_count":0},"trust":{"audit_sample_count":0,"fraud_report_count":0,'
        b'"storage_proof_count":0,"storage_proof_missing_count":0,"fraud_by_executor":{},'
        b'"storage_ok_by_provider":{},"storage_missing_by_provider":{}},"reconcile":{"limit":0,'
        b'"missing_receipt_count":0,"orphan_receipt_count":0,"missing_usage_count":0,'
        b'"unreferenced_usage_count":1,"bad_receipt_count":0,"request_epoch_mismatch_count":0,'
        b'"usage_epoch_mismatch_count":0,"missing_receipt":[],"orphan_receipt":[],'
        b'"missing_usage":[],"unreferenced_usage":[],"bad_receipt":[],'
        b'"request_epoch_mismatch":[],"usage_epoch_mismatch":[]}}')
    # default mode: the same keys, sorted table keys, integer nano-units
    d = json.loads(settle(led, top=0).render("json"))
    assert list(d["payouts"]["authors"]) == ["node:alice", "node:bob"]
    assert d["storage_total"] == 4_000_000_000


def test_penalties_move_from_executor_to_treasury(tmp_path: Path) -> None:
    led = write_legacy(tmp_path / "l.jsonl", [
        compute("usage-1", royalty=1.0, treasury=0.5, executor_amount=2.5),
        audit("audit-1", status="bad", penalty=0.10),
        audit("audit-2", status="ok", penalty=5.0),  # ok: no penalty
        audit("audit-3", status="bad", penalty=0),  # no amount: counted only
    ])
    for mode in (Mode.COMPAT, Mode.DEFAULT):
        d = _doc(led, mode=mode, epoch=1)
        unit = 1.0 if mode is Mode.COMPAT else 1_000_000_000
        assert d["counts"]["audit"] == 3
        assert d["audit_total"] == 0.1 * unit
        assert d["treasury_total"] == 0.5 * unit + 0.1 * unit
        assert d["payouts"]["executors"] == {"node:exec-1": 2.5 * unit - 0.1 * unit}
        assert d["payouts"]["penalties"] == {"node:exec-1": 0.1 * unit}


def test_sampling_fraud_and_proofs(tmp_path: Path) -> None:
    led = write_legacy(tmp_path / "l.jsonl", [
        sample("sample-1", risk="high", base=500, high=9000), sample("sample-2", risk="low", base=0, high=0),
        fraud("fraud-1", severity="low"), fraud("fraud-2", severity="low"),
        fraud("fraud-3", severity="low"), fraud("fraud-4", severity="MEDIUM"),
        fraud("fraud-5", severity="whatever", executor="node:exec-2"),
        proof("proof-1"), proof("proof-2", status="missing"), proof("proof-3", status="failed"),
    ])
    c = _doc(led, mode=Mode.COMPAT, epoch=1)
    assert c["sampling"] == {"base_rate_bps": 500, "high_risk_rate_bps": 9000, "selected_count": 2,
                             "high_risk_selected_count": 1}
    assert c["trust"]["fraud_report_count"] == 5
    # floats summed in file order, as the original did
    assert c["trust"]["fraud_by_executor"] == {"node:exec-1": 0.1 + 0.1 + 0.1 + 0.5,
                                               "node:exec-2": 1.0}
    # the original counted only "missing" as a failure
    assert c["trust"]["storage_ok_by_provider"] == {"node:store-1": 2.0}
    assert c["trust"]["storage_missing_by_provider"] == {"node:store-1": 1.0}
    d = _doc(led, epoch=1)
    assert d["trust"]["fraud_by_executor"] == {"node:exec-1": 0.8, "node:exec-2": 1.0}
    assert d["trust"]["storage_ok_by_provider"] == {"node:store-1": 1}
    assert d["trust"]["storage_missing_by_provider"] == {"node:store-1": 2}
    assert d["trust"]["storage_proof_missing_count"] == 2


def _reconcile_ledger(tmp_path: Path) -> Path:
    return write_legacy(tmp_path / "l.jsonl", [
        request("req-b"), request("req-a"), request("req-c", epoch=2),
        compute("usage-1", epoch=1), compute("usage-2", epoch=2), compute("usage-3", epoch=1),
        receipt("receipt-1", "req-a", "usage-1"),
        receipt("receipt-2", "req-x", "usage-9", status="bad", error="oom, killed"),
        receipt("receipt-3", "", ""),
        receipt("receipt-4", "req-c", "usage-2", epoch=1),
    ])


def test_reconcile_lists_sorted_and_counted_before_the_cut(tmp_path: Path) -> None:
    led = _reconcile_ledger(tmp_path)
    r = _doc(led, top=10)["reconcile"]
    assert r["missing_receipt"] == ["req-b"]
    assert r["orphan_receipt"] == [{"id": "receipt-2", "ref": "req-x"},
                                   {"id": "receipt-3", "ref": ""}]
    assert r["missing_usage"] == [{"id": "receipt-2", "ref": "usage-9"}]
    assert r["unreferenced_usage"] == ["usage-3"]
    assert r["bad_receipt"] == [{"receipt_id": "receipt-2", "request_id": "req-x", "status": "bad",
                                 "error": "oom, killed"}]
    assert r["request_epoch_mismatch"] == [{"receipt_id": "receipt-4", "ref_id": "req-c",
                                            "receipt_epoch": 1, "ref_epoch": 2}]
    assert r["usage_epoch_mismatch"] == [{"receipt_id": "receipt-4", "ref_id": "usage-2",
                                          "receipt_epoch": 1, "ref_epoch": 2}]
    cut = _doc(led, top=1)["reconcile"]
    assert cut["orphan_receipt_count"] == 2 and len(cut["orphan_receipt"]) == 1
    zero = _doc(led, top=0)
    assert "preview" not in zero and zero["reconcile"]["orphan_receipt"] == []
    assert zero["reconcile"]["orphan_receipt_count"] == 2


def test_reconcile_csv_bytes(tmp_path: Path) -> None:
    csv = settle(_reconcile_ledger(tmp_path), top=10).csv()
    assert csv == (
        b"kind,receipt_id,request_id,usage_id,ref_id,receipt_epoch,ref_epoch,status,error\n"
        b"missing_receipt,,req-b,,req-b,,,,\n"
        b"orphan_receipt,receipt-2,req-x,,req-x,,,,\n"
        b"orphan_receipt,receipt-3,,,,,,,\n"
        b"missing_usage,receipt-2,,usage-9,usage-9,,,,\n"
        b"unreferenced_usage,,,usage-3,usage-3,,,,\n"
        b'bad_receipt,receipt-2,req-x,,req-x,,,bad,"oom, killed"\n'
        b"request_epoch_mismatch,receipt-4,req-c,,req-c,1,2,,\n"
        b"usage_epoch_mismatch,receipt-4,,usage-2,usage-2,1,2,,\n")


def test_preview_drops_zero_and_sorts_by_amount(tmp_path: Path) -> None:
    led = write_legacy(tmp_path / "l.jsonl", [
        lease("node:b", royalty=1.0, treasury=0.0, prov=0.0),
        lease("node:a", royalty=1.0, treasury=0.0, prov=0.0),
        lease("node:c", royalty=3.0, treasury=0.0, prov=0.0),
        lease("node:z", royalty=0.0, treasury=0.0, prov=0.0),
    ])
    pv = _doc(led, top=2)["preview"]
    assert pv["limit"] == 2
    assert [e["id"] for e in pv["authors"]] == ["node:c", "node:a"]
    assert pv["providers"] == []  # the provider's amounts are all zero


def test_toml_and_yaml_carry_the_same_settlement(tmp_path: Path) -> None:
    led = _reconcile_ledger(tmp_path)
    with led.open("a") as fh:
        for ev in (lease(royalty=1e-05, treasury=0.0, prov=0.0), audit("audit-9"),
                   fraud("fraud-1", severity="low"), proof("proof-1", status="missing")):
            fh.write(json.dumps(ev) + "\n")
    for mode in (Mode.COMPAT, Mode.DEFAULT):
        s = settle(led, mode=mode, top=5)
        want = json.loads(s.render("json"))
        t = tomllib.loads(s.render("toml").decode())
        y = yaml.safe_load(s.render("yaml"))
        for got in (t, y):
            for key in ("epoch", "storage_total", "compute_total", "treasury_total", "audit_total",
                        "counts", "payouts", "pricing", "sampling", "trust"):
                assert got[key] == want[key], key
            for key, value in want["reconcile"].items():
                if value == []:
                    assert got["reconcile"].get(key, []) == [], key
                elif key == "bad_receipt":
                    assert got["reconcile"][key] == value
                else:
                    assert got["reconcile"][key] == value, key
            assert got["preview"]["limit"] == 5
            assert got["preview"]["authors"] == want["preview"]["authors"]
    toml_text = settle(led, mode=Mode.COMPAT).render("toml").decode()
    # audit_total before treasury_total, headers even for empty tables (§1.9)
    assert toml_text.index("audit_total") < toml_text.index("treasury_total")
    assert "[payouts.penalties]" in toml_text and "[trust.storage_ok_by_provider]" in toml_text
    assert "authors: {}" in settle(led, epoch=7).render(
        "yaml").decode()
