"""``cheng-pkg fetch`` / ``serve`` end to end on 127.0.0.1: sources, policy and faults."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from helpers_net import (
    PKG,
    PYTHON,
    Provider,
    env_for_subprocess,
    make_package,
    write_lock,
)

pytestmark = pytest.mark.network


def _fetch(lock: Path, cache: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "cheng_build.cli.pkg", "fetch", f"--lock:{lock}", f"--pkg-cache:{cache}",
         *flags], capture_output=True, text=True, timeout=120, cwd=lock.parent,
        env=env_for_subprocess(**{"PKG_AUDIT_LOG": str(lock.parent / "audit.jsonl"), **env}))


def _same_tree(a: Path, b: Path) -> bool:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return files(a) == files(b)


@pytest.fixture()
def package(tmp_path: Path):
    cache, cid = make_package(tmp_path)
    return cache, cid, write_lock(tmp_path, cid)


def test_fetch_over_p2p_prints_roots_last_and_materialises(package, tmp_path: Path) -> None:
    cache, cid, lock = package
    prov = Provider(cache)
    try:
        r = _fetch(lock, tmp_path / "dst", "--print-roots", f"--peers:{prov.p2p}")
    finally:
        prov.stop()
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last == str(tmp_path / "dst" / "packages" / cid)
    assert _same_tree(Path(last), tmp_path / "src")
    assert f"{PKG} p2p " in r.stdout
    # Second run: straight from the cache, no peer needed.
    r = _fetch(lock, tmp_path / "dst", "--print-roots", "--mode:local")
    assert r.returncode == 0 and f"{PKG} cache " in r.stdout
    assert r.stdout.strip().splitlines()[-1] == last


def test_killed_provider_leaves_no_package_and_the_next_fetch_resumes(package, tmp_path: Path) -> None:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import CID
    from cheng_build.pkg.fetch import fetch_lock
    from cheng_build.pkg.lock import load_lock

    cache, cid, lock = package
    dst = tmp_path / "dst"
    dying = Provider(cache, fault="kill", after=4)
    try:
        r = _fetch(lock, dst, f"--peers:{dying.p2p}")
    finally:
        dying.stop()
    assert r.returncode == 1
    assert r.stderr.startswith(f"fetch: {PKG}: snapshot {cid} could not be fetched")
    assert not (dst / "packages" / cid).exists()
    stored = list(Blockstore(dst).iter_cids())
    assert stored, "blocks received before the kill are kept"

    prov = Provider(cache)
    try:
        res = fetch_lock(load_lock(lock), cache_root=dst, peers=[prov.p2p], mode="p2p")
    finally:
        prov.stop()
    total = len(list(Blockstore(cache).iter_cids()))
    assert res.blocks_fetched == total - len(stored)
    assert _same_tree(res.roots[PKG], tmp_path / "src")
    assert all(Blockstore(dst).has(CID.decode(str(c))) for c in Blockstore(cache).iter_cids())


def test_forging_peer_is_named_and_the_good_peer_supplies_the_blocks(package, tmp_path: Path) -> None:
    cache, cid, lock = package
    # Its own copy of the cache, so it has its own peer identity (peer.key).
    shutil.copytree(cache, tmp_path / "forger", ignore=shutil.ignore_patterns("peer.key"))
    bad = Provider(tmp_path / "forger", fault="corrupt")
    good = Provider(cache)
    try:
        r = _fetch(lock, tmp_path / "dst", f"--peers:{bad.p2p},{good.p2p}")
    finally:
        bad.stop()
        good.stop()
    assert r.returncode == 0, r.stderr
    assert f"fetch: warning: {bad.p2p}:" in r.stderr and "hash" in r.stderr
    assert _same_tree(tmp_path / "dst" / "packages" / cid, tmp_path / "src")


class _Listener:
    """A TCP port that records whether anyone connected (a peer that must never be dialled)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()
            except OSError:
                continue

    def addr(self) -> str:
        from cheng_build.pkg.fetch.libp2p_adapter import make_host

        port = self.sock.getsockname()[1]
        return f"/ip4/127.0.0.1/tcp/{port}/p2p/{make_host().get_id()}"

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.sock.close()


@pytest.mark.parametrize("env", [
    {"PKG_DENY": "{addr}"},
    {"PKG_DENY": "{bare}"},
    {"PKG_LEVEL": "L2"},
    {"PKG_LEVEL": "L2", "PKG_ALLOW": "/ip4/127.0.0.9/tcp/1"},
])
def test_denied_or_not_allow_listed_peers_are_never_dialled(package, tmp_path: Path, env) -> None:
    _, _, lock = package
    lis = _Listener()
    try:
        addr = lis.addr()
        bare = addr.split("/p2p/")[0]
        r = _fetch(lock, tmp_path / "dst", f"--peers:{addr}",
                   **{k: v.format(addr=addr, bare=bare) for k, v in env.items()})
    finally:
        lis.close()
    assert r.returncode == 1
    assert lis.accepted == 0
    assert "not allowed by the allow/deny lists" in r.stderr


def test_l2_fetches_from_an_allow_listed_peer(package, tmp_path: Path) -> None:
    cache, cid, lock = package
    prov = Provider(cache)
    try:
        r = _fetch(lock, tmp_path / "dst", "--print-roots", f"--peers:{prov.p2p}",
                   PKG_LEVEL="L2", PKG_ALLOW=prov.p2p.split("/p2p/")[0],
                   PKG_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    finally:
        prov.stop()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1].endswith(cid)
    # L2 records the fetch in the audit log (seed A1.18).
    import json

    rec = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert rec["event"] == "fetch" and rec["ok"] and rec["package_id"] == PKG and rec["source"] == "p2p"


def test_http_fallback_only_where_the_level_allows(package, tmp_path: Path) -> None:
    cache, cid, lock = package
    prov = Provider(cache, http=True)
    try:
        r1 = _fetch(lock, tmp_path / "d1", f"--peers:{prov.http}")  # L1: no HTTP fallback
        r0 = _fetch(lock, tmp_path / "d0", f"--peers:{prov.http}", "--print-roots", PKG_LEVEL="L0")
    finally:
        prov.stop()
    assert r1.returncode == 1 and "HTTP fallback not allowed" in r1.stderr
    assert not (tmp_path / "d1" / "packages" / cid).exists()
    assert r0.returncode == 0, r0.stderr
    assert f"{PKG} http " in r0.stdout
    assert _same_tree(tmp_path / "d0" / "packages" / cid, tmp_path / "src")


def test_local_mode_never_touches_the_network(package, tmp_path: Path) -> None:
    _, cid, lock = package
    r = _fetch(lock, tmp_path / "dst", "--mode:local", "--peers:/ip4/127.0.0.1/tcp/9/p2p/x")
    assert r.returncode == 1
    assert r.stderr.startswith(f"fetch: {PKG}: snapshot {cid} is not in the cache")


def test_path_override_is_used_and_refused_at_l2(tmp_path: Path) -> None:
    (tmp_path / "here").mkdir()
    lock = tmp_path / "cheng.lock.toml"
    lock.write_text('package_id = "pkg://cheng/app"\n\n[[dependencies]]\n'
                    f'package_id = "{PKG}"\nchannel = "edge"\npath = "here"\ndev_only = true\n')
    r = _fetch(lock, tmp_path / "dst", "--print-roots")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str((tmp_path / "here").resolve())
    r = _fetch(lock, tmp_path / "dst", PKG_LEVEL="L2")
    assert r.returncode == 1 and "refused at level L2" in r.stderr


def test_missing_lock_is_a_usage_error(tmp_path: Path) -> None:
    r = _fetch(tmp_path / "nope.toml", tmp_path / "dst")
    assert r.returncode == 2 and r.stderr.startswith("fetch: lock file")


def test_serve_prints_full_addresses_and_refuses_a_bad_root(tmp_path: Path) -> None:
    r = subprocess.run([PYTHON, "-m", "cheng_build.cli.pkg", "serve", f"--root:{tmp_path}/none"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env_for_subprocess())
    assert r.returncode == 2 and r.stderr.startswith("serve: cache root")
    (tmp_path / "c").mkdir()
    prov = Provider(tmp_path / "c", http=True)
    try:
        assert prov.p2p.startswith("/ip4/127.0.0.1/tcp/") and "/p2p/12D3KooW" in prov.p2p
        assert prov.http.startswith("/ip4/127.0.0.1/tcp/")
    finally:
        prov.stop()



def test_an_unreachable_peer_is_one_clear_error_without_library_noise(package, tmp_path: Path) -> None:
    _, cid, lock = package
    lis = _Listener()
    addr = lis.addr()
    lis.close()  # nobody listens there any more
    r = _fetch(lock, tmp_path / "dst", f"--peers:{addr}")
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == f"fetch: {PKG}: snapshot {cid} could not be fetched"
    assert any(f"cannot reach peer {addr}" in line for line in lines)
    assert all(line.startswith(("fetch:", " ")) for line in lines), r.stderr


def test_source_peer_flag_and_explicit_http_mode(package, tmp_path: Path) -> None:
    cache, cid, lock = package
    prov = Provider(cache, http=True)
    try:
        r1 = _fetch(lock, tmp_path / "d1", f"--source-peer:{prov.p2p}", "--mode:p2p")
        # --mode:http is an explicit choice, not a fallback: allowed at L1, gateways only.
        r2 = _fetch(lock, tmp_path / "d2", "--mode:http", f"--peers:{prov.p2p},{prov.http}")
    finally:
        prov.stop()
    assert r1.returncode == 0, r1.stderr
    assert f"{PKG} p2p " in r1.stdout
    assert r2.returncode == 0, r2.stderr
    assert f"{PKG} http " in r2.stdout
    assert (tmp_path / "d2" / "packages" / cid).is_dir()


def test_lock_v2_source_mode_local_keeps_a_dependency_off_the_network(package, tmp_path: Path) -> None:
    _, cid, _ = package
    lock = tmp_path / "v2" / "cheng.lock.toml"
    lock.parent.mkdir()
    lock.write_text(
        'package_id = "pkg://cheng/app"\nlock_version = 2\n\n[[dependencies]]\n'
        f'package_id = "{PKG}"\nchannel = "edge"\nepoch = 1\ncid = "{cid}"\nformat = "dag"\n'
        'author_id = "node:test"\nsignature = "local:test"\nsource_mode = "local"\n')
    r = _fetch(lock, tmp_path / "dst", "--peers:/ip4/127.0.0.1/tcp/9/p2p/x")
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith(f"fetch: {PKG}: snapshot {cid} is not in the cache")


@pytest.mark.parametrize("flag", ["--listen:/ip4/127.0.0.1/tcp/{port}", "--http:127.0.0.1:{port}"])
def test_serve_refuses_a_busy_port(tmp_path: Path, flag: str) -> None:
    # py-libp2p binds with SO_REUSEPORT: without our check a second provider would share the port.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        r = subprocess.run([PYTHON, "-m", "cheng_build.cli.pkg", "serve", f"--root:{tmp_path}",
                            flag.format(port=busy.getsockname()[1])],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path,
                           env=env_for_subprocess())
    finally:
        busy.close()
    assert r.returncode == 2 and r.stderr.startswith("serve: cannot listen on")
