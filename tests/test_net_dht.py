"""Content routing on the Kademlia DHT with real processes: ten ``cheng-pkg serve`` nodes on
loopback joined through two bootstrap peers; a consumer that knows only the bootstrap peers finds
the one node holding a snapshot and fetches it; the deny list applies to peers found this way;
the gateway answers IPIP-337 delegated routing from the DHT, and a consumer that knows only that
router fetches through it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers_net import Machine, Serve, make_package

pytestmark = pytest.mark.timeout(240)

NODES = 10


def test_ten_node_dht_finds_the_provider_and_policy_applies(tmp_path: Path) -> None:
    nodes: list[Serve] = []
    try:
        nodes.append(Serve(Machine(tmp_path / "n0"), extra=("--dht",)))
        nodes.append(Serve(Machine(tmp_path / "n1"), extra=(f"--bootstrap:{nodes[0].p2p}",)))
        boot = f"{nodes[0].p2p},{nodes[1].p2p}"
        for i in range(2, NODES - 1):
            nodes.append(Serve(Machine(tmp_path / f"n{i}"), http=False, extra=(f"--bootstrap:{boot}",)))
        # The last node holds a snapshot (its cache's packages/<cid>/) and announces it.
        holder = Machine(tmp_path / f"n{NODES - 1}")
        cache, cid = make_package(holder.root, size=300_000)
        holder.cache = cache
        (cache / "packages" / cid).mkdir(parents=True)
        last = Serve(holder, http=False, extra=(f"--bootstrap:{boot}",))
        nodes.append(last)
        assert last.announced() == 1

        # A consumer knowing only the two bootstrap peers (which do not hold it).
        c = Machine(tmp_path / "c")
        r = c.run("cheng-pkg", "checkout", f"--cid:{cid}", PKG_BOOTSTRAP=boot)
        assert r.returncode == 0, r.stderr
        assert (c.cache / "packages" / cid / "data.bin").stat().st_size == 300_000

        # The same with the provider denied: found, named, not contacted.
        d = Machine(tmp_path / "d")
        r = d.run("cheng-pkg", "checkout", f"--cid:{cid}", PKG_BOOTSTRAP=boot,
                  PKG_DENY=f"/p2p/{last.peer_id}")
        assert r.returncode == 1
        assert "none allowed" in r.stderr and last.peer_id in r.stderr, r.stderr
        assert not (d.cache / "packages" / cid).exists()

        # Delegated routing over HTTP on a bootstrap node's gateway.
        base = "http://" + nodes[0].http.split("/")[2] + ":" + nodes[0].http.split("/")[4]
        with urllib.request.urlopen(f"{base}/routing/v1/providers/{cid}", timeout=30) as resp:
            doc = json.loads(resp.read())
        ids = {p["ID"] for p in doc["Providers"]}
        assert last.peer_id in ids and all(p["Schema"] == "peer" and p["Addrs"] for p in doc["Providers"])
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{base}/routing/v1/providers/not-a-cid", timeout=30)
        assert exc.value.code == 400

        # A consumer that knows only that delegated router (no DHT, no peers) fetches too.
        e = Machine(tmp_path / "e")
        r = e.run("cheng-pkg", "checkout", f"--cid:{cid}", PKG_ROUTERS=base)
        assert r.returncode == 0, r.stderr
        assert (e.cache / "packages" / cid / "data.bin").stat().st_size == 300_000
    finally:
        for n in nodes:
            n.stop()
