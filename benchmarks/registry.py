"""Registry verification speed: ``verify`` of an N-line signed registry vs N bare PyNaCl verifies.

    python benchmarks/registry.py [--lines 10000] [--authors 50] [--repeat 3] [--quick] [--json]

The registry is built in a temp dir: N signed, hash-chained publish lines (``authors`` keys, one
package each, epochs increasing) and a checkpoint every 1,000 lines, exactly as ``publish`` and
``checkpoint`` write them. Figures (best of ``--repeat``):

- ``verify``: ``RegistryLog.load(path, verify_ahead=True).verify("L1", memory=False)`` (what
  ``cheng-registry verify`` runs) — read, parse every line,
  chain digests, Merkle root at every checkpoint, ownership/epoch rules, every signature.
- ``verify_1thread``: the same with signature checks on one thread.
- anchor: ``VerifyKey(pub).verify(msg, sig)`` over the same N signed messages, with the N
  messages, signatures and VerifyKey objects prepared beforehand (nothing but PyNaCl's verify).

ratio = anchor time / our time (higher is better; the goal is >= 0.8). The last line with
``--json`` is ``{"<name>": {"ours": s, "anchor": s, "unit": "s", "ratio": anchor/ours}}``.
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


def build_registry(path: Path, lines: int, authors: int, checkpoint_every: int = 1000
                   ) -> list[tuple[bytes, bytes, bytes]]:
    """Write a signed registry; returns (public key, message, signature) of every signed line."""
    keys = [KeyPair.generate(f"node:a{i}") for i in range(authors)]
    op = KeyPair.generate("op:main")
    prev = GENESIS_PREV
    acc = merkle.MerkleAccumulator()
    signed: list[tuple[bytes, bytes, bytes]] = []
    epochs = [0] * authors
    t0 = int(time.time()) - lines
    with open(path, "wb") as fh:
        for n in range(1, lines + 1):
            if n % checkpoint_every == 0:
                body = {"type": "checkpoint", "seq": n, "prev": prev, "size": n - 1,
                        "root": acc.root().hex(), "timestamp": t0 + n, "expires": t0 + n + 30 * 86400,
                        "operator_id": "op:main", "pub_key": op.pub_key}
                msg = canonical.checkpoint_payload(body)
                body["signature"] = op.sign(msg)
                sig_key = op
            else:
                i = n % authors
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


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--authors", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1,000 lines, one repeat")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.lines, a.repeat = 1000, 1
    from nacl.signing import VerifyKey

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "registry.jsonl"
        signed = build_registry(path, a.lines, a.authors)
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

        t_anchor = best(anchor, a.repeat)
        t_raw = best(raw_sodium, a.repeat)
        t_ours = best(ours, a.repeat)
        t_one = best(lambda: ours(1), a.repeat)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = {
        "verify": {"ours": t_ours, "anchor": t_anchor, "unit": "s", "ratio": t_anchor / t_ours},
        "verify_1thread": {"ours": t_one, "anchor": t_anchor, "unit": "s", "ratio": t_anchor / t_one},
        "verify_1thread_vs_libsodium": {"ours": t_one, "anchor": t_raw, "unit": "s",
                                        "ratio": t_raw / t_one},
    }
    anchors = {"verify": "PyNaCl VerifyKey.verify", "verify_1thread": "PyNaCl VerifyKey.verify",
               "verify_1thread_vs_libsodium": "crypto_sign_open, prepared buffers"}
    print(f"registry verify, {a.lines} lines ({a.lines // 1000} checkpoints), {a.authors} authors, "
          f"{cpus} CPUs, best of {a.repeat}")
    print(f"{'figure':<28}{'ours (s)':>10}{'anchor (s)':>12}{'ratio':>8}   anchor")
    for name, r in rows.items():
        print(f"{name:<28}{r['ours']:>10.3f}{r['anchor']:>12.3f}{r['ratio']:>8.2f}   "
              f"{a.lines} x {anchors[name]}")
    print(f"per line: ours {t_ours / a.lines * 1e6:.1f} us, 1 thread {t_one / a.lines * 1e6:.1f} us, "
          f"bare verify {t_anchor / a.lines * 1e6:.1f} us")
    if a.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
