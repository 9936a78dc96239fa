"""The application API (the seed's ``io_backend``/``io_shim``): read and write ``cid://`` paths.

::

    from cheng_build.storage import api

    uri = api.write_text("cid://", "hello")                     # -> "cid://bafkrei..."
    api.read_text(uri)                                          # -> "hello"
    api.write_bytes("cid://", data, lease="lease-token.json")   # a paid write (p2p mode)
    api.read_bytes("notes/plain.txt")                           # an ordinary path is a file

A path starting ``cid://`` or ``cid:`` names content in the storage root; anything else is a file
on disk (written atomically). Where the root is and how it runs come from ``IO_ROOT``,
``IO_MODE``, ``IO_LEDGER``, ``IO_PEERS`` and ``IO_REQUIRE_LEASE`` (as the original), or from a
:class:`~cheng_build.storage.config.StorageConfig` passed as ``config``. Reads are free (p2p mode
reads from ``IO_PEERS`` when the content is not here); writes in p2p mode with
``IO_REQUIRE_LEASE=1`` need a lease token. Failures raise :class:`~cheng_build.core.errors.ChengError`
subclasses (the seed's ``ioLastError`` is the exception's ``what``).

This module imports only the standard library and the config at import time; the CAS, libp2p and
crypto load on first use, so importing it costs an application nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cheng_build.storage.config import StorageConfig, resolve

_PREFIXES = ("cid://", "cid:")


def is_cid_path(path: str) -> bool:
    """Whether ``path`` names storage content rather than a file."""
    return path.startswith(_PREFIXES)


def _cfg(config: StorageConfig | None) -> StorageConfig:
    return config if config is not None else resolve()


def read_bytes(path: str | os.PathLike[str], *, config: StorageConfig | None = None) -> bytes:
    """The bytes at ``path`` (``cid://<cid>[/sub/path]`` or a file)."""
    text = os.fspath(path)
    if not is_cid_path(text):
        return Path(text).read_bytes()
    from cheng_build.storage.reads import read_bytes as _read

    return _read(_cfg(config), text)


def read_text(path: str | os.PathLike[str], *, encoding: str = "utf-8",
              config: StorageConfig | None = None) -> str:
    """The text at ``path``."""
    return read_bytes(path, config=config).decode(encoding)


def write_bytes(path: str | os.PathLike[str], data: bytes, *,
                lease: str | os.PathLike[str] | None = None, compat: bool = False,
                registry: str | os.PathLike[str] | None = None,
                config: StorageConfig | None = None) -> str:
    """Write ``data``; returns ``cid://<cid>`` for a ``cid://`` path, else the file path.

    With ``lease`` (a token file) the write is paid for and recorded in the ledger; without one it
    is refused where a lease is required (``IO_REQUIRE_LEASE=1`` in p2p mode).
    """
    text = os.fspath(path)
    if not is_cid_path(text):
        from cheng_build.core.atomic import atomic_write_bytes

        atomic_write_bytes(text, data)
        return text
    from cheng_build.core.paths import registry_path
    from cheng_build.storage.token import load_token, registry_lookup
    from cheng_build.storage.writes import put_bytes

    cfg = _cfg(config)
    token = load_token(Path(lease)) if lease is not None else None
    res = put_bytes(cfg, data, token=token, compat=compat,
                    key_lookup=registry_lookup(registry_path(os.fspath(registry) if registry else None)),
                    now=int(time.time()))
    return f"cid://{res.cid}"


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8",
               lease: str | os.PathLike[str] | None = None, compat: bool = False,
               registry: str | os.PathLike[str] | None = None,
               config: StorageConfig | None = None) -> str:
    """:func:`write_bytes` for text."""
    return write_bytes(path, text.encode(encoding), lease=lease, compat=compat, registry=registry,
                       config=config)


__all__ = ["is_cid_path", "read_bytes", "read_text", "write_bytes", "write_text"]
