"""Signed checkpoints of the registry's head, and the client's memory of the last one it saw.

A checkpoint line (see :mod:`cheng_build.trust.registry_log` for the line format) commits the
operator to the first ``size`` lines of the log: ``root`` is their RFC 6962 Merkle root. A client
that verified a log remembers its newest checkpoint; a log it is later shown must contain those
same ``size`` lines (same root), else someone rewrote or rolled back history: ``registry forked``.

Memory file (``<trust dir>/checkpoints.json``, written atomically under a file lock)::

    {"version": 1,
     "registries": {"<absolute path of registry.jsonl>":
        {"size": 41, "root": "<64 hex>", "line": 42, "timestamp": 1730000000,
         "expires": 1730604800, "pub_key": "ed25519:...", "operator_id": "op:main",
         "verified_with_signatures": true}}}

The trust dir is ``PKG_TRUST_DIR``, else ``~/.cheng/trust``. It lives with the user, not next to
the registry, on purpose: whoever can replace the registry file could replace a memory kept
beside it. Registries are keyed by absolute path (what the client fetches from), not by their
first line, because a complete rewrite would otherwise look like a new, unknown registry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cheng_build.core.errors import InputError
from cheng_build.core.record import asdict, dataclass

MEMORY_VERSION = 1
DEFAULT_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified checkpoint: the log's first ``size`` lines have Merkle root ``root``."""

    line: int  # the checkpoint's own line number (1-based); 0 for one only remembered
    size: int
    root: str  # 64 lowercase hex digits
    timestamp: int
    expires: int
    operator_id: str
    pub_key: str
    # Remembered only: the client verified lines 1..size with signatures required (L1/L2), so a
    # later verify that recomputes the same root need not check those signatures again.
    verified_with_signatures: bool = False

    def signed_fields(self) -> dict[str, object]:
        """The fields the operator's signature covers (plus the line's seq/prev, added by the log)."""
        return {"size": self.size, "root": self.root, "timestamp": self.timestamp,
                "expires": self.expires, "operator_id": self.operator_id}


def default_trust_dir() -> Path:
    """``PKG_TRUST_DIR`` or ``~/.cheng/trust``."""
    env = os.environ.get("PKG_TRUST_DIR")
    return Path(env) if env else Path.home() / ".cheng" / "trust"


class CheckpointMemory:
    """The newest checkpoint this client has verified, per registry."""

    def __init__(self, trust_dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(trust_dir) if trust_dir is not None else default_trust_dir()
        self.file = self.dir / "checkpoints.json"

    @staticmethod
    def key_for(registry_path: str | os.PathLike[str]) -> str:
        """The memory's key for a registry: its absolute, symlink-free path."""
        return str(Path(registry_path).resolve())

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            obj = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read the remembered checkpoints {self.file}",
                             why=str(exc),
                             how="restore it from a backup; deleting it forgets every registry's "
                                 "history (the next verify trusts what it sees)") from None
        regs = obj.get("registries") if isinstance(obj, dict) else None
        if obj.get("version") != MEMORY_VERSION or not isinstance(regs, dict):
            raise InputError(f"{self.file} is not a checkpoint memory of version {MEMORY_VERSION}")
        return regs

    def recall(self, registry_path: str | os.PathLike[str]) -> Checkpoint | None:
        """The remembered checkpoint of a registry, or None when it was never seen.

        Raises:
            InputError: the memory file is corrupt.
        """
        rec = self._read().get(self.key_for(registry_path))
        if rec is None:
            return None
        try:
            return Checkpoint(**rec)  # type: ignore[arg-type]
        except TypeError:
            raise InputError(f"{self.file}: a remembered checkpoint is malformed") from None

    def remember(self, registry_path: str | os.PathLike[str], cp: Checkpoint) -> bool:
        """Remember ``cp`` if it is newer (larger) than what is remembered; True if stored."""
        # Imported here: recalling (chengc's no-op path) must not pay for tempfile & co.
        from cheng_build.core.atomic import atomic_write_text, file_lock

        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.file):
            regs = self._read()
            key = self.key_for(registry_path)
            old = regs.get(key)
            if old is not None:
                old_size = int(old.get("size", -1))  # type: ignore[call-overload]
                upgrade = (old_size == cp.size and cp.verified_with_signatures
                           and not old.get("verified_with_signatures"))
                if old_size > cp.size or (old_size == cp.size and not upgrade):
                    return False
            regs[key] = asdict(cp)
            atomic_write_text(self.file, json.dumps({"version": MEMORY_VERSION, "registries": regs},
                                                    indent=1, sort_keys=True) + "\n", mode=0o600)
        return True
