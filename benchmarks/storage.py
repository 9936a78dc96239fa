"""Benchmarks of cheng-storage, each figure beside an anchor measured in the same run.

- ``put_lease``: ``put`` of one file (default 1 GiB) paid with a v2 lease token (token checks,
  staged import, lease record, ledger event) into a fresh root, vs the same file imported and
  pinned the way ``cheng-pkg add`` does (``import_path(..., pin=True)``) into a fresh store.
  GB/s; goal ratio >= 0.95 (the lease costs nothing measurable).
- ``proof_verify_k8`` / ``_k1``: verification of storage proofs of 8 challenges (the CLI's
  default) and of 1 challenge over a 16 MiB DAG of 256 KiB leaves (hash the root and every
  leaf against the root CID, scan the root's links, follow the offsets), vs hashlib sha256 over
  exactly the bytes each proof carries (the hash bound). proofs/s; goal ratio >= 0.8.
- ``token_verify``: full v2 lease-token check (parse, canonical bytes, Ed25519 verify, lease id,
  expiry, registry binding from the replayed registry, replay lookup), vs a bare PyNaCl
  ``VerifyKey.verify`` of the same signed bytes. tokens/s; goal ratio >= 0.8.
- ``gc_mark``: gc's mark over a DAG of 1M raw leaves (174 per dag-pb node, in memory so only
  the mark is timed), vs inserting the same 1M CID strings into a set (the set-membership
  bound). seconds; goal <= 2 s per core; ratio = anchor / ours.

Usage: ``python benchmarks/storage.py [--json] [--quick] [--size-mib N] [--blocks N]
[--only put_lease,proof_verify,token_verify,gc_mark]``. ``--json`` prints one JSON object
``{"name": {"ours", "anchor", "unit", "ratio"}}`` as the last line.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import log, print_report

from cheng_build.cas import dagpb
from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import cid_from_digest, cid_str
from cheng_build.cas.importer import add_bytes, import_path
from cheng_build.storage import proof as P
from cheng_build.storage.config import resolve
from cheng_build.storage.gc import mark
from cheng_build.storage.token import (
    check_content,
    check_token,
    issue,
    parse_token,
    registry_lookup,
    signed_bytes,
    token_json,
)
from cheng_build.storage.writes import put
from cheng_build.trust.keys import KeyPair
from cheng_build.trust.registry_ops import register_namespace


def _fig(ours: float, anchor: float, unit: str, ratio: float) -> dict[str, object]:
    return {"ours": round(ours, 3), "anchor": round(anchor, 3), "unit": unit, "ratio": round(ratio, 3)}


def _write_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for i in range(size >> 20):
            fh.write(hashlib.sha256(block + i.to_bytes(8, "big")).digest() * 32768)
        fh.flush()
        os.fsync(fh.fileno())


def bench_put(work: Path, size_mib: int, runs: int) -> dict[str, object]:
    src = work / "big.bin"
    log(f"put_lease: writing {size_mib} MiB ...")
    _write_file(src, size_mib << 20)
    key = KeyPair.generate("node:alice")
    registry = work / "registry.jsonl"
    register_namespace(registry, key, "pkg://bench/x")
    lookup = registry_lookup(registry)
    best_ours = best_anchor = float("inf")

    def anchor(i: int) -> float:
        root = work / f"anchor{i}"
        t0 = time.perf_counter()
        import_path(Blockstore(root), src, pin=True)
        took = time.perf_counter() - t0
        shutil.rmtree(root)
        os.sync()  # the freed blocks must not slow the next timed run down
        return took

    def ours(i: int) -> float:
        now = int(time.time())
        tok = issue(key, package_id="pkg://bench/x", author_id="node:alice", provider_id="node:p",
                    nbytes=size_mib << 20, duration_days=30, replicas=1, price_per_gb_month=1,
                    royalty_rate=0, treasury_rate=0, now=now)
        cfg = resolve(root=str(work / f"ours{i}"), mode="p2p", env={})
        t0 = time.perf_counter()
        put(cfg, src, token=tok, key_lookup=lookup, now=now)
        took = time.perf_counter() - t0
        shutil.rmtree(work / f"ours{i}")
        os.sync()
        return took

    for i in range(runs):  # alternated, the order swapped every run; best of each
        if i % 2:
            best_ours = min(best_ours, ours(i))
            best_anchor = min(best_anchor, anchor(i))
        else:
            best_anchor = min(best_anchor, anchor(i))
            best_ours = min(best_ours, ours(i))
        log(f"  run {i + 1}: ours {best_ours:.2f} s, anchor {best_anchor:.2f} s (best so far)")
    gb = (size_mib << 20) / 1e9
    src.unlink()
    return _fig(gb / best_ours, gb / best_anchor, "GB/s", best_anchor / best_ours)


def bench_proof(work: Path, n: int, k: int) -> dict[str, object]:
    store = Blockstore(work / f"proofstore{k}")
    data = os.urandom(64 * 262144)
    root = add_bytes(store, data)
    reqs = [P.Request(root, f"s{i}".encode(), k) for i in range(n)]
    answers = [P.encode_response(P.prove(store.get, r)) for r in reqs]
    payloads = [P.decode_response(a).blocks for a in answers]
    for r, a in zip(reqs[:10], answers[:10], strict=True):
        assert P.verify(r, a).ok
    sha = hashlib.sha256
    best_ours = best_anchor = float("inf")
    for _ in range(3):  # alternated, best of 3: the machine is shared
        t0 = time.perf_counter()
        for r, a in zip(reqs, answers, strict=True):
            P.verify(r, a)
        best_ours = min(best_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for blocks in payloads:
            for b in blocks:
                sha(b).digest()
        best_anchor = min(best_anchor, time.perf_counter() - t0)
    return _fig(n / best_ours, n / best_anchor, "proofs/s", best_anchor / best_ours)


def bench_token(work: Path, n: int) -> dict[str, object]:
    from nacl.signing import VerifyKey

    key = KeyPair.generate("node:alice")
    registry = work / "tokreg.jsonl"
    register_namespace(registry, key, "pkg://bench/x")
    lookup = registry_lookup(registry)
    now = int(time.time())
    texts = [token_json(issue(key, package_id="pkg://bench/x", author_id="node:alice",
                              provider_id="node:p", nbytes=1 << 20, duration_days=30, replicas=1,
                              price_per_gb_month=250_000_000, royalty_rate=120_000_000,
                              treasury_rate=30_000_000, now=now)).encode() for _ in range(n)]
    used: set[str] = set()
    check_token(parse_token(texts[0]), now=now, key_registered=lookup, used=used.__contains__)
    toks = [parse_token(t) for t in texts]
    msgs = [(signed_bytes(t.to_dict()), base64.b64decode(t.signature[8:])) for t in toks]
    vk = VerifyKey(key.public)
    best_ours = best_anchor = float("inf")
    for _ in range(3):  # alternated, best of 3
        t0 = time.perf_counter()
        for text in texts:
            tok = parse_token(text)
            check_token(tok, now=now, key_registered=lookup, used=used.__contains__)
            check_content(tok, size=100, cid="")
        best_ours = min(best_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for msg, sig in msgs:
            vk.verify(msg, sig)
        best_anchor = min(best_anchor, time.perf_counter() - t0)
    return _fig(n / best_ours, n / best_anchor, "tokens/s", best_anchor / best_ours)


def bench_gc_mark(nblocks: int) -> dict[str, object]:
    log(f"gc_mark: building a DAG of {nblocks} leaves in memory ...")
    blocks: dict[str, bytes] = {}
    level = [cid_from_digest(hashlib.sha256(i.to_bytes(8, "big")).digest(), "raw")
             for i in range(nblocks)]
    names = [cid_str(c) for c in level]
    sizes = [262144] * len(level)
    while len(level) > 1:
        up, up_sizes = [], []
        for i in range(0, len(level), 174):
            links = tuple(dagpb.PBLink(hash=c, name="", tsize=t)
                          for c, t in zip(level[i:i + 174], sizes[i:i + 174], strict=True))
            block = dagpb.encode(dagpb.PBNode(links=links, data=b"\x08\x02"))
            cid = cid_from_digest(hashlib.sha256(block).digest(), "dag-pb")
            blocks[cid_str(cid)] = block
            up.append(cid)
            up_sizes.append(sum(sizes[i:i + 174]) + len(block))
        level, sizes = up, up_sizes
    root = level[0]

    def get(cid: object) -> bytes:
        return blocks[cid_str(cid)]  # type: ignore[arg-type]

    ours = anchor = float("inf")
    for _ in range(3):  # alternated, best of 3
        t0 = time.perf_counter()
        live = mark(get, [root])
        ours = min(ours, time.perf_counter() - t0)
        assert len(live) == nblocks + len(blocks)
        del live
        t0 = time.perf_counter()
        s: set[str] = set()
        for name in names:
            s.add(name)
        anchor = min(anchor, time.perf_counter() - t0)
        del s
    return _fig(ours, anchor, "s", anchor / ours)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--quick", action="store_true", help="small sizes (64 MiB put, 100k-block gc)")
    ap.add_argument("--size-mib", type=int, default=None, help="put_lease file size (default 1024)")
    ap.add_argument("--blocks", type=int, default=None, help="gc_mark leaves (default 1,000,000)")
    ap.add_argument("--runs", type=int, default=3, help="best of N alternated put runs (default 3)")
    ap.add_argument("--only", default="put_lease,proof_verify,token_verify,gc_mark")
    ap.add_argument("--work-dir", default=None, help="where test data goes (default: a temp dir)")
    args = ap.parse_args(argv)
    size_mib = args.size_mib or (64 if args.quick else 1024)
    nblocks = args.blocks or (100_000 if args.quick else 1_000_000)
    only = set(args.only.split(","))
    results: dict[str, object] = {}
    work = Path(tempfile.mkdtemp(prefix="cheng-storage-bench-", dir=args.work_dir))
    try:
        if "put_lease" in only:
            results["put_lease"] = bench_put(work, size_mib, args.runs)
        if "proof_verify" in only:
            n = 500 if args.quick else 2000
            results["proof_verify_k8"] = bench_proof(work, n, 8)
            results["proof_verify_k1"] = bench_proof(work, n * 4, 1)
        if "token_verify" in only:
            results["token_verify"] = bench_token(work, 2000 if args.quick else 10000)
        if "gc_mark" in only:
            results["gc_mark"] = bench_gc_mark(nblocks)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_report(results, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
