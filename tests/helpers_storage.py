"""Shared pieces of the storage tests: a registry with keys, tokens, a serve node in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers_net import ServeProcess, env_for_subprocess, neutral_cwd

from cheng_build.trust.keys import KeyPair, write_keyfile
from cheng_build.trust.registry_ops import register_namespace

PYTHON = sys.executable
IO_VARS = ("IO_MODE", "IO_ROOT", "IO_LEDGER", "IO_LISTEN", "IO_PEERS", "IO_REQUIRE_LEASE")


class Keys:
    """Keys for alice (author of pkg://cheng/demo), store-1 (a provider) and mallory, registered."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = root / "registry.jsonl"
        self.alice = KeyPair.generate("node:alice")
        self.store1 = KeyPair.generate("node:store-1")
        self.mallory = KeyPair.generate("node:mallory")
        register_namespace(self.registry, self.alice, "pkg://cheng/demo")
        register_namespace(self.registry, self.store1, "node:store-1")
        register_namespace(self.registry, self.mallory, "pkg://mallory/x")
        self.files: dict[str, Path] = {}
        for name, key in (("alice", self.alice), ("store1", self.store1), ("mallory", self.mallory)):
            path = root / f"{name}.key"
            write_keyfile(key, path)
            self.files[name] = path


def storage_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in env_for_subprocess().items() if k not in IO_VARS}
    env.update(extra)
    return env


def run_storage(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
                stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """``cheng-storage <args>`` in a child process (for kill -9 and the p2p tests)."""
    return subprocess.run([PYTHON, "-m", "cheng_build.cli.storage", *args], env=env or storage_env(),
                          cwd=neutral_cwd(), capture_output=True, timeout=timeout, input=stdin)


class StorageNode(ServeProcess):
    """``cheng-storage serve`` of a root in a child process, on 127.0.0.1."""

    def __init__(self, root: Path, *, extra: tuple[str, ...] = ()) -> None:
        super().__init__([PYTHON, "-m", "cheng_build.cli.storage", "serve", f"--root:{root}",
                          "--listen:/ip4/127.0.0.1/tcp/0", *extra], env=storage_env())

    @property
    def addr(self) -> str:
        """Its libp2p address."""
        return self.p2p


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes): to assert that nothing was written."""
    out = {}
    if root.exists():
        for dirpath, _, files in os.walk(root):
            for f in files:
                p = Path(dirpath) / f
                if p.name.endswith(".lock"):
                    continue
                if p.name.startswith("index.sqlite"):  # the blockstore's index: by content below
                    continue
                out[str(p.relative_to(root))] = p.read_bytes()
        if (root / "index.sqlite").exists():
            from helpers_packstore import index_content

            content = index_content(root / "index.sqlite")
            if content:
                out["index.sqlite"] = content
    return out


class SilentNode(StorageNode):
    """A provider that accepts proof challenges and never answers (for the timeout path)."""

    def __init__(self, root: Path) -> None:
        ServeProcess.__init__(self, [PYTHON, str(Path(__file__).resolve()), str(root)],
                              env=storage_env(), what="silent node")


def _silent_main(root: str) -> None:
    import trio

    from cheng_build.pkg.serve import serve
    from cheng_build.storage.proof_net import PROTOCOL

    async def never(stream: object) -> None:
        await trio.sleep(3600)

    def ready(where: object) -> None:
        print("\n".join(where.p2p), flush=True)  # type: ignore[attr-defined]

    serve(Path(root), "/ip4/127.0.0.1/tcp/0", on_ready=ready, protocols={PROTOCOL: never})


if __name__ == "__main__":
    _silent_main(sys.argv[1])
