"""Fetch benchmark: p2p (ours -> ours vs Helia -> ours), HTTP gateway, time to first block.

    python benchmarks/fetch.py [--size-mib 64] [--quick] [--json] [--no-helia]

One snapshot of ``--size-mib`` pseudo-random bytes (UnixFS, 256 KiB chunks) over 127.0.0.1, each
figure beside its anchor measured in the same run:

- ``p2p``: our provider (``cheng-pkg serve`` in its own process) -> our fetcher, MB/s; anchor:
  Helia (a real IPFS node, npm) serving the same bytes in the same chunk size -> our fetcher.
  Goal >= 100 MB/s, ratio >= 1.0.
- ``http``: trustless-gateway fetch (CAR stream, every block verified and stored), MB/s; anchor:
  the same CAR read over the same connection kind and thrown away (the transport's ceiling).
  Goal >= 300 MB/s.
- ``ttfb``: time to the first verified block over p2p, host start and connect included, ms;
  anchor: the same against Helia. Goal <= 50 ms.

Fetch targets are fresh stores on the same disk as the source; timings are wall clock, best of
``--repeat`` runs. ``--json`` prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the net tests' helpers: providers, Helia, data

from helpers_net import HeliaProvider, Provider, helia_dir, pattern  # noqa: E402

CHUNK = 262144


def _mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def _fetch_p2p(root: bytes, addrs: list[str], dst: Path) -> tuple[float, int]:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.fetch.p2p.run import fetch_p2p

    t0 = time.perf_counter()
    stats = fetch_p2p(Blockstore(dst), [root], addrs)
    return time.perf_counter() - t0, stats.bytes_fetched


def _ttfb(leaf: bytes, addrs: list[str], dst: Path) -> float:
    """Seconds to one verified leaf: host start, dial, want, block, verify (store write excluded)."""
    import trio
    from helpers_net import DictStore

    from cheng_build.pkg.fetch import libp2p_adapter as lp
    from cheng_build.pkg.fetch.p2p.node import BitswapNode
    from cheng_build.pkg.fetch.p2p.session import fetch

    targets = [lp.parse_peer_addr(a) for a in addrs]

    async def main() -> float:
        t0 = trio.current_time()
        host = lp.make_host()
        async with host.run(listen_addrs=[]), \
                BitswapNode.running(host, DictStore(), serve=False) as node:
            stats = await fetch(node, [leaf], targets)
            assert stats.first_block_at is not None
            return stats.first_block_at - t0

    return trio.run(main)


def _leaf_of(store_dir: Path, root: bytes) -> bytes:
    from multiformats import CID

    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.fetch.blocks import CODEC_RAW, codec_of, walk

    for c, _ in walk(Blockstore(store_dir), root):
        if codec_of(c) == CODEC_RAW:
            return c
    raise RuntimeError(f"no leaf under {CID.decode(root)}")


def _http(url: str, root: bytes, dst: Path) -> tuple[float, float, int]:
    from multiformats import CID

    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.fetch.http import fetch_dag

    cid = CID.decode(root).encode("base32")
    host, port = url.removeprefix("http://").split(":")
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("GET", f"/ipfs/{cid}?format=car")
    resp = conn.getresponse()
    raw = 0
    while chunk := resp.read(1 << 20):
        raw += len(chunk)
    conn.close()
    anchor = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = fetch_dag(Blockstore(dst), root, url)
    ours = time.perf_counter() - t0
    return ours, anchor, stats.bytes_fetched


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="8 MiB, one repeat")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-helia", action="store_true", help="skip the Helia anchors")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.size_mib, args.repeat = 8, 1

    from multiformats import CID

    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.importer import add_path

    size = args.size_mib * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="cheng-bench-fetch-"))
    results: dict[str, dict[str, Any]] = {}
    providers: list[Any] = []
    try:
        data_file = work / "snapshot.bin"
        data_file.write_bytes(pattern(size, seed=64))
        src = work / "src"
        root = bytes(add_path(Blockstore(src), data_file, chunker=f"size-{CHUNK}"))
        ours = Provider(src, http=True)
        providers.append(ours)
        helia = None
        if not args.no_helia:
            try:
                folder = helia_dir()
                helia = HeliaProvider(folder, data_file, lifetime_s=600)
                providers.append(helia)
            except (FileNotFoundError, RuntimeError) as exc:
                print(f"helia unavailable, anchors skipped: {exc}", file=sys.stderr)

        def best(fn: Any) -> Any:
            runs = []
            for i in range(args.repeat):
                dst = work / f"dst-{len(list(work.iterdir()))}-{i}"
                runs.append(fn(dst))
                shutil.rmtree(dst, ignore_errors=True)
            return min(runs, key=lambda r: r[0] if isinstance(r, tuple) else r)

        t, n = best(lambda d: _fetch_p2p(root, [ours.p2p], d))
        p2p_ours = _mbps(n, t)
        p2p_anchor = float("nan")
        ttfb_anchor = float("nan")
        if helia is not None:
            hroot = bytes(CID.decode(helia.cid))
            keep = work / "helia-copy"
            _fetch_p2p(hroot, helia.addrs, keep)  # warm Helia once; keep its DAG for a leaf
            t, n = best(lambda d: _fetch_p2p(hroot, helia.addrs, d))
            p2p_anchor = _mbps(n, t)
            hleaf = _leaf_of(keep, hroot)
            ttfb_anchor = best(lambda d: _ttfb(hleaf, helia.addrs, d)) * 1000
        results["p2p"] = {"ours": p2p_ours, "anchor": p2p_anchor, "unit": "MB/s",
                          "ratio": p2p_ours / p2p_anchor}

        gw = "http://" + ours.http.split("/ip4/")[1].replace("/tcp/", ":").removesuffix("/http")
        h = best(lambda d: _http(gw, root, d))
        results["http"] = {"ours": _mbps(h[2], h[0]), "anchor": _mbps(h[2], h[1]), "unit": "MB/s",
                           "ratio": h[1] / h[0]}

        leaf = _leaf_of(src, root)
        ttfb_ours = best(lambda d: _ttfb(leaf, [ours.p2p], d)) * 1000
        results["ttfb"] = {"ours": ttfb_ours, "anchor": ttfb_anchor, "unit": "ms",
                           "ratio": ttfb_ours / ttfb_anchor}
    finally:
        for p in providers:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)

    goals = {"p2p": ">= 100 MB/s, ratio >= 1.0", "http": ">= 300 MB/s", "ttfb": "<= 50 ms"}
    anchors = {"p2p": "Helia -> ours", "http": "raw CAR read, unverified", "ttfb": "Helia -> ours"}
    print(f"fetch benchmark: {args.size_mib} MiB snapshot, loopback, best of {args.repeat}")
    print(f"{'figure':<6} {'ours':>10} {'anchor':>10} {'unit':<5} {'ratio':>6}  anchor / goal")
    for name, r in results.items():
        print(f"{name:<6} {r['ours']:>10.1f} {r['anchor']:>10.1f} {r['unit']:<5} {r['ratio']:>6.2f}"
              f"  {anchors[name]} / goal {goals[name]}")
    if args.json:
        # A figure whose anchor could not run (no npm) is null, never NaN (not valid JSON).
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and v != v else v
        print(json.dumps({k: {f: clean(v) for f, v in r.items()} for k, r in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
