"""Helpers for the multi-machine tests: machines as OS processes with their own dirs, a serve
process, a forged registry."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

from helpers_chengc import install_fake, write_tree
from helpers_net import PYTHON, env_for_subprocess, neutral_cwd

from cheng_build.trust import canonical
from cheng_build.trust.keys import KeyPair

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


class Serve:
    """``cheng-pkg serve --registry`` of a machine, in its own process."""

    def __init__(self, m: Machine, *, http: bool = True, extra: tuple[str, ...] = ()) -> None:
        m.cache.mkdir(parents=True, exist_ok=True)
        cmd = [PYTHON, "-m", "cheng_build.cli.pkg", "serve", f"--root:{m.cache}",
               f"--registry:{m.registry}", "--listen:/ip4/127.0.0.1/tcp/0", *extra]
        if http:
            cmd.append("--http:127.0.0.1:0")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=m.env(), cwd=neutral_cwd(), text=True)
        self.p2p = self.http = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (self.p2p and (self.http or not http)):
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise RuntimeError(f"serve exited early: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            line = line.strip()
            if line.endswith("/http"):
                self.http = line
            elif "/p2p/" in line:
                self.p2p = line

    def announced(self, timeout: float = 60) -> int:
        """Wait for serve's ``announced: <n>`` line (its provider records are out)."""
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not sel.select(deadline - time.monotonic()):
                break
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            if line.startswith("announced: "):
                return int(line.split()[1])
        raise RuntimeError("serve did not announce its roots")

    @property
    def peer_id(self) -> str:
        return self.p2p.rsplit("/p2p/", 1)[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for fh in (self.proc.stdout, self.proc.stderr):
            if fh is not None:
                fh.close()


def publish_world(p: Machine, author: KeyPair, op: KeyPair, n: int = 3) -> dict[str, str]:
    """Publish ``n`` packages into ``p`` (dep1 depends on dep2: a transitive dependency whose
    manifest a consumer must read), then the operator's checkpoint. Returns id -> CID."""
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
    write_tree(d, {
        "cheng-package.toml": 'package_id = "pkg://cheng/app"\n' + "".join(
            f'[[dependencies]]\npackage_id = "pkg://cheng/dep{i}"\nchannel = "stable"\n' for i in deps),
        "app.cheng": "".join(f"import cheng/dep{i}/api\n" for i in deps) + "fn main(): int32 = 0\n",
    })


def consumer(root: Path, op: KeyPair, source: str) -> Machine:
    """A consumer knowing only the operator's key and one address; an empty registry file."""
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
