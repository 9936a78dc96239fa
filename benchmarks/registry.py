"""Registry verification speed: ``verify`` of an N-line signed registry vs N bare PyNaCl verifies.

    python benchmarks/registry.py [--lines 10000] [--authors 50] [--gov-every 20] [--repeat 3]
                                  [--quick] [--json]

The registry is built in a temp dir: N signed, hash-chained publish lines (``authors`` keys, one
package each, epochs increasing) and a checkpoint every 1,000 lines, exactly as ``publish`` and
``checkpoint`` write them; every ``--gov-every``-th line (default 20, i.e. 5%; 0 = none) is a
governance line instead (issue 20), cycling per package through tag, promote (by a maintainer the
operator granted, then by the owner), quarantine, release, appeal and decision, after one
operator ``maintainer`` line — each valid under the log's rules, so verify checks them all.
Figures (best of ``--repeat``):

- ``verify``: ``RegistryLog.load(path, verify_ahead=True).verify("L1", memory=False)`` (what
  ``cheng-registry verify`` runs) — read, parse every line,
  chain digests, Merkle root at every checkpoint, ownership/epoch rules, every signature.
- ``verify_1thread``: the same with signature checks on one thread.
- ``verify_1thread_cpu``: the same, CPU seconds of this process instead of wall time (stable on a
  machine shared with other work).
- ``verify_1thread_vs_libsodium``: against a bare ``crypto_sign_open`` loop (the floor).
- ``verify_warm``: a client that verified this log before and remembers its newest checkpoint:
  lines under that checkpoint are bound by its Merkle root (recomputed from the bytes), so only
  the lines after it have their signatures checked. Not the headline: it is what every later
  verify on the same machine costs.
- anchor: ``VerifyKey(pub).verify(msg, sig)`` over the same N signed messages, with the N
  messages, signatures and VerifyKey objects prepared beforehand (nothing but PyNaCl's verify).

Figures are throughputs (lines verified per second), so ratio = ours / anchor = anchor time / our
time (higher is better; the goal is >= 0.8). The last line with ``--json`` is
``{"<name>": {"ours": x, "anchor": y, "unit": "lines/s", "ratio": x/y}}``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cheng_build.trust import canonical, merkle
from cheng_build.trust.keys import KeyPair
from cheng_build.trust.registry_log import GENESIS_PREV, RegistryLog

CID = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


# Per package, the governance lines cycle through these (the promotes only once each: the
# benchmark's publishes share one CID, and a channel cannot be promoted to its own head).
_GOV_FIRST = ("tag", "promote:stable", "quarantine", "release", "appeal", "decision",
              "promote:lts")
_GOV_CYCLE = ("tag", "quarantine", "release", "appeal", "decision")


def _gov_body(step: str, i: int, n: int, owner: KeyPair, op: KeyPair, maint: KeyPair
              ) -> tuple[dict[str, object], KeyPair]:
    pkg = f"pkg://cheng/p{i}"
    kind, _, channel = step.partition(":")
    body: dict[str, object] = {"type": kind, "package_id": pkg, "cid": CID}
    signer = op
    if kind == "tag":
        body["tag"], signer = f"t{n}", owner
    elif kind == "promote":
        body["channel"], signer = channel, maint if channel == "stable" else owner
    elif kind in ("quarantine", "release"):
        body["reason"] = "benchmark"
    elif kind == "appeal":
        body["report_cid"], signer = CID, owner
    else:
        body.update(outcome="restore", reason="benchmark", originality_score=0.75)
    return body, signer


def build_registry(path: Path, lines: int, authors: int, checkpoint_every: int = 1000,
                   gov_every: int = 0) -> list[tuple[bytes, bytes, bytes]]:
    """Write a signed registry; returns (public key, message, signature) of every signed line."""
    keys = [KeyPair.generate(f"node:a{i}") for i in range(authors)]
    op = KeyPair.generate("op:main")
    maint = KeyPair.generate("node:maintainer")
    gov_steps = [0] * authors
    granted = False
    prev = GENESIS_PREV
    acc = merkle.MerkleAccumulator()
    signed: list[tuple[bytes, bytes, bytes]] = []
    epochs = [0] * authors
    t0 = int(time.time()) - lines
    with open(path, "wb") as fh:
        for n in range(1, lines + 1):
            i = n % authors
            if (gov_every and n % gov_every == 0 and n % checkpoint_every != 0
                    and epochs[i] > 0 and (granted or n > authors)):
                if not granted:
                    body = {"type": "maintainer", "op": "grant", "maintainer_key": maint.pub_key,
                            "maintainer_id": "node:maintainer", "channels": ["stable"],
                            "packages": ["pkg://cheng/*"]}
                    sig_key, granted = op, True
                else:
                    s = gov_steps[i]
                    step = _GOV_FIRST[s] if s < len(_GOV_FIRST) else \
                        _GOV_CYCLE[(s - len(_GOV_FIRST)) % len(_GOV_CYCLE)]
                    gov_steps[i] += 1
                    body, sig_key = _gov_body(step, i, n, keys[i], op, maint)
                body = {"type": body.pop("type"), "seq": n, "prev": prev, **body,
                        "created_ts": str(t0 + n), "pub_key": sig_key.pub_key}
                msg = canonical.gov_payload(body)
                body["signature"] = sig_key.sign(msg)
            elif n % checkpoint_every == 0:
                body = {"type": "checkpoint", "seq": n, "prev": prev, "size": n - 1,
                        "root": acc.root().hex(), "timestamp": t0 + n, "expires": t0 + n + 30 * 86400,
                        "operator_id": "op:main", "pub_key": op.pub_key}
                msg = canonical.checkpoint_payload(body)
                body["signature"] = op.sign(msg)
                sig_key = op
            else:
                epochs[i] += 1
                k = keys[i]
                fields = {"package_id": f"pkg://cheng/p{i}", "author_id": k.author_id,
                          "channel": "edge", "epoch": epochs[i], "cid": CID, "format": "dag",
                          "ast_simhash64": f"{(n * 0x9E3779B97F4A7C15) & (2**64 - 1):016x}",
                          "originality_score": 1.0}
                msg = canonical.publish_payload(fields)
                body = {"type": "publish", "seq": n, "prev": prev, **fields,
                        "pub_key": k.pub_key, "signature": k.sign(msg), "created_ts": str(t0 + n),
                        "chunker": "fastcdc-65536-262144-1048576"}
                sig_key = k
            raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            fh.write(raw + b"\n")
            prev = "sha256:" + hashlib.sha256(raw).hexdigest()
            acc.add(merkle.leaf_hash(raw))
            signed.append((sig_key.public, msg, base64.b64decode(body["signature"][8:])))
    return signed


def best(fn, repeat: int, clock=time.perf_counter) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--authors", type=int, default=50)
    ap.add_argument("--gov-every", type=int, default=20,
                    help="every N-th line is a governance line (0: publishes only)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1,000 lines, one repeat")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.lines, a.repeat = 1000, 1
    from nacl.signing import VerifyKey

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "registry.jsonl"
        signed = build_registry(path, a.lines, a.authors, gov_every=a.gov_every)
        vks = {pub: VerifyKey(pub) for pub, _, _ in signed}
        prepared = [(vks[pub], msg, sig) for pub, msg, sig in signed]

        def anchor() -> None:
            for vk, msg, sig in prepared:
                vk.verify(msg, sig)

        def ours(threads: int | None = None) -> None:
            report = RegistryLog.load(path, verify_ahead=threads != 1).verify(
                "L1", memory=False, threads=threads)
            assert report.lines == a.lines

        from nacl._sodium import ffi, lib

        buf = ffi.new("unsigned char[]", 4096)
        mlen = ffi.new("unsigned long long *")
        raw_prepared = [(pub, sig + msg) for pub, msg, sig in signed]

        def raw_sodium() -> None:
            for pub, sm in raw_prepared:
                if lib.crypto_sign_open(buf, mlen, sm, len(sm), pub) != 0:
                    raise AssertionError("bad signature")

        # Interleaved rounds, best of each: a burst of load from other work on the machine hits
        # every figure alike instead of one. CPU time of this process is measured too: on a
        # shared machine wall time swings with the neighbours; single-threaded CPU time compares
        # the work itself.
        from cheng_build.trust.checkpoint import CheckpointMemory

        memory = CheckpointMemory(Path(d) / "trust")
        RegistryLog.load(path).verify("L1", memory=memory)  # this client has seen the log

        def warm() -> None:
            RegistryLog.load(path).verify("L1", memory=memory)

        runs = {"anchor": (anchor, time.perf_counter), "raw": (raw_sodium, time.perf_counter),
                "warm": (warm, time.perf_counter),
                "ours": (ours, time.perf_counter), "one": (lambda: ours(1), time.perf_counter),
                "c_anchor": (anchor, time.process_time), "c_one": (lambda: ours(1), time.process_time)}
        got: dict[str, float] = {k: float("inf") for k in runs}
        for _ in range(a.repeat):
            for k, (fn, clock) in runs.items():
                got[k] = min(got[k], best(fn, 1, clock))
        t_anchor, t_raw, t_ours, t_one = got["anchor"], got["raw"], got["ours"], got["one"]
        c_anchor, c_one = got["c_anchor"], got["c_one"]
        t_warm = got["warm"]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = a.lines

    def row(ours_s: float, anchor_s: float, unit: str = "lines/s") -> dict[str, float | str]:
        # Throughput, so ratio = ours/anchor (the team's format) = anchor time / our time (the
        # issue's goal: >= 0.8).
        return {"ours": n / ours_s, "anchor": n / anchor_s, "unit": unit, "ratio": anchor_s / ours_s}

    rows = {
        "verify": row(t_ours, t_anchor),
        "verify_1thread": row(t_one, t_anchor),
        "verify_1thread_cpu": row(c_one, c_anchor, "lines/cpu-s"),
        "verify_1thread_vs_libsodium": row(t_one, t_raw),
        "verify_warm": row(t_warm, t_anchor),
    }
    anchors = {"verify": "PyNaCl VerifyKey.verify",
               "verify_1thread": "PyNaCl VerifyKey.verify",
               "verify_1thread_cpu": "PyNaCl VerifyKey.verify (CPU time)",
               "verify_1thread_vs_libsodium": "crypto_sign_open, prepared buffers",
               "verify_warm": "PyNaCl VerifyKey.verify (ours: remembered checkpoint)"}
    print(f"registry verify, {n} lines ({n // 1000} checkpoints, "
          f"{'no' if not a.gov_every else f'1 in {a.gov_every}'} governance lines), {a.authors} authors, "
          f"{cpus} CPUs, best of {a.repeat}")
    print(f"{'figure':<28}{'ours':>10}{'anchor':>10}{'ratio':>7}  unit; anchor = {n} x")
    for name, r in rows.items():
        print(f"{name:<28}{r['ours']:>10.0f}{r['anchor']:>10.0f}{r['ratio']:>7.2f}  "
              f"{r['unit']}; {anchors[name]}")
    print(f"per line: ours {t_ours / a.lines * 1e6:.1f} us, 1 thread {t_one / a.lines * 1e6:.1f} us, "
          f"bare verify {t_anchor / a.lines * 1e6:.1f} us")
    if a.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
