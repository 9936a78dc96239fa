"""Where a storage root lives and how it runs: flags over ``IO_*`` environment over defaults.

The original read ``IO_MODE``, ``IO_ROOT``, ``IO_LEDGER``, ``IO_LISTEN``, ``IO_PEERS`` and
``IO_REQUIRE_LEASE`` (reference §1.2); we read the same names so its scripts keep working. This
module imports only the standard library: the application API (:mod:`cheng_build.storage.api`) and
every ``cheng-storage`` subcommand build their config here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cheng_build.core.errors import UsageError

DEFAULT_ROOT = "build/cheng_storage"
LEDGER_NAME = "ledger.jsonl"
_TRUE = frozenset({"1", "true", "on", "yes"})


class Mode(StrEnum):
    """Local: this root only. P2P: also talk to peers; writes then need a lease."""

    LOCAL = "local"
    P2P = "p2p"


def parse_mode(text: str) -> Mode:
    """``local``/``p2p`` (any case).

    Raises:
        UsageError: anything else.
    """
    try:
        return Mode(text.strip().lower())
    except ValueError:
        raise UsageError(f"unknown mode {text!r}", how="use --mode:local or --mode:p2p") from None


def truthy(text: str | None) -> bool:
    """The original's truth test for ``IO_REQUIRE_LEASE``: 1, true, on, yes (any case)."""
    return (text or "").strip().lower() in _TRUE


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """A resolved configuration; paths are absolute."""

    root: Path
    mode: Mode = Mode.LOCAL
    ledger: Path | None = None
    listen: str = ""
    peers: tuple[str, ...] = ()
    require_lease_env: bool = False

    @property
    def ledger_path(self) -> Path:
        """``--ledger`` if given, else ``<root>/ledger.jsonl`` (the original's default)."""
        return self.ledger if self.ledger is not None else self.root / LEDGER_NAME

    @property
    def blocks_dir(self) -> Path:
        """The CAS block directory of this root (``<root>/blocks``, as the original's layout)."""
        return self.root / "blocks"

    @property
    def enforce_lease(self) -> bool:
        """The backend's rule (§1.2): ``IO_REQUIRE_LEASE`` set *and* p2p mode refuses unleased writes."""
        return self.require_lease_env and self.mode is Mode.P2P


def _split_peers(text: str) -> tuple[str, ...]:
    return tuple(p for p in (x.strip() for x in text.replace(",", " ").split()) if p)


def resolve(
    *,
    root: str | None = None,
    mode: str | None = None,
    ledger: str | None = None,
    listen: str | None = None,
    peers: list[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> StorageConfig:
    """Build a config: an explicit value wins, then the ``IO_*`` variable, then the default.

    Raises:
        UsageError: an unknown mode (flag or ``IO_MODE``).
    """
    e = os.environ if env is None else env
    root_text = root or e.get("IO_ROOT") or DEFAULT_ROOT
    root_path = Path(os.path.abspath(os.path.expanduser(root_text)))
    mode_val = parse_mode(mode or e.get("IO_MODE") or "local")
    ledger_text = ledger or e.get("IO_LEDGER") or ""
    ledger_path = Path(os.path.abspath(os.path.expanduser(ledger_text))) if ledger_text else None
    peer_list = tuple(peers) if peers else _split_peers(e.get("IO_PEERS", ""))
    return StorageConfig(
        root=root_path,
        mode=mode_val,
        ledger=ledger_path,
        listen=listen or e.get("IO_LISTEN", ""),
        peers=peer_list,
        require_lease_env=truthy(e.get("IO_REQUIRE_LEASE")),
    )
