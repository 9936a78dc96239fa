"""Interop with a real IPFS node nobody here wrote: Helia (npm), over TCP + noise + yamux.

Helia is installed by the test into a temp folder (once per package.json, reused by reruns);
every process listens on 127.0.0.1 only and has a bounded lifetime.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers_net import HeliaProvider, Provider, helia_dir, helia_fetch, pattern
from helpers_parts import require_part

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture(scope="session")
def helia() -> Path:
    try:
        return helia_dir()
    except FileNotFoundError:
        require_part("node and npm (the Helia interop test)", "scripts/test.sh: apt-get install nodejs npm")


def test_helia_fetches_a_snapshot_we_serve_with_identical_bytes_and_cid(helia: Path, tmp_path: Path) -> None:
    from helpers_net import make_package

    cache, cid = make_package(tmp_path, size=6_000_000)
    prov = Provider(cache)
    try:
        report = helia_fetch(helia, prov.p2p, cid, tmp_path / "out")
    finally:
        prov.stop()
    assert report["cid"] == cid
    diff = subprocess.run(["diff", "-r", str(tmp_path / "src"), str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout


def test_we_fetch_a_large_file_helia_added(helia: Path, tmp_path: Path) -> None:
    # 20 MiB in Helia's 1 MiB chunks: large enough that yamux windows grow (defect 5).
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import CID
    from cheng_build.cas.exporter import read_file
    from cheng_build.pkg.fetch.p2p.run import fetch_p2p

    data = pattern(20 * 1024 * 1024 + 12345, seed=11)
    (tmp_path / "f.bin").write_bytes(data)
    hel = HeliaProvider(helia, tmp_path / "f.bin")
    try:
        store = Blockstore(tmp_path / "cache")
        stats = fetch_p2p(store, [bytes(CID.decode(hel.cid))], hel.addrs)
    finally:
        hel.stop()
    assert not stats.dropped and stats.blocks_fetched > 20
    assert read_file(store, CID.decode(hel.cid)) == data
