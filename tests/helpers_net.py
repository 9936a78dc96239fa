"""Fixtures shared by the net tests: a dict block store, two-host bitswap harnesses, servers in
child processes, Helia, and machines as OS processes with their own dirs (a forged registry too)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cheng_build.cas.cid import CID, make_cid
from cheng_build.core.errors import DigestMismatchError, NotFoundError
from cheng_build.trust import canonical
from cheng_build.trust.keys import KeyPair


def raw_cid(data: bytes) -> CID:
    return make_cid(data)


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


class ServeProcess:
    """A server of ours in a child process on 127.0.0.1: started from ``cmd``, ready once it
    printed its libp2p address (``p2p``) and, with ``http``, its HTTP one (``http``)."""

    def __init__(self, cmd: list[str], *, env: dict[str, str], http: bool = False,
                 what: str = "serve") -> None:
        import queue
        import threading

        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=neutral_cwd(), text=True)
        # Both pipes are drained by threads: select() on a text pipe misses lines already in
        # Python's buffer (a line read together with the addresses then waits forever), and an
        # undrained stderr fills its pipe and stalls the server.
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self.errors.extend(self.proc.stderr or ()), daemon=True).start()
        self.p2p = ""
        self.http = ""
        deadline = time.monotonic() + 60
        while not (self.p2p and (self.http or not http)):
            line = self.next_line(deadline)
            if line is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise RuntimeError(f"{what} exited early or printed no address: {''.join(self.errors)}")
            line = line.strip()
            if line.endswith("/http"):
                self.http = line
            elif "/p2p/" in line:
                self.p2p = line

    def _pump(self) -> None:
        for line in self.proc.stdout or ():
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self, deadline: float) -> str | None:
        """The server's next stdout line; None at its end or at ``deadline`` (monotonic)."""
        import queue

        try:
            return self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


class Provider(ServeProcess):
    """A ``cheng-pkg serve`` (or a faulty variant of it) in a child process, on 127.0.0.1."""

    def __init__(self, root: Path, *, fault: str = "", after: int = 0, http: bool = False) -> None:
        if fault:
            cmd = [PYTHON, str(Path(__file__).resolve()), str(root), fault, str(after)]
        else:
            cmd = [PYTHON, "-m", "cheng_build.cli.pkg", "serve", f"--root:{root}",
                   "--listen:/ip4/127.0.0.1/tcp/0"] + (["--http:127.0.0.1:0"] if http else [])
        super().__init__(cmd, env=env_for_subprocess(), http=http, what="provider")


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
        for script in ("helia_setup.mjs", "helia_node.mjs", "helia_dht.mjs"):
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

    r = subprocess.run(["node", str(folder / "helia_node.mjs"), "fetch", addr, cid, str(out)],
                       cwd=folder, capture_output=True, text=True, timeout=lifetime_s + 30,
                       env=node_env(HELIA_LIFETIME_MS=str(lifetime_s * 1000)))
    if r.returncode != 0:
        raise RuntimeError(f"Helia fetch failed ({r.returncode}): {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- machines: each an OS process with its own dirs (the multi-machine tests) -----------------

CLI_TIMEOUT_S = 120


class Machine:
    """One machine: its own cache, registry, trust dir and home (so no config leaks in)."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.cache = root / "cache"
        self.registry = root / "registry.jsonl"
        self.trust = root / "trust"
        self.home = root / "home"
        self.home.mkdir(exist_ok=True)
        self.extra = env

    def env(self, **more: str) -> dict[str, str]:
        return env_for_subprocess(HOME=str(self.home), PKG_CACHE=str(self.cache),
                                  PKG_REGISTRY=str(self.registry), PKG_TRUST_DIR=str(self.trust),
                                  **{**self.extra, **more})

    def run(self, *argv: str, cwd: Path | None = None, **more: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -m <module> <args>`` (argv[0] names the tool) as this machine."""
        module = {"chengc": "cheng_build.cli.chengc", "cheng-pkg": "cheng_build.cli.pkg",
                  "cheng-registry": "cheng_build.cli.registry"}[argv[0]]
        return subprocess.run([PYTHON, "-m", module, *argv[1:]], env=self.env(**more),
                              cwd=cwd or neutral_cwd(), capture_output=True, text=True,
                              timeout=CLI_TIMEOUT_S)


class Serve(ServeProcess):
    """``cheng-pkg serve --registry`` of a machine, in its own process."""

    def __init__(self, m: Machine, *, http: bool = True, extra: tuple[str, ...] = ()) -> None:
        m.cache.mkdir(parents=True, exist_ok=True)
        cmd = [PYTHON, "-m", "cheng_build.cli.pkg", "serve", f"--root:{m.cache}",
               f"--registry:{m.registry}", "--listen:/ip4/127.0.0.1/tcp/0", *extra]
        if http:
            cmd.append("--http:127.0.0.1:0")
        super().__init__(cmd, env=m.env(), http=http)

    def announced(self, timeout: float = 60) -> int:
        """Wait for serve's ``announced: <n>`` line (its provider records are out)."""
        deadline = time.monotonic() + timeout
        while (line := self.next_line(deadline)) is not None:
            if line.startswith("announced: "):
                return int(line.split()[1])
        raise RuntimeError(f"serve did not announce its roots: {''.join(self.errors)[-2000:]}")

    @property
    def peer_id(self) -> str:
        return self.p2p.rsplit("/p2p/", 1)[1]


def publish_world(p: Machine, author: KeyPair, op: KeyPair, n: int = 3) -> dict[str, str]:
    """Publish ``n`` packages into ``p`` (dep1 depends on dep2: a transitive dependency whose
    manifest a consumer must read), then the operator's checkpoint. Returns id -> CID."""
    from helpers_chengc import write_tree

    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.publish import publish
    from cheng_build.trust.registry_ops import append_checkpoint

    store = Blockstore(p.cache)
    cids: dict[str, str] = {}
    for i in reversed(range(n)):
        deps = (f'\n[[dependencies]]\npackage_id = "pkg://cheng/dep{i + 1}"\nchannel = "stable"\n'
                if i == 1 and n > 2 else "")
        src = p.root / "src" / f"dep{i}"
        write_tree(src, {
            "cheng-package.toml": f'package_id = "pkg://cheng/dep{i}"\nversion = "1.0.0"\n{deps}',
            "src/api.cheng": f"import cheng/dep{i}/impl\nfn Api{i}(): int32 = {i}\n",
            "src/impl.cheng": (f"import cheng/dep{i + 1}/api\n" if deps else "")
                              + f"fn impl{i}(): int32 = {i}\n",
            # Bulk the manifest's resolve must not read (only the manifest's path is fetched).
            "data/blob.bin": hashlib.sha256(b"%d" % i).hexdigest() * 20000,
        })
        e = publish(registry=p.registry, key=author, package_id=f"pkg://cheng/dep{i}",
                    channel="stable", epoch=1, src=src, store=store)
        cids[f"pkg://cheng/dep{i}"] = str(e.cid)
    append_checkpoint(p.registry, op, ttl_s=3600)
    return cids


def app_tree(d: Path, deps: list[int]) -> None:
    """An app importing ``dep<i>/api`` for each i, with its manifest."""
    from helpers_chengc import write_tree

    write_tree(d, {
        "cheng-package.toml": 'package_id = "pkg://cheng/app"\n' + "".join(
            f'[[dependencies]]\npackage_id = "pkg://cheng/dep{i}"\nchannel = "stable"\n' for i in deps),
        "app.cheng": "".join(f"import cheng/dep{i}/api\n" for i in deps) + "fn main(): int32 = 0\n",
    })


def consumer(root: Path, op: KeyPair, source: str) -> Machine:
    """A consumer knowing only the operator's key and one address; an empty registry file."""
    from helpers_chengc import install_fake

    bin_dir = root / "bin"
    fake = install_fake(bin_dir)
    c = Machine(root, PKG_OPERATOR_KEY=op.pub_key, PKG_REGISTRY_FROM=source,
                CHENG_COMPILER=str(fake))
    c.registry.write_bytes(b"")
    return c


def forge(lines: list[bytes], attacker: KeyPair, evil_cid: str) -> list[bytes]:
    """A fork of ``lines``: line 1 (a publish) rewritten to ``evil_cid`` and re-signed by the
    attacker, every later line re-chained (publish signatures do not cover seq/prev), the
    operator's checkpoints dropped and one made and signed by the attacker at the end."""
    from cheng_build.trust.merkle import leaf_hash, root_of

    out: list[bytes] = []
    prev = "sha256:" + hashlib.sha256(b"").hexdigest()
    for i, raw in enumerate(lines):
        d = json.loads(raw)
        if d.get("type") == "checkpoint":
            continue
        if i == 0:
            d["cid"] = evil_cid
            d["author_id"] = attacker.author_id
            d["pub_key"] = attacker.pub_key
            d["signature"] = attacker.sign(canonical.publish_payload(d))
        d["seq"] = len(out) + 1
        d["prev"] = prev
        line = json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()
        out.append(line)
        prev = "sha256:" + hashlib.sha256(line).hexdigest()
    now = int(time.time())
    body = {"type": "checkpoint", "seq": len(out) + 1, "prev": prev, "size": len(out),
            "root": root_of([leaf_hash(x) for x in out]).hex(), "timestamp": now,
            "expires": now + 3600, "operator_id": "op:evil", "pub_key": attacker.pub_key}
    body["signature"] = attacker.sign(canonical.checkpoint_payload(body))
    out.append(json.dumps(body, separators=(",", ":")).encode())
    return out
