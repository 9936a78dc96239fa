"""Shared helpers for the registry tests: keys, a real store, publishing small snapshots."""

from __future__ import annotations

from pathlib import Path

from cheng_build.cas.blockstore import Blockstore
from cheng_build.pkg.publish import publish
from cheng_build.trust.keys import KeyPair
from cheng_build.trust.registry_log import RegistryEntry


class World:
    """A temp registry, store and trust dir, with helpers to publish into them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = root / "build" / "cheng_registry" / "registry.jsonl"
        self.store = Blockstore(root / "chengcache")
        self.trust = root / "trust"
        self.keys: dict[str, KeyPair] = {}

    def key(self, author: str) -> KeyPair:
        if author not in self.keys:
            self.keys[author] = KeyPair.generate(author)
        return self.keys[author]

    def src(self, name: str, body: str) -> Path:
        """A one-file package source ``<name>.cheng`` with ``body``."""
        d = self.root / "src" / name
        d.mkdir(parents=True, exist_ok=True)
        f = d / f"{name}.cheng"
        f.write_text(body, encoding="utf-8")
        return f

    def publish(self, package: str, author: str, epoch: int, *, channel: str = "edge",
                body: str | None = None, fmt: str = "dag", version: str | None = None,
                key: KeyPair | None = None, src: Path | None = None) -> RegistryEntry:
        name = package.rsplit("/", 1)[-1]
        path = src or self.src(f"{name}-{epoch}-{channel}",
                               body if body is not None else sample_source(name, epoch))
        return publish(registry=self.registry, key=key or self.key(author), package_id=package,
                       channel=channel, epoch=epoch, src=path, format=fmt, version=version,
                       store=self.store, now=1_730_000_000 + epoch)

    def lines(self) -> list[bytes]:
        return self.registry.read_bytes().split(b"\n")[:-1]

    def write_lines(self, lines: list[bytes]) -> None:
        self.registry.parent.mkdir(parents=True, exist_ok=True)
        self.registry.write_bytes(b"".join(x + b"\n" for x in lines))


def sample_source(name: str, salt: int = 0) -> str:
    """A small Cheng module whose structure depends on ``name`` (so packages differ)."""
    h = sum(ord(c) * (i + 1) for i, c in enumerate(name))
    parts = [f"import cheng/{name}/util as u\n"]
    for i in range(3 + h % 5):
        parts.append(f"fn F{i}x{h % 7}(a: int32, b: str): int32 =\n")
        for j in range((h >> i) % 4 + 1):
            kind = (h + i * 3 + j) % 4
            if kind == 0:
                parts.append(f"    let v{j} = a * {j + 1} + {salt}\n")
            elif kind == 1:
                parts.append(f"    if a > {j}:\n        return a - {j}\n")
            elif kind == 2:
                parts.append(f"    for k in 0 ..< {j + 2}:\n        echo(b, k)\n")
            else:
                parts.append(f"    while a < {j}:\n        a = a + 1\n")
        parts.append("    return a\n\n")
    return "".join(parts)
