"""``cheng.meta.toml``: what was built, from what, by which compiler, against which lock.

Written beside the artifact (``--meta-out:<path>`` moves it). Byte-identical across reproducible
builds: every value is derived from the inputs (``created_ts`` is ``SOURCE_DATE_EPOCH``, never
the wall clock) and the keys are emitted in a fixed order. Layout::

    package_id = "pkg://cheng/app-demo"      # the seed's A1.10 package fields, when a package
    channel = "stable"                       # is named (--package, or the manifest/lock's own)
    epoch = 3                                # epoch/cid/format/author_id/pub_key/signature only
    cid = "bafy..."                          # when the registry has the package
    format = "tar"
    author_id = "node:alice"
    pub_key = "ed25519:..."
    signature = "ed25519:..."
    created_ts = "1730000000"

    [build]
    source = "app.cheng"
    output = "artifacts/chengc/app"
    output_cid = "bafkrei..."
    input_root = "bafybei..."
    compiler = "/opt/cheng/bin/chengc"
    compiler_digest = "sha256:..."
    flags = ["--name:app", "--release"]
    created_ts = "1730000000"

    [lock]                                   # only with a lock
    path = "chengcache/app.lock.toml"
    format = "toml"
    sha256 = "..."

    [[dependencies]]                         # one per locked dependency, lock order
    package_id = "pkg://cheng/libp2p"
    ...

The TOML is emitted by :func:`dumps` rather than tomlkit: it runs on every build, and these
few value types (strings, numbers, booleans, lists, inline tables) need no general writer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any


PACKAGE_FIELDS = ("package_id", "channel", "epoch", "cid", "format", "author_id", "pub_key",
                  "signature", "created_ts")
BUILD_FIELDS = ("source", "output", "output_cid", "input_root", "compiler", "compiler_digest",
                "flags", "created_ts")
LOCK_FIELDS = ("path", "format", "sha256")


def _string(s: str) -> str:
    """A TOML basic string: escape quote, backslash and control characters, keep the rest."""
    # The common case, nothing to escape: printable text holds no control character and no
    # surrogate (a str method: the regex it replaces cost each cache miss ~0.3 ms to compile).
    # Other printable-or-not text takes the loop below, which keeps what needs no escape.
    if s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            raise ValueError("cheng.meta.toml cannot hold a lone surrogate (an undecodable file name)")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _string(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # repr is valid TOML for every float, inf and nan included
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cheng.meta.toml cannot hold {type(v).__name__}")


def _table(fields: Mapping[str, Any], order: Sequence[str]) -> list[str]:
    keys = [k for k in order if k in fields] + sorted(k for k in fields if k not in order)
    return [f"{_key(k)} = {_value(fields[k])}" for k in keys if fields[k] is not None]


def dumps(package: Mapping[str, Any], build: Mapping[str, Any], lock: Mapping[str, Any] | None,
          dependencies: Sequence[Mapping[str, Any]]) -> str:
    """The meta document as TOML text (deterministic: fixed key order, no timestamps of ours)."""
    parts: list[str] = []
    top = _table(package, PACKAGE_FIELDS)
    if top:
        parts.append("\n".join(top))
    parts.append("\n".join(["[build]", *_table(build, BUILD_FIELDS)]))
    if lock is not None:
        parts.append("\n".join(["[lock]", *_table(lock, LOCK_FIELDS)]))
    for dep in dependencies:
        parts.append("\n".join(["[[dependencies]]", *_table(dep, PACKAGE_FIELDS)]))
    return "\n\n".join(parts) + "\n"


__all__ = ["BUILD_FIELDS", "LOCK_FIELDS", "PACKAGE_FIELDS", "dumps"]
