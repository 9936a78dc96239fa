"""Beyond one machine, with real OS processes on loopback (issue 14's four-process test).

P publishes three packages and serves; M syncs the registry from P, fetches every snapshot
(``cheng-pkg checkout --cid``), serves and provides them on the DHT; C starts with an empty cache
and registry file, only ``PKG_OPERATOR_KEY`` and M's address, and builds a multi-dependency app
(one transitive) with the test-double compiler. P is killed; C2 knowing only M (its HTTP
gateway for the registry, its peer address as DHT bootstrap for the blocks: HTTP blocks are off
at L1, so the DHT is the only way to them) builds too. A malicious mirror X serves a forked
registry (a rewritten line re-signed by the attacker, a self-made checkpoint): C refuses it with
``registry forked`` and appends nothing; with X then M as sources, X is named and M used.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_chengc import calls
from helpers_net import Machine, Serve, app_tree, consumer, forge, publish_world

from cheng_build.trust.keys import KeyPair

pytestmark = pytest.mark.timeout(240)


def _cids_in(registry: Path) -> list[str]:
    return [json.loads(x)["cid"] for x in registry.read_bytes().splitlines()
            if json.loads(x).get("type") == "publish"]


def _url(maddr: str) -> str:
    parts = maddr.split("/")
    return f"http://{parts[2]}:{parts[4]}"


def _build(c: Machine) -> None:
    app = c.root / "app"
    app_tree(app, [0, 1])
    r = c.run("chengc", "app.cheng", "--manifest:cheng-package.toml", cwd=app)
    assert r.returncode == 0, r.stderr
    art = (app / "artifacts" / "chengc" / "app").read_bytes()
    # The compiler saw every dependency's sources, the transitive dep2 included.
    for i in (0, 1, 2):
        assert f"fn impl{i}(): int32 = {i}".encode() in art, art[:300]
    assert len(calls(c.root / "bin")) == 1
    locks = list(c.cache.glob("*.lock.*"))
    assert len(locks) == 1 and b"pkg://cheng/dep2" in locks[0].read_bytes()


def test_four_processes_sync_fetch_build_and_refuse_a_fork(tmp_path: Path) -> None:
    author, op, attacker = (KeyPair.generate("node:alice"), KeyPair.generate("op:main"),
                            KeyPair.generate("node:mallory"))
    p = Machine(tmp_path / "P")
    cids = publish_world(p, author, op)
    serves: list[Serve] = []
    try:
        sp = Serve(p)
        serves.append(sp)

        # M: a mirror. Sync over libp2p, fetch every snapshot, serve.
        m = Machine(tmp_path / "M", PKG_OPERATOR_KEY=op.pub_key)
        r = m.run("cheng-registry", "sync", f"--from:{sp.p2p}", "--format:json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["appended"] == 4 and doc["lines"] == 4 and doc["checkpoint"]["line"] == 4
        assert m.registry.read_bytes() == p.registry.read_bytes()
        for cid in _cids_in(m.registry):
            r = m.run("cheng-pkg", "checkout", f"--cid:{cid}", PKG_PEERS=sp.p2p)
            assert r.returncode == 0, r.stderr
            assert (m.cache / "packages" / cid).is_dir()
        assert sorted(_cids_in(m.registry)) == sorted(cids.values())
        sm = Serve(m, extra=("--dht",))  # M also provides every snapshot on the DHT
        serves.append(sm)
        assert sm.announced() == 3

        # Resolve's prefetch: the roots, then the manifests, of two snapshots in two batches;
        # reading the manifests afterwards needs nothing more from the network.
        from cheng_build.cas.blockstore import Blockstore
        from cheng_build.pkg.remote.blocks import FetchingStore
        from cheng_build.pkg.resolve import store_manifest_reader

        two = [cids["pkg://cheng/dep0"], cids["pkg://cheng/dep1"]]
        with FetchingStore(Blockstore(tmp_path / "prefetch"), [sm.p2p], []) as fs:
            assert fs.prefetch(two) == 4
            for pid in ("pkg://cheng/dep0", "pkg://cheng/dep1"):
                assert store_manifest_reader(fs)(pid, cids[pid], "dag") is not None
            assert fs.fetched == 4

        # C: empty, knows the operator's key and M's address only.
        c = consumer(tmp_path / "C", op, sm.p2p)
        _build(c)
        assert c.registry.read_bytes() == p.registry.read_bytes()
        # The no-op rebuild inside the freshness window does not sync (P and M are not asked).
        r = c.run("chengc", "app.cheng", "--manifest:cheng-package.toml", "--explain",
                  cwd=c.root / "app")
        assert r.returncode == 0 and "ran none" in r.stderr, r.stderr

        # P goes away; C2 knowing only M builds: the registry from M's HTTP gateway, the blocks
        # from whoever the DHT (bootstrap: M) names as providers (HTTP blocks are off at L1).
        sp.stop()
        c2 = consumer(tmp_path / "C2", op, _url(sm.http))
        c2.extra["PKG_BOOTSTRAP"] = sm.p2p
        _build(c2)

        # X: a malicious mirror with a forked registry.
        x = Machine(tmp_path / "X")
        x.registry.write_bytes(b"".join(
            ln + b"\n" for ln in forge(p.registry.read_bytes().splitlines(), attacker,
                                       cids["pkg://cheng/dep1"])))
        sx = Serve(x)
        serves.append(sx)
        before = c.registry.read_bytes()
        r = c.run("cheng-registry", "sync", f"--from:{sx.p2p}")
        assert r.returncode == 1
        first = r.stderr.splitlines()[0]
        assert first == "sync: registry forked", r.stderr
        assert "op:" not in first and "root" in r.stderr and "remembers" in r.stderr
        assert c.registry.read_bytes() == before, "nothing appended from a fork"
        # Over HTTP too, and with a good source after it: the liar is named, M is used.
        r = c.run("cheng-registry", "sync", f"--from:{sx.http},{sm.p2p}")
        assert r.returncode == 0, r.stderr
        assert f"{sx.http}: registry forked" in r.stderr
        assert f"source: {sm.p2p}" in r.stdout
        assert c.registry.read_bytes() == before
    finally:
        for s in serves:
            s.stop()
