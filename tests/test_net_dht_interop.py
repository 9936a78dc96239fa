"""DHT interop with Helia (``@libp2p/kad-dht`` 16, npm), both ways, on loopback only.

1. Helia finds our provider record and fetches from us: py node A (``serve --dht``) and py node
   S (``serve --bootstrap:A``, holding a snapshot, which it announces); Helia knows only A, asks
   the DHT (GET_PROVIDERS to A) for the snapshot's root, dials S, fetches it over bitswap and
   exports identical bytes.
2. We find a CID Helia provides and fetch it: Helia joins through A and announces
   (ADD_PROVIDER to A) a directory it added; ``cheng-pkg checkout --cid`` with only
   ``PKG_BOOTSTRAP=A`` finds Helia through the DHT, fetches over bitswap and verifies every block.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers_net import Machine, Serve, helia_dir, make_package, node_env, pattern

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(300)]


def _peer(text: str) -> str:
    """A peer ID as py-libp2p prints it (base58), from js's form (a libp2p-key CID, or base58)."""
    if text.startswith("12D3") or text.startswith("Qm"):
        return text
    from libp2p.peer.id import ID
    from multiformats import CID

    return ID(bytes(CID.decode(text).digest)).to_string()


@pytest.fixture(scope="session")
def helia() -> Path:
    try:
        return helia_dir()
    except FileNotFoundError:
        pytest.skip("npm/node are not installed: the Helia interop test needs them")


def test_helia_finds_our_provider_record_and_fetches_from_us(helia: Path, tmp_path: Path) -> None:
    a = Serve(Machine(tmp_path / "a"), http=False, extra=("--dht",))
    holder = Machine(tmp_path / "s")
    cache, cid = make_package(holder.root, size=400_000)
    holder.cache = cache
    (cache / "packages" / cid).mkdir(parents=True)
    s = Serve(holder, http=False, extra=(f"--bootstrap:{a.p2p}",))
    try:
        assert s.announced() == 1
        r = subprocess.run(["node", str(helia / "helia_dht.mjs"), "find", a.p2p, cid,
                            str(tmp_path / "out")], cwd=helia, capture_output=True, text=True,
                           timeout=150, env=node_env(HELIA_LIFETIME_MS="120000"))
        assert r.returncode == 0, r.stderr[-3000:]
        report = json.loads(r.stdout.strip().splitlines()[-1])
        assert [_peer(p) for p in report["providers"]] == [s.peer_id]
        diff = subprocess.run(["diff", "-r", str(holder.root / "src"), str(tmp_path / "out")],
                              capture_output=True, text=True)
        assert diff.returncode == 0, diff.stdout
    finally:
        s.stop()
        a.stop()


def test_we_find_a_cid_helia_provides_and_fetch_it(helia: Path, tmp_path: Path) -> None:
    a = Serve(Machine(tmp_path / "a"), http=False, extra=("--dht",))
    data = pattern(700_000, seed=3)
    (tmp_path / "blob").write_bytes(data)
    proc = subprocess.Popen(["node", str(helia / "helia_dht.mjs"), "provide", a.p2p,
                             str(tmp_path / "blob")], cwd=helia, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=node_env(HELIA_LIFETIME_MS="120000"))
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read()[-3000:]  # type: ignore[union-attr]
        info = json.loads(line)
        c = Machine(tmp_path / "c")
        r = c.run("cheng-pkg", "checkout", f"--cid:{info['cid']}", PKG_BOOTSTRAP=a.p2p)
        assert r.returncode == 0, r.stderr
        assert (c.cache / "packages" / info["cid"] / "data.bin").read_bytes() == data
    finally:
        if proc.poll() is None:
            proc.stdin.close()  # type: ignore[union-attr]
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        a.stop()
