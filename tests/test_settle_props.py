"""Property tests over generated ledgers: settle never crashes, money always balances, the bytes
are deterministic, formats agree, any edit of a chained ledger is caught; JCS numbers vs node."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers_settle import audit, compute, fraud, lease, proof, receipt, request, sample
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build.core.errors import ChengError
from cheng_build.ledger.log import Ledger
from cheng_build.settle.api import Mode, settle
from cheng_build.settle.rwad.jcs import canonical, es_number

PARTIES = ["node:a", "node:b", "node:c", "node:é"]
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

money = st.one_of(st.integers(0, 10**6).map(lambda n: n / 1000),
                  st.floats(0, 1e6, allow_nan=False, allow_infinity=False), st.integers(0, 50))
nano = st.integers(0, 10**15)
epoch = st.integers(0, 3)
party = st.sampled_from(PARTIES)


@st.composite
def event(draw: st.DrawFn, amount: st.SearchStrategy[Any]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["lease", "compute", "audit", "sample", "fraud", "proof",
                                 "request", "receipt", "unknown"]))
    e = draw(epoch)
    if kind == "lease":
        return lease(draw(party), draw(party), royalty=draw(amount), treasury=draw(amount),
                     prov=draw(amount), epoch=e)
    if kind == "compute":
        return compute("", author=draw(party), executor=draw(party), epoch=e,
                       royalty=draw(amount), treasury=draw(amount), executor_amount=draw(amount),
                       gpu_ms=draw(st.integers(0, 10**7)), gpu_mem_bytes=draw(st.integers(0, 2**36)),
                       workload=draw(st.sampled_from(["train", "infer", "other", "", "X"])),
                       price_gpu_ms=draw(amount), price_gpu_mem_gb=draw(amount))
    if kind == "audit":
        return audit("", status=draw(st.sampled_from(["ok", "bad", "err"])), penalty=draw(amount),
                     executor=draw(party), epoch=e)
    if kind == "sample":
        return sample("", risk=draw(st.sampled_from(["high", "low"])), epoch=e)
    if kind == "fraud":
        return fraud("", severity=draw(st.sampled_from(["low", "medium", "high", "?"])),
                     executor=draw(party), epoch=e)
    if kind == "proof":
        return proof("", status=draw(st.sampled_from(["ok", "missing", "failed"])),
                     provider=draw(party), epoch=e, penalty=draw(amount))
    if kind == "request":
        return request(f"req-{draw(st.integers(0, 30))}", epoch=e)
    if kind == "receipt":
        return receipt("", f"req-{draw(st.integers(0, 30))}",
                       draw(st.sampled_from(["", "usage-x", "usage-y"])),
                       status=draw(st.sampled_from(["ok", "bad"])), epoch=e)
    return {"type": draw(st.sampled_from(["gc_sweep", "pin", "checkpoint"])), "epoch": e}


def _write(path: Path, events: list[dict[str, Any]]) -> Path:
    # unique ids per type, as our writer makes them (default mode refuses repeats)
    lines = []
    for i, ev in enumerate(events):
        ev = dict(ev)
        for key in ("lease_id", "usage_id", "audit_id", "sample_id", "report_id", "proof_id",
                    "receipt_id"):
            if key in ev and not ev[key]:
                ev[key] = f"{key.split('_')[0]}-{i}"
        if ev["type"] == "exec_request":
            ev["request_id"] = f"req-{i}"
        lines.append(json.dumps(ev, ensure_ascii=False) + "\n")
    path.write_text("".join(lines))
    return path


def _balance(d: dict[str, Any]) -> tuple[Any, Any]:
    paid = sum(sum(d["payouts"][t].values()) for t in ("authors", "providers", "executors"))
    return paid + d["treasury_total"], d["storage_total"] + d["compute_total"]


@SETTINGS
@given(events=st.lists(event(money), max_size=40), filt=st.sampled_from([-1, 0, 1, 2]))
def test_money_always_balances(tmp_path: Path, events: list[dict[str, Any]], filt: int) -> None:
    led = _write(tmp_path / "l.jsonl", events)
    d = json.loads(settle(led, epoch=filt, top=3).render())
    left, right = _balance(d)
    assert left == right  # exact: integer nano-units
    assert d["audit_total"] == sum(d["payouts"]["penalties"].values())
    c = json.loads(settle(led, epoch=filt, mode=Mode.COMPAT).render())
    left, right = _balance(c)
    assert math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(c["audit_total"], sum(c["payouts"]["penalties"].values()),
                        rel_tol=1e-9, abs_tol=1e-9)
    for name in ("lease", "compute", "audit", "exec_request", "exec_receipt"):
        assert d["counts"][name] == c["counts"][name]


@SETTINGS
@given(events=st.lists(event(money), max_size=30), seed=st.integers(0, 2**32))
def test_default_bytes_are_deterministic_and_order_free(
        tmp_path: Path, events: list[dict[str, Any]], seed: int) -> None:
    # sampling rates keep the last value seen: give every sample the same ones here
    led = _write(tmp_path / "a.jsonl", events)
    first = settle(led, top=50)
    assert settle(led, top=50).render() == first.render()
    shuffled = (tmp_path / "a.jsonl").read_text().splitlines(keepends=True)
    random.Random(seed).shuffle(shuffled)
    (tmp_path / "b.jsonl").write_text("".join(shuffled))
    assert settle(tmp_path / "b.jsonl", top=50).render() == first.render()


@SETTINGS
@given(events=st.lists(event(money), max_size=25), top=st.integers(0, 4))
def test_json_toml_yaml_agree(tmp_path: Path, events: list[dict[str, Any]], top: int) -> None:
    led = _write(tmp_path / "l.jsonl", events)
    for mode in (Mode.DEFAULT, Mode.COMPAT):
        s = settle(led, mode=mode, top=top)
        want = json.loads(s.render("json"))
        for got in (tomllib.loads(s.render("toml").decode()), yaml.safe_load(s.render("yaml"))):
            for key in ("epoch", "storage_total", "compute_total", "treasury_total",
                        "audit_total", "counts", "payouts", "sampling", "trust"):
                assert got[key] == want[key]
            for row in got["reconcile"].get("bad_receipt", []):
                row.setdefault("error", "")  # TOML writes error only when there is one
            assert {k: v for k, v in got["reconcile"].items() if v != []} == {
                k: v for k, v in want["reconcile"].items() if v != []}


lines = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.builds(lambda ev, k, v: json.dumps({**ev, k: v}).encode(), event(money),
              st.sampled_from(["royalty", "epoch", "type", "executor_id", "penalty", "prev",
                               "seq", "status", "gpu_ms", "receipt_id", "workload_kind"]),
              st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                        st.floats(allow_nan=False), st.text(max_size=5), st.lists(st.integers()),
                        st.dictionaries(st.text(max_size=3), st.integers()))),
)


@SETTINGS
@given(raw=st.lists(lines, max_size=12), newline=st.booleans())
def test_settle_never_crashes(tmp_path: Path, raw: list[bytes], newline: bool) -> None:
    led = tmp_path / "l.jsonl"
    led.write_bytes(b"\n".join(r.replace(b"\n", b" ") for r in raw) + (b"\n" if newline else b""))
    for mode in (Mode.DEFAULT, Mode.COMPAT):
        for fmt in ("json", "toml", "yaml"):
            try:
                s = settle(led, mode=mode, top=2)
            except ChengError as exc:
                assert exc.exit_code == 1 and exc.what.startswith("ledger")
                continue
            out = s.render(fmt)
            if fmt == "json":
                json.loads(out)
            s.csv()


@st.composite
def chained_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [draw(event(nano)) for _ in range(draw(st.integers(2, 12)))]


@SETTINGS
@given(events=chained_events(), data=st.data())
def test_any_edit_of_a_chained_line_is_caught(tmp_path: Path, events: list[dict[str, Any]],
                                              data: st.DataObject) -> None:
    led = tmp_path / "ledger.jsonl"
    led.unlink(missing_ok=True)
    clean = []
    for ev in events:  # chained lines keep integer money: drop the helpers' float extras
        ev = {k: (0 if isinstance(v, float) else v) for k, v in ev.items()}
        if ev["type"] == "exec_request":
            ev["request_id"] = ""  # the writer fills a unique one
        clean.append(ev)
    Ledger(led).append_many(clean)
    good = settle(led, top=0).render()
    lines_ = led.read_bytes().splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines_) - 2), label="line")  # the last needs the head
    line = bytearray(lines_[i])
    j = data.draw(st.integers(0, len(line) - 2), label="byte")
    new = data.draw(st.integers(0x20, 0x7e).filter(lambda b: b != line[j]), label="value")
    line[j] = new
    lines_[i] = bytes(line)
    led.write_bytes(b"".join(lines_))
    for e in (-1, 0, 1, 2, 3):  # lines of other epochs are not parsed, but still chain-checked
        with pytest.raises(ChengError) as exc:
            settle(led, epoch=e, top=0)
        assert exc.value.exit_code == 1
    led.unlink()
    Ledger(led).append_many(clean)
    assert settle(led, top=0).render() == good


@SETTINGS
@given(events=chained_events(), e=st.integers(0, 3))
def test_unparsed_lines_of_other_epochs_change_nothing(
        tmp_path: Path, events: list[dict[str, Any]], e: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from cheng_build.settle import scan

    led = tmp_path / "ledger.jsonl"
    led.unlink(missing_ok=True)
    Ledger(led).append_many([{**{k: (0 if isinstance(v, float) else v) for k, v in ev.items()},
                              **({"request_id": ""} if ev["type"] == "exec_request" else {})}
                             for ev in events])
    fast = settle(led, epoch=e, top=5)
    with monkeypatch.context() as m:
        m.setattr(scan, "_other_epoch", lambda *a: False)
        slow = settle(led, epoch=e, top=5)
    assert fast.render() == slow.render() and fast.scan.head == slow.scan.head
    # every chained line after the first (which starts the chain) of another epoch is skipped
    assert fast.scan.skipped == sum(1 for ev in events[1:] if ev.get("epoch", 0) != e)


@pytest.mark.skipif(shutil.which("node") is None and not __import__("os").environ.get("CI"),
                    reason="node is the ECMAScript oracle (CI installs it)")
@settings(max_examples=20, deadline=None)
@given(xs=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=200))
def test_jcs_numbers_match_ecmascript(xs: list[float]) -> None:
    # differential: node's JSON.stringify is the ECMAScript Number::toString JCS adopts
    p = subprocess.run(["node", "-e", "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>"
                        "{for(const x of JSON.parse(s))console.log(JSON.stringify(x))})"],
                       input=json.dumps([repr(x) for x in xs]).replace('"', "").encode(),
                       capture_output=True, check=True, timeout=60)
    assert p.stdout.decode().split() == [es_number(x) for x in xs]
    assert canonical({"b": xs, "a": {"é": 1, "z": None}}).startswith(b'{"a":{"z":null,"\xc3\xa9":1}')
