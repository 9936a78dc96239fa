"""Fixtures shared by the net tests: a dict block store and two-host bitswap harnesses."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from multiformats import CID, multihash

from cheng_build.core.errors import DigestMismatchError, NotFoundError


def raw_cid(data: bytes) -> CID:
    return CID("base32", 1, "raw", multihash.wrap(hashlib.sha256(data).digest(), "sha2-256"))


class DictStore:
    """A block store in memory with the Blockstore method names (verifies on put, like it)."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}
        self.puts = 0

    def has(self, cid: CID) -> bool:
        return bytes(cid) in self.blocks

    def get(self, cid: CID) -> bytes:
        try:
            return self.blocks[bytes(cid)]
        except KeyError:
            raise NotFoundError(f"block {cid} not in store") from None

    @contextlib.contextmanager
    def batch(self) -> Iterator[DictStore]:
        yield self

    def pin(self, cid: CID) -> None:
        pass

    def put(self, cid: CID, data: bytes) -> None:
        if hashlib.sha256(data).digest() != cid.raw_digest:
            raise DigestMismatchError(f"block {cid} does not match its CID")
        self.blocks[bytes(cid)] = bytes(data)
        self.puts += 1


class CorruptStore(DictStore):
    """Serves every block with its first byte flipped: a peer sending forged data."""

    def get(self, cid: CID) -> bytes:
        data = bytearray(super().get(cid))
        data[0] ^= 0xFF
        return bytes(data)

    def put(self, cid: CID, data: bytes) -> None:  # fill without verifying
        self.blocks[bytes(cid)] = bytes(data)


def random_blocks(n: int, size: int, seed: int = 0) -> list[tuple[CID, bytes]]:
    rng = hashlib.sha256(str(seed).encode()).digest()
    out = []
    for i in range(n):
        data = rng + i.to_bytes(8, "big") + os.urandom(size - 40)
        out.append((raw_cid(data), data))
    return out


def fill(store: Any, blocks: list[tuple[CID, bytes]]) -> None:
    for cid, data in blocks:
        store.put(cid, data)


def unixfs_bytes(store: Any, data: bytes) -> bytes:
    """Import ``data`` as a UnixFS file (256 KiB chunks, raw leaves); return the binary root CID."""
    from cheng_build.cas.importer import add_bytes

    return bytes(add_bytes(store, data, chunker="size-262144"))


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` deterministic pseudo-random bytes."""
    out = bytearray()
    block = hashlib.sha256(f"seed{seed}".encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


PKG = "pkg://cheng/demo"


def make_package(tmp: Path, size: int = 1_500_000) -> tuple[Path, str]:
    """A provider cache holding one package snapshot; returns (cache, root CID)."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import cid_str
    from cheng_build.cas.importer import add_path

    src = tmp / "src"
    (src / "src").mkdir(parents=True)
    (src / "cheng-package.toml").write_text(f'package_id = "{PKG}"\n')
    (src / "src" / "demo.cheng").write_text("fn main() {}\n")
    (src / "data.bin").write_bytes(pattern(size, seed=7))
    cache = tmp / "provider"
    cache.mkdir()
    root = add_path(Blockstore(cache), src, snapshot=True)
    return cache, cid_str(root)


def write_lock(tmp: Path, cid: str, extra: str = "") -> Path:
    lock = tmp / "cheng.lock.toml"
    lock.write_text(
        'package_id = "pkg://cheng/app"\n\n[[dependencies]]\n'
        f'package_id = "{PKG}"\nchannel = "edge"\nepoch = 1\ncid = "{cid}"\nformat = "dag"\n'
        f'author_id = "node:test"\nsignature = "local:test"\n{extra}')
    return lock



# --- providers in their own process (so a test can kill one for real) -------------------------

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent


def _package_home() -> Path:
    """The folder holding the ``cheng_build`` these tests import (the installed one in CI)."""
    import cheng_build

    return Path(cheng_build.__file__).resolve().parent.parent


def env_for_subprocess(**extra: str) -> dict[str, str]:
    """The environment for a child ``python``: the same ``cheng_build`` as this process (run it
    from a folder without a ``cheng_build`` of its own, e.g. ``neutral_cwd()``), no PKG_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKG_")}
    env["PYTHONPATH"] = str(_package_home()) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def neutral_cwd() -> Path:
    """A working directory that holds no ``cheng_build`` to shadow the imported one."""
    import tempfile

    return Path(tempfile.gettempdir())


class Provider:
    """A ``cheng-pkg serve`` (or a faulty variant of it) in a child process, on 127.0.0.1."""

    def __init__(self, root: Path, *, fault: str = "", after: int = 0, http: bool = False) -> None:
        if fault:
            cmd = [PYTHON, str(Path(__file__).resolve()), str(root), fault, str(after)]
        else:
            cmd = [PYTHON, "-m", "cheng_build.cli.pkg", "serve", f"--root:{root}",
                   "--listen:/ip4/127.0.0.1/tcp/0"] + (["--http:127.0.0.1:0"] if http else [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env_for_subprocess(), cwd=neutral_cwd(), text=True)
        self.p2p = ""
        self.http = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (self.p2p and (self.http or not http)):
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise RuntimeError(f"provider exited early: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            line = line.strip()
            if line.endswith("/http"):
                self.http = line
            elif "/p2p/" in line:
                self.p2p = line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for fh in (self.proc.stdout, self.proc.stderr):
            if fh is not None:
                fh.close()


def _faulty_main(root: str, fault: str, after: str) -> None:
    """Serve ``root`` with a fault: ``kill`` SIGKILLs itself on read number ``after``;
    ``corrupt`` serves every block with a flipped byte."""
    from cheng_build.pkg.serve import open_store, serve

    real = open_store(Path(root))
    count = 0

    class Faulty:
        def has(self, cid: Any) -> bool:
            return real.has(cid)

        def get(self, cid: Any) -> bytes:
            nonlocal count
            count += 1
            if fault == "kill" and count >= int(after):
                os.kill(os.getpid(), signal.SIGKILL)
            data = real.get(cid)
            if fault == "corrupt":
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            return data

    def ready(where: Any) -> None:
        print("\n".join(where.p2p), flush=True)

    serve(Path(root), "/ip4/127.0.0.1/tcp/0", on_ready=ready, store=Faulty())


if __name__ == "__main__":
    _faulty_main(*sys.argv[1:4])


# --- Helia, a real IPFS node (npm), for the interop test and the benchmark ---------------------

INTEROP = Path(__file__).resolve().parent / "interop"
NPM_TIMEOUT_S = 900


def helia_dir() -> Path:
    """A folder with Helia installed and ``helia_node.mjs`` beside it, installed once per
    ``package.json`` content (a stable folder under the temp dir keeps reruns fast).

    Raises:
        FileNotFoundError: node or npm is not installed.
        RuntimeError: ``npm install`` failed (its output is in the message).
    """
    import shutil
    import tempfile

    from cheng_build.core.atomic import file_lock

    if shutil.which("npm") is None or shutil.which("node") is None:
        raise FileNotFoundError("node/npm not installed")
    spec = (INTEROP / "package.json").read_bytes()
    key = hashlib.sha256(spec).hexdigest()[:16]
    d = Path(tempfile.gettempdir()) / f"cheng-helia-{key}"
    marker = d / "node_modules" / ".cheng-installed"
    with file_lock(d):
        if not marker.exists():
            d.mkdir(parents=True, exist_ok=True)
            (d / "package.json").write_bytes(spec)
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                               cwd=d, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
            if r.returncode != 0:
                raise RuntimeError(f"npm install of Helia failed in {d}:\n{r.stdout}\n{r.stderr}")
            marker.write_text("ok\n")
        for script in ("helia_node.mjs", "helia_dht.mjs"):
            shutil.copyfile(INTEROP / script, d / script)
    return d


def node_env(**extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    env.update(extra)
    return env


class HeliaProvider:
    """Helia serving one file it added itself; ``cid`` and ``addrs`` as it printed them."""

    def __init__(self, folder: Path, path: Path, lifetime_s: int = 120) -> None:
        import json

        self.proc = subprocess.Popen(
            ["node", str(folder / "helia_node.mjs"), "serve", str(path)], cwd=folder,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=node_env(HELIA_LIFETIME_MS=str(lifetime_s * 1000)))
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            err = self.proc.stderr.read()  # type: ignore[union-attr]
            raise RuntimeError(f"Helia did not start: {err[-2000:]}")
        info = json.loads(line)
        self.cid: str = info["cid"]
        self.addrs: list[str] = info["addrs"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        for fh in (self.proc.stdout, self.proc.stderr):
            if fh is not None:
                fh.close()


def helia_fetch(folder: Path, addr: str, cid: str, out: Path, lifetime_s: int = 120) -> dict[str, Any]:
    """Have Helia dial ``addr`` and export ``cid`` to ``out``; its JSON report.

    Raises:
        RuntimeError: Helia failed (its stderr in the message).
    """
    import json

    r = subprocess.run(["node", str(folder / "helia_node.mjs"), "fetch", addr, cid, str(out)],
                       cwd=folder, capture_output=True, text=True, timeout=lifetime_s + 30,
                       env=node_env(HELIA_LIFETIME_MS=str(lifetime_s * 1000)))
    if r.returncode != 0:
        raise RuntimeError(f"Helia fetch failed ({r.returncode}): {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
