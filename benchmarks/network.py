"""Beyond one machine: a cold consumer build, registry sync, DHT lookups (issue 14's figures).

    python benchmarks/network.py [--deps 20] [--lines 10000] [--nodes 20] [--lookups 100]
                                 [--quick] [--json]

Every figure sits beside an anchor measured in the same run:

- ``cold_build``: ``chengc app.cheng --manifest:cheng-package.toml --no-cache`` (a process) on an
  empty consumer that knows only the operator's key and a mirror's address (sync + resolve with
  manifests fetched on demand + verify + fetch over libp2p + compile with the test double)
  against the same command on a consumer that already has the registry and every snapshot
  (resolve + verify + compile). ratio = cold / warm (goal <= 2.0).
- ``sync_http_vs_verify``: the same HTTP sync against verifying the same log locally
  (``RegistryLog.verify``, what ``cheng-registry verify`` runs): what the network adds.
- ``sync_p2p`` / ``sync_http``: ``trust.sync`` of an N-line signed registry (the shape of
  ``benchmarks/registry.py``) from a ``cheng-pkg serve --registry`` process over
  ``/cheng/registry/1.0.0`` (host start and dial included) and over its HTTP gateway, into an
  empty registry with no remembered checkpoint, every line verified; against N bare PyNaCl
  verifies of the same lines. Throughput, ratio = ours / anchor (goal >= 0.7).
- ``dht_first_provider_p50`` / ``_p99``: a client-mode node joins a ``--nodes`` DHT on loopback
  (in one process, py-libp2p ``kad_dht``) through two bootstrap peers, then asks for the
  providers of ``--lookups`` distinct CIDs (each provided by one of the other nodes); time to
  the first provider (``pkg.remote.dht.first_providers``, what fetch uses).
  Anchor: one libp2p round trip to a bootstrap peer (a new ``/ipfs/ping/1.0.0``
  stream + one ping, as each DHT query opens a stream). ratio = anchor / ours; goals are also
  absolute: p50 <= 50 ms, p99 <= 250 ms.

With ``--json`` the last line is ``{"<name>": {"ours": x, "anchor": y, "unit": ..., "ratio": r}}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _registry_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_registry", ROOT / "benchmarks" / "registry.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


# --- cold consumer build --------------------------------------------------------------------


def bench_build(tmp: Path, deps: int) -> dict[str, float]:
    from helpers_chengc import install_fake, write_tree
    from helpers_net import Machine, Serve

    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.publish import publish
    from cheng_build.trust.keys import KeyPair
    from cheng_build.trust.registry_ops import append_checkpoint

    author, op = KeyPair.generate("node:alice"), KeyPair.generate("op:main")
    p = Machine(tmp / "P")
    store = Blockstore(p.cache)
    for i in range(deps):
        src = p.root / "src" / f"dep{i}"
        write_tree(src, {"cheng-package.toml": f'package_id = "pkg://cheng/dep{i}"\nversion = "1.0.0"\n',
                         "src/api.cheng": f"import cheng/dep{i}/impl\nfn Api{i}(): int32 = {i}\n",
                         "src/impl.cheng": f"fn impl{i}(): int32 = {i}\n" * 50})
        publish(registry=p.registry, key=author, package_id=f"pkg://cheng/dep{i}", channel="stable",
                epoch=1, src=src, store=store)
    append_checkpoint(p.registry, op, ttl_s=3600)
    serve = Serve(p, http=False)
    try:
        def consumer(name: str, source: str | None) -> tuple[Machine, Path]:
            fake = install_fake(tmp / name / "bin")
            env = {"PKG_OPERATOR_KEY": op.pub_key, "CHENG_COMPILER": str(fake)}
            if source:
                env["PKG_REGISTRY_FROM"] = source
            m = Machine(tmp / name, **env)
            app = m.root / "app"
            write_tree(app, {"cheng-package.toml": 'package_id = "pkg://cheng/app"\n' + "".join(
                f'[[dependencies]]\npackage_id = "pkg://cheng/dep{i}"\nchannel = "stable"\n'
                for i in range(deps)), "app.cheng": "".join(
                f"import cheng/dep{i}/api\n" for i in range(deps)) + "fn main(): int32 = 0\n"})
            return m, app

        def build(m: Machine, app: Path) -> float:
            t = time.perf_counter()
            r = m.run("chengc", "app.cheng", "--manifest:cheng-package.toml", "--no-cache", cwd=app)
            dt = time.perf_counter() - t
            if r.returncode != 0:
                raise RuntimeError(r.stderr)
            return dt

        c, capp = consumer("cold", serve.p2p)
        cold = build(c, capp)
        # Warm: the same machine state with everything local and no mirror configured.
        w, wapp = consumer("warm", None)
        import shutil

        shutil.rmtree(w.cache, ignore_errors=True)
        shutil.copytree(c.cache, w.cache, ignore=shutil.ignore_patterns("chengc"))
        shutil.copyfile(c.registry, w.registry)
        shutil.copytree(c.trust, w.trust, dirs_exist_ok=True)
        warm = min(build(w, wapp) for _ in range(2))
        return {"cold": cold, "warm": warm}
    finally:
        serve.stop()


# --- registry sync --------------------------------------------------------------------------


def bench_sync(tmp: Path, lines: int, repeat: int) -> dict[str, float]:
    from helpers_net import Machine, Serve
    from nacl.signing import VerifyKey

    from cheng_build.pkg.remote.registry_sources import open_sources
    from cheng_build.trust.checkpoint import CheckpointMemory
    from cheng_build.trust.config import load_config
    from cheng_build.trust.registry_log import RegistryLog
    from cheng_build.trust.sync import sync_registry

    reg = _registry_bench()
    p = Machine(tmp / "S")
    signed = reg.build_registry(p.registry, lines, 50)
    vks = {pub: VerifyKey(pub) for pub, _, _ in signed}
    prepared = [(vks[pub], msg, sig) for pub, msg, sig in signed]
    serve = Serve(p, http=True)
    try:
        http_url = "http://" + serve.http.split("/")[2] + ":" + serve.http.split("/")[4]
        out: dict[str, float] = {"anchor": float("inf"), "p2p": float("inf"), "http": float("inf")}
        for i in range(repeat):
            t = time.perf_counter()
            for vk, msg, sig in prepared:
                vk.verify(msg, sig)
            out["anchor"] = min(out["anchor"], time.perf_counter() - t)
            t = time.perf_counter()
            RegistryLog.load(p.registry, verify_ahead=True).verify("L1", memory=False)
            out["verify"] = min(out.get("verify", float("inf")), time.perf_counter() - t)
            for kind, addr in (("p2p", serve.p2p), ("http", http_url)):
                local = tmp / f"sync-{kind}-{i}" / "registry.jsonl"
                cfg = load_config({"registry": str(local)}, env={})
                mem = CheckpointMemory(local.parent / "trust")
                t = time.perf_counter()
                with open_sources([addr]) as srcs:
                    res = sync_registry(local, srcs, cfg, memory=mem)
                out[kind] = min(out[kind], time.perf_counter() - t)
                assert res.appended == lines, res
        return out
    finally:
        serve.stop()


# --- DHT lookups ----------------------------------------------------------------------------


def bench_dht(nodes: int, lookups: int) -> dict[str, float]:
    # Real CIDs of 10 small raw blocks (sha2-256), so keys are what the IPFS DHT uses.
    import hashlib
    import statistics

    import multiaddr
    import trio
    from multiformats import CID, multihash

    from cheng_build.pkg.fetch import libp2p_adapter as lp
    from cheng_build.pkg.remote.dht import first_providers, join, running_dht

    # One distinct CID per lookup: py's find_providers keeps what it found in the asking node's
    # provider store and answers later lookups of the same key from there (~0.1 ms), which would
    # measure a dict, not the DHT. Spread over the nodes, each sender stays under py's 10
    # ADD_PROVIDER per 10 s per receiving peer.
    cids = [str(CID("base32", 1, "raw", multihash.wrap(hashlib.sha256(b"%d" % i).digest(), "sha2-256")))
            for i in range(lookups)]

    async def main() -> tuple[list[float], list[float]]:
        from contextlib import AsyncExitStack

        from libp2p.host.ping import ID as PING
        from libp2p.host.ping import perform_ping_roundtrip

        async with AsyncExitStack() as st:
            hosts, dhts = [], []
            for i in range(nodes):
                h = lp.make_host()
                listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
                await st.enter_async_context(h.run(listen_addrs=listen))
                boot = [lp.listen_addrs(x)[0] for x in hosts[:2]] if i else []
                d = await st.enter_async_context(running_dht(h, boot, server=True))
                hosts.append(h)
                dhts.append(d)
            await join(hosts[0], dhts[0], [lp.listen_addrs(hosts[1])[0]])
            per_node = -(-len(cids) // (nodes - 2))
            if per_node > 9:
                raise SystemExit(f"--lookups {lookups} needs more nodes: at most 9 CIDs per node")
            for i, c in enumerate(cids):
                assert await dhts[2 + i % (nodes - 2)].provide(c)
            client = lp.make_host()
            await st.enter_async_context(client.run(listen_addrs=[]))
            boot = [lp.listen_addrs(x)[0] for x in hosts[:2]]
            cdht = await st.enter_async_context(running_dht(client, boot, server=False))
            times, rtts = [], []
            for k in range(lookups):
                t = time.perf_counter()
                found = await first_providers(cdht, cids[k])
                times.append(time.perf_counter() - t)
                assert found, "no provider found"
                t = time.perf_counter()
                s = await client.new_stream(hosts[k % 2].get_id(), [PING])
                await perform_ping_roundtrip(s)
                await s.close()
                rtts.append(time.perf_counter() - t)
            return times, rtts

    times, rtts = trio.run(main)

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]

    return {"p50": statistics.median(times), "p99": pct(times, 0.99),
            "a50": statistics.median(rtts), "a99": pct(rtts, 0.99)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deps", type=int, default=20)
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--lookups", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="5 deps, 1,000 lines, 8 nodes, 20 lookups")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.deps, a.lines, a.nodes, a.lookups, a.repeat = 5, 1000, 8, 20, 1
    os.environ.pop("PKG_REGISTRY_FROM", None)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        b = bench_build(tmp / "build", a.deps)
        s = bench_sync(tmp / "sync", a.lines, a.repeat)
    q = bench_dht(a.nodes, a.lookups)
    n = a.lines
    rows: dict[str, dict[str, float | str]] = {
        "cold_build": {"ours": b["cold"], "anchor": b["warm"], "unit": "s",
                       "ratio": b["cold"] / b["warm"]},
        "sync_p2p": {"ours": n / s["p2p"], "anchor": n / s["anchor"], "unit": "lines/s",
                     "ratio": s["anchor"] / s["p2p"]},
        "sync_http": {"ours": n / s["http"], "anchor": n / s["anchor"], "unit": "lines/s",
                      "ratio": s["anchor"] / s["http"]},
        "sync_http_vs_verify": {"ours": n / s["http"], "anchor": n / s["verify"], "unit": "lines/s",
                                "ratio": s["verify"] / s["http"]},
        "dht_first_provider_p50": {"ours": q["p50"] * 1e3, "anchor": q["a50"] * 1e3, "unit": "ms",
                                   "ratio": q["a50"] / q["p50"]},
        "dht_first_provider_p99": {"ours": q["p99"] * 1e3, "anchor": q["a99"] * 1e3, "unit": "ms",
                                   "ratio": q["a99"] / q["p99"]},
    }
    anchors = {"cold_build": f"warm build, everything local ({a.deps} deps)",
               "sync_p2p": f"{n} bare PyNaCl verifies", "sync_http": f"{n} bare PyNaCl verifies",
               "sync_http_vs_verify": "cheng-registry verify of the same local log",
               "dht_first_provider_p50": "libp2p stream + ping round trip (p50)",
               "dht_first_provider_p99": "libp2p stream + ping round trip (p99)"}
    goals = {"cold_build": "ratio <= 2.0", "sync_p2p": "ratio >= 0.7", "sync_http": "ratio >= 0.7",
             "sync_http_vs_verify": "(the network's share)",
             "dht_first_provider_p50": "<= 50 ms", "dht_first_provider_p99": "<= 250 ms"}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"network: {a.deps}-dep app, {n}-line registry, {a.nodes}-node DHT x {a.lookups} "
          f"lookups, {cpus} CPUs")
    print(f"{'figure':<26}{'ours':>10}{'anchor':>10}{'ratio':>7}  unit; anchor; goal")
    for name, r in rows.items():
        print(f"{name:<26}{r['ours']:>10.2f}{r['anchor']:>10.2f}{r['ratio']:>7.2f}  "
              f"{r['unit']}; {anchors[name]}; {goals[name]}")
    if a.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
