"""``cheng.meta.toml``: build metadata, written beside an artifact.

Fields (the seed's A1.8/A1.10, in this order): the package's own snapshot as the registry
records it on the chosen channel — ``package_id, channel, epoch, cid, format, author_id,
pub_key, signature`` — then ``created_ts`` (the lock's, so the same lock gives the same meta),
then ``[[dependencies]]``: the lock's dependencies exactly as locked.

YAML and JSON carry the same keys (``--format:yaml|json``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cheng_build.core.atomic import atomic_write_text
from cheng_build.core.errors import NotFoundError, PolicyError
from cheng_build.pkg.formats import dump_text, format_for_path
from cheng_build.pkg.lock import Lock, LockedDep


class _Registry(Protocol):
    def head(self, package_id: str, channel: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Meta:
    """A package's build metadata: its own snapshot plus its locked dependencies."""

    package_id: str
    channel: str
    epoch: int
    cid: str
    format: str
    author_id: str
    pub_key: str | None
    signature: str
    created_ts: str | None
    dependencies: tuple[LockedDep, ...]

    def to_dict(self) -> dict[str, Any]:
        """The document as written, keys in A1.10 order."""
        out: dict[str, Any] = {
            "package_id": self.package_id,
            "channel": self.channel,
            "epoch": self.epoch,
            "cid": self.cid,
            "format": self.format,
            "author_id": self.author_id,
        }
        if self.pub_key is not None:
            out["pub_key"] = self.pub_key
        out["signature"] = self.signature
        if self.created_ts is not None:
            out["created_ts"] = self.created_ts
        out["dependencies"] = [d.to_dict() for d in self.dependencies]
        return out


def build_meta(lock: Lock, registry: _Registry, package_id: str, channel: str) -> Meta:
    """Build the meta of ``package_id`` on ``channel`` from its lock and the registry.

    Raises:
        PolicyError: ``package mismatch`` — the lock belongs to another package.
        NotFoundError: ``snapshot not found`` — the registry has no head for that channel.
    """
    if lock.package_id != package_id:
        raise PolicyError("package mismatch",
                          why=f"the lock is for {lock.package_id}, not {package_id}",
                          how="pass the lock of that package, or --package:" + lock.package_id)
    entry = registry.head(package_id, channel)
    if entry is None:
        raise NotFoundError("snapshot not found",
                            why=f"the registry has no {channel} snapshot of {package_id}",
                            how="publish the package on that channel first")
    created = lock.created_ts
    if created is None:
        raw = getattr(entry, "created_ts", None)
        created = None if raw is None else str(raw)
    return Meta(package_id, channel, int(entry.epoch), str(entry.cid),
                str(getattr(entry, "format", None) or "tar"), str(entry.author_id),
                getattr(entry, "pub_key", None), str(entry.signature), created,
                lock.dependencies)


def meta_text(meta: Meta, fmt: str = "toml") -> str:
    """Serialise a meta document (toml, yaml or json)."""
    return dump_text(meta.to_dict(), fmt)


def write_meta(meta: Meta, path: str | os.PathLike[str], fmt: str | None = None) -> None:
    """Write a meta document atomically; the format comes from the suffix unless given."""
    p = Path(path)
    atomic_write_text(p, meta_text(meta, fmt or format_for_path(p)))


__all__ = ["Meta", "build_meta", "meta_text", "write_meta"]
