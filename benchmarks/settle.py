"""Settlement speed and memory: ``settle`` of a generated ledger vs a bare parse of the same file.

    python benchmarks/settle.py [--events 1000000] [--per-epoch 10000] [--repeat 3] [--quick] [--json]

The ledger is what our writer produces (:mod:`cheng_build.ledger.log`): compact JSON lines in the
original's key order, integer nano-unit money, ``seq``/``prev`` hash chain. The mix per epoch is
realistic for a busy node: each job is an ``exec_request``, a ``compute`` usage and an
``exec_receipt`` (1 in 20 not ok); one ``lease`` per 5 jobs; an ``audit_sample`` and an ``audit``
per 10 jobs (1 in 4 failed, with a penalty); a ``storage_proof`` per 10 jobs (1 in 10 missing);
a ``fraud_report`` per 50 jobs; one unknown-type event per 1000 lines. ``--per-epoch`` events per
epoch (default 10,000), so a 1M-event ledger spans 100 epochs.

Figures (CPU seconds of one process, best of ``--repeat``; the anchor is measured in the same run,
interleaved, so load from other work hits both alike):

- ``settle_all``: ``settle(path, epoch=-1)`` — every event settled, every reconcile table filled;
  anchor: ``orjson.loads`` of every line of the same file (the fastest JSON parser the project
  uses), iterating the file the same way. ratio = anchor time / our time (= events/s ratio;
  goal >= 0.5), and seconds per million events (goal <= 3 s on one idle core).
- ``settle_epoch``: ``settle(path, epoch=<last>)`` — one epoch of the same ledger (what
  ``cheng-storage settle --epoch:N`` does each epoch); same anchor.
- ``stdlib_parse``: ``json.loads`` per line, against the same anchor (for scale).
- ``rss_epoch`` / ``rss_all``: peak RSS (``VmHWM``) of a fresh process settling the
  full ledger vs one settling a ledger a tenth as long (same mix, same epoch size). ratio =
  small / large peak (1.0 = flat; the goal "within 1.2x" means ratio >= 0.83). Per-epoch settling
  keeps one epoch's reconcile tables, so it stays flat; settling every epoch keeps every
  request/receipt/usage id of the ledger, so it grows with the ledger.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

GENESIS = "0" * 64
CID = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


def _events(n: int, per_epoch: int):  # type: ignore[no-untyped-def]
    """Yield ``n`` events (dicts in the original's key order), ``per_epoch`` per epoch."""
    i = 0
    job = 0
    while i < n:
        epoch = i // per_epoch + 1
        job += 1
        ex = f"node:exec-{job % 37}"
        au = f"node:author-{job % 101}"
        rid, uid, cid = f"req-{job:x}", f"usage-{job:x}", f"receipt-{job:x}"
        ok = job % 20 != 0
        batch = [
            {"type": "exec_request", "mode": "p2p", "request_id": rid, "task_id": f"job-{job}",
             "package_id": f"pkg://cheng/p{job % 500}", "author_id": au,
             "requester_id": f"node:app-{job % 13}", "input_cid": CID, "code_cid": CID,
             "args_cid": CID, "max_cpu_ms": 2000, "max_mem_bytes": 268435456,
             "max_io_bytes": 33554432, "max_gpu_ms": 120000, "max_gpu_mem_bytes": 12884901888,
             "max_gpu_count": 1, "gpu_type": "A10G", "workload_kind": "infer",
             "price_cpu_ms": 1000, "price_mem_gb": 100000000, "price_io_gb": 50000000,
             "price_gpu_ms": 20000, "price_gpu_mem_gb": 150000000, "expected_cost_nano": 0,
             "selected_fraud_score": 0.0, "selected_bandwidth_out_bytes": 0,
             "selection_source": "open", "epoch": epoch, "ts": "1773912345", "signature": ""},
            {"type": "compute", "mode": "p2p", "usage_id": uid, "task_id": f"job-{job}",
             "package_id": f"pkg://cheng/p{job % 500}", "author_id": au, "executor_id": ex,
             "cpu_ms": 1200 + job % 977, "mem_bytes": 104857600, "io_bytes": 10485760,
             "gpu_ms": 110000 + job % 5000, "gpu_mem_bytes": 11811160064, "gpu_count": 1,
             "gpu_type": "A10G", "workload_kind": ("train", "infer", "other")[job % 3],
             "price_cpu_ms": 1000, "price_mem_gb": 100000000, "price_io_gb": 50000000,
             "price_gpu_ms": 20000, "price_gpu_mem_gb": 150000000, "royalty_rate": 120000000,
             "treasury_rate": 30000000, "epoch": epoch, "start_ts": "1773912345",
             "total": 3272500000, "royalty": 392700000, "treasury": 98175000,
             "executor": 2781625000},
            {"type": "exec_receipt", "mode": "p2p", "receipt_id": cid, "request_id": rid,
             "task_id": f"job-{job}", "executor_id": ex, "result_cid": CID, "usage_id": uid,
             "status": "ok" if ok else "err", "error": "" if ok else "exit 137",
             "proof_cid": "", "epoch": epoch, "ts": "1773912345",
             "signature": "ed25519:" + "A" * 86 + "=="},
        ]
        if job % 5 == 0:
            batch.append({"type": "lease", "mode": "p2p", "lease_id": f"lease-{job:x}",
                          "package_id": f"pkg://cheng/p{job % 500}", "author_id": au,
                          "provider_id": f"node:store-{job % 11}", "bytes": 1048576,
                          "duration_days": 30, "replicas": 1, "price_per_gb_month": 250000000,
                          "royalty_rate": 120000000, "treasury_rate": 30000000,
                          "start_ts": "1773912345", "storage_cost": 244141, "royalty": 29297,
                          "treasury": 7324, "provider": 207520, "epoch": epoch})
        if job % 10 == 0:
            batch.append({"type": "audit_sample", "sample_id": f"sample-{job:x}",
                          "receipt_id": cid, "request_id": rid, "task_id": f"job-{job}",
                          "executor_id": ex, "result_cid": CID, "status": "ok",
                          "auditor_id": "system", "epoch": epoch, "rate_bps": 1000,
                          "base_rate_bps": 1000, "high_risk_rate_bps": 10000,
                          "risk_level": "low", "risk_reason": "", "seed": "beacon", "ts": "1773912345"})
            bad = job % 40 == 0
            batch.append({"type": "audit", "audit_id": f"audit-{job:x}", "task_id": f"job-{job}",
                          "executor_id": ex, "auditor_id": "node:auditor-1", "result_cid": CID,
                          "status": "bad" if bad else "ok", "penalty": 100000000 if bad else 0,
                          "epoch": epoch, "note": "", "ts": "1773912345"})
            batch.append({"type": "storage_proof", "proof_id": f"proof-{job:x}",
                          "provider_id": f"node:store-{job % 11}", "package_id": "pkg://cheng/p1",
                          "cid": CID, "bytes": 1048576, "status": "missing" if job % 100 == 0 else "ok",
                          "proof_hash": "ab" * 32, "epoch": epoch, "ts": "1773912345"})
        if job % 50 == 0:
            batch.append({"type": "fraud_report", "report_id": f"fraud-{job:x}",
                          "task_id": f"job-{job}", "request_id": rid, "receipt_id": cid,
                          "executor_id": ex, "reporter_id": "node:auditor-1",
                          "reason": "bad-output", "evidence_cid": CID, "severity": "medium",
                          "epoch": epoch, "ts": "1773912345"})
        for ev in batch:
            if i >= n:
                return
            if i % 1000 == 999:
                yield {"type": "gc_sweep", "id": f"gc_sweep-{i:x}", "epoch": epoch, "removed": 3}
                i += 1
                if i >= n:
                    return
            yield ev
            i += 1


def build_ledger(path: Path, n: int, per_epoch: int) -> int:
    """Write a chained ledger of ``n`` events; returns its last epoch."""
    prev = GENESIS
    last = 0
    with open(path, "wb") as fh:
        for seq, ev in enumerate(_events(n, per_epoch)):
            ev["seq"] = seq
            ev["prev"] = prev
            line = orjson.dumps(ev)
            fh.write(line + b"\n")
            prev = hashlib.sha256(line).hexdigest()
            last = ev["epoch"]
    return last


# VmHWM of the child's own address space: ru_maxrss would carry the parent's high-water mark
# over fork + exec.
_RSS_CHILD = """
import sys
from cheng_build.settle.api import settle
s = settle(sys.argv[1], epoch=int(sys.argv[2]), top=10)
s.render('json')
for line in open('/proc/self/status'):
    if line.startswith('VmHWM:'):
        print(line.split()[1])
"""


def peak_rss_kib(path: Path, epoch: int) -> int:
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), str(epoch)],
                         capture_output=True, check=True, env=env, timeout=1200)
    return int(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--per-epoch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100,000 events, one repeat")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.events, a.repeat = 100_000, 1
    from cheng_build.settle.api import settle

    with tempfile.TemporaryDirectory() as d:
        big, small = Path(d) / "big.jsonl", Path(d) / "small.jsonl"
        t = time.perf_counter()
        last = build_ledger(big, a.events, a.per_epoch)
        small_last = build_ledger(small, a.events // 10, a.per_epoch)
        gen_s = time.perf_counter() - t
        size = big.stat().st_size

        def anchor() -> None:
            loads = orjson.loads
            with open(big, "rb", buffering=1 << 20) as fh:
                for line in fh:
                    loads(line)

        def stdlib() -> None:
            loads = json.loads
            with open(big, "rb", buffering=1 << 20) as fh:
                for line in fh:
                    loads(line)

        def ours_all() -> None:
            settle(big, epoch=-1).render("json")

        def ours_epoch() -> None:
            settle(big, epoch=last).render("json")

        runs = {"anchor": anchor, "all": ours_all, "epoch": ours_epoch, "stdlib": stdlib}
        got = dict.fromkeys(runs, float("inf"))
        for _ in range(a.repeat):
            for k, fn in runs.items():
                c = time.process_time()
                fn()
                got[k] = min(got[k], time.process_time() - c)
        rss = {"epoch": (peak_rss_kib(big, last), peak_rss_kib(small, small_last)),
               "all": (peak_rss_kib(big, -1), peak_rss_kib(small, -1))}
    n = a.events

    def row(ours_s: float, anchor_s: float) -> dict[str, float | str]:
        return {"ours": n / ours_s, "anchor": n / anchor_s, "unit": "events/cpu-s",
                "ratio": anchor_s / ours_s, "s_per_million": ours_s / n * 1e6}

    rows: dict[str, dict[str, float | str]] = {
        "settle_all": row(got["all"], got["anchor"]),
        "settle_epoch": row(got["epoch"], got["anchor"]),
        "stdlib_parse": row(got["stdlib"], got["anchor"]),
    }
    for name, (large, little) in rss.items():
        rows[f"rss_{name}"] = {"ours": large, "anchor": little, "unit": "KiB peak RSS",
                               "ratio": little / large}
    print(f"settle, {n} events ({size / 1e6:.0f} MB, {size / n:.0f} B/line, {last} epochs of "
          f"{a.per_epoch}), generated in {gen_s:.1f} s; CPU time, best of {a.repeat}")
    print(f"{'figure':<14}{'ours':>12}{'anchor':>12}{'ratio':>7}  unit; anchor")
    anchors = {"settle_all": "orjson.loads per line", "settle_epoch": "orjson.loads per line",
               "stdlib_parse": "orjson.loads per line",
               "rss_epoch": f"the same for {n // 10} events", "rss_all": f"the same for {n // 10} events"}
    for name, r in rows.items():
        extra = f", {r['s_per_million']:.2f} s per 1M events" if "s_per_million" in r else ""
        print(f"{name:<14}{r['ours']:>12.0f}{r['anchor']:>12.0f}{r['ratio']:>7.2f}  "
              f"{r['unit']}{extra}; {anchors[name]}")
    if a.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
