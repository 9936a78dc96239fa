"""``cheng.lock.toml``: the verifiable snapshot of every package in the dependency graph.

v1 (the default, the seed's A1.8/A1.15)::

    package_id = "pkg://cheng/app-demo"       # required
    created_ts = "1730000000"                 # optional, unix seconds as a string

    [[dependencies]]                          # one per package of the full transitive graph
    package_id = "pkg://cheng/libp2p"         # required
    channel = "edge"                          # required
    epoch = 12                                # required (not for path entries)
    cid = "bafy..."                           # required (not for path entries)
    format = "tar"                            # tar | source | dag; "tar" when absent
    author_id = "node:alice"                  # required (not for path entries)
    pub_key = "ed25519:..."
    signature = "ed25519:..."                 # required (not for path entries)
    ast_simhash64 = ...                       # where the registry knows it
    originality_score = 0.93                  # where the registry knows it
    path = "../libp2p"                        # dev-only local tree; with dev_only = true
    dev_only = true

v1 is strict: an unknown key at either level is an error, so an old tool never silently ignores
a field it does not understand. v2 (``lock_version = 2``) adds per-dependency ``parent``,
``head``, ``source_mode`` (local|p2p|http|auto) and ``source_addrs``, and tolerates keys it does
not know (kept and written back), as A1.13 suggests. We write v2 only when one of the four v2
fields is used, so a lock stays readable by v1 tools whenever it can.

The same document as YAML or JSON (``cheng.lock.yaml`` / ``.json``) has the same keys.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cheng_build.core.atomic import atomic_write_text
from cheng_build.core.errors import InputError
from cheng_build.core.suggest import closest
from cheng_build.pkg.formats import (
    DocumentError,
    dump_text,
    format_for_path,
    read_document,
    type_name,
)
from cheng_build.pkg.manifest import check_channel, check_package_id

LOCK_NAMES = ("cheng.lock.toml", "cheng.lock.yaml", "cheng.lock.yml", "cheng.lock.json")
FORMATS = ("tar", "source", "dag")
SOURCE_MODES = ("local", "p2p", "http", "auto")

# Output order of a dependency's keys: the seed's A1.10 order, then ours, then v2's.
V1_DEP_KEYS = ("package_id", "channel", "epoch", "cid", "format", "author_id", "pub_key",
               "signature", "ast_simhash64", "originality_score", "path", "dev_only")
V2_DEP_KEYS = ("parent", "head", "source_mode", "source_addrs")
_REQUIRED = ("package_id", "channel", "epoch", "cid", "author_id", "signature")
_REQUIRED_PATH = ("package_id", "channel", "path")
_TOP_KEYS = ("lock_version", "package_id", "created_ts", "dependencies")

# A CID as text: CIDv1 in base32 (b...), base58btc (z...) or base36 (k...), or a CIDv0 (Qm...).
# Syntax only: the signature check is what proves a CID is the one the author signed.
_CID = re.compile(r"^(?:b[a-z2-7]{20,}|z[1-9A-HJ-NP-Za-km-z]{20,}|k[0-9a-z]{20,}"
                  r"|Qm[1-9A-HJ-NP-Za-km-z]{44})$")
_KEYISH = re.compile(r"^[A-Za-z0-9_-]+:\S+$")


class LockError(InputError):
    """A lock is missing or malformed; ``what`` is the seed's ``load lock failed``."""

    def __init__(self, why: str, *, how: str | None = None) -> None:
        super().__init__("load lock failed", why=why,
                         how=how or "re-create it with 'cheng-pkg resolve', or fix the field named")


@dataclass(frozen=True, slots=True)
class LockedDep:
    """One locked snapshot. ``path``/``dev_only`` mark a dev-only local tree (no signature)."""

    package_id: str
    channel: str
    epoch: int | None = None
    cid: str | None = None
    format: str = "tar"
    author_id: str | None = None
    pub_key: str | None = None
    signature: str | None = None
    ast_simhash64: int | str | None = None
    originality_score: float | None = None
    path: str | None = None
    dev_only: bool = False
    parent: str | None = None
    head: str | None = None
    source_mode: str | None = None
    source_addrs: tuple[str, ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()

    @property
    def uses_v2(self) -> bool:
        """True when a v2-only field is set (then the lock must be written as v2)."""
        return bool(self.parent or self.head or self.source_mode or self.source_addrs or self.extra)

    def describe(self) -> str:
        """``channel@epoch cid [format]``, the seed's A1.14 conflict notation."""
        if self.path:
            return f"{self.channel}@path {self.path} [dev-only]"
        return f"{self.channel}@{self.epoch} {self.cid} [{self.format}]"

    def to_dict(self) -> dict[str, Any]:
        """The dependency as written: fields in A1.10 order, unset optional ones left out."""
        out: dict[str, Any] = {}
        for key in (*V1_DEP_KEYS, *V2_DEP_KEYS):
            value = getattr(self, key)
            if key == "format":
                if self.path and self.cid is None:
                    continue
            elif key == "dev_only":
                if not value:
                    continue
            elif key == "source_addrs":
                if not value:
                    continue
                value = list(value)
            elif value is None:
                continue
            out[key] = value
        for key, value in self.extra:
            out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class Lock:
    """A validated lock: the package and its full, flat, single-version dependency set."""

    package_id: str
    created_ts: str | None = None
    dependencies: tuple[LockedDep, ...] = ()
    source: Path | None = field(default=None, compare=False)

    @property
    def lock_version(self) -> int:
        """2 when any dependency uses a v2 field, else 1."""
        return 2 if any(d.uses_v2 for d in self.dependencies) else 1

    def by_package(self) -> dict[str, LockedDep]:
        """package_id -> dependency (the last one wins; verify reports duplicates)."""
        return {d.package_id: d for d in self.dependencies}

    def to_dict(self) -> dict[str, Any]:
        """The lock as written (``lock_version = 2`` first only when needed)."""
        out: dict[str, Any] = {}
        if self.lock_version == 2:
            out["lock_version"] = 2
        out["package_id"] = self.package_id
        if self.created_ts is not None:
            out["created_ts"] = self.created_ts
        out["dependencies"] = [d.to_dict() for d in self.dependencies]
        return out


def now_ts() -> str:
    """``created_ts`` for a new lock: ``SOURCE_DATE_EPOCH`` when set (reproducible), else now."""
    sde = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return sde if sde.isdigit() else str(int(time.time()))


def _opt_str(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise DocumentError(f"{where}.{key}: expected a non-empty string, got {type_name(value)}")
    return value


def _parse_dep(raw: object, where: str, version: int) -> LockedDep:
    if not isinstance(raw, dict):
        raise DocumentError(f"{where}: expected a table, got {type_name(raw)}")
    known = V1_DEP_KEYS + (V2_DEP_KEYS if version == 2 else ())
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown and version == 1:
        v2 = [k for k in unknown if k in V2_DEP_KEYS]
        near = None if v2 else closest(unknown[0], [k for k in V1_DEP_KEYS if k not in raw])
        raise DocumentError(
            f"{where}: unknown key {unknown[0]!r}",
            why=(f"{unknown[0]} is a lock_version = 2 field" if v2
                 else "a v1 lock allows " + ", ".join(V1_DEP_KEYS)),
            how=("add lock_version = 2 at the top" if v2
                 else f"did you mean {near}? rename the key" if near else "remove the key"))
    is_path = "path" in raw
    for key in (_REQUIRED_PATH if is_path else _REQUIRED):
        if key not in raw:
            raise DocumentError(f"{where}: missing required key '{key}'")
    pid = check_package_id(raw["package_id"], f"{where}.package_id")
    channel = check_channel(raw["channel"], f"{where}.channel")
    epoch = raw.get("epoch")
    if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0):
        raise DocumentError(f"{where}.epoch: expected a non-negative integer, got {type_name(epoch)}"
                            if not isinstance(epoch, int) or isinstance(epoch, bool)
                            else f"{where}.epoch: must not be negative ({epoch})")
    cid = _opt_str(raw, "cid", where)
    if cid is not None and not _CID.match(cid):
        raise DocumentError(f"{where}.cid: not a CID: {cid[:80]!r}")
    fmt = raw.get("format", "tar")
    if fmt not in FORMATS:
        raise DocumentError(f"{where}.format: expected one of {', '.join(FORMATS)}, got "
                            + (repr(fmt) if isinstance(fmt, str) else type_name(fmt)))
    author_id = _opt_str(raw, "author_id", where)
    pub_key = _opt_str(raw, "pub_key", where)
    signature = _opt_str(raw, "signature", where)
    for key, value in (("pub_key", pub_key), ("signature", signature)):
        if value is not None and not _KEYISH.match(value):
            raise DocumentError(f"{where}.{key}: expected '<scheme>:<value>' like 'ed25519:...'")
    simhash = raw.get("ast_simhash64")
    if simhash is not None and (isinstance(simhash, bool) or not isinstance(simhash, int | str)):
        raise DocumentError(f"{where}.ast_simhash64: expected an integer or a hex string, "
                            f"got {type_name(simhash)}")
    score = raw.get("originality_score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise DocumentError(f"{where}.originality_score: expected a number, got {type_name(score)}")
    path = _opt_str(raw, "path", where)
    dev_only = raw.get("dev_only", False)
    if not isinstance(dev_only, bool):
        raise DocumentError(f"{where}.dev_only: expected true or false, got {type_name(dev_only)}")
    if path and not dev_only:
        raise DocumentError(f"{where}: a path entry must be marked dev_only = true")
    parent = _opt_str(raw, "parent", where)
    head = _opt_str(raw, "head", where)
    source_mode = _opt_str(raw, "source_mode", where)
    if source_mode is not None and source_mode not in SOURCE_MODES:
        raise DocumentError(f"{where}.source_mode: expected one of {', '.join(SOURCE_MODES)}, "
                            f"got {source_mode!r}")
    addrs = raw.get("source_addrs", [])
    if not isinstance(addrs, list) or not all(isinstance(a, str) and a for a in addrs):
        raise DocumentError(f"{where}.source_addrs: expected an array of strings")
    extra = tuple((str(k), raw[k]) for k in raw if k not in known)
    return LockedDep(pid, channel, epoch, cid, fmt, author_id, pub_key, signature, simhash,
                     score, path, dev_only, parent, head, source_mode, tuple(addrs), extra)


def parse_lock(data: Mapping[str, Any], source: Path | None = None) -> Lock:
    """Validate parsed lock data (v1 strict, v2 tolerant of unknown keys).

    Raises:
        DocumentError: the message names the offending field.
    """
    version = data.get("lock_version", 1)
    if isinstance(version, bool) or version not in (1, 2):
        raise DocumentError(f"lock_version: unsupported value {version!r}",
                            why="this tool reads lock_version 1 and 2")
    if version == 1:
        unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
        if unknown:
            near = closest(unknown[0], [k for k in _TOP_KEYS if k not in data])
            raise DocumentError(f"unknown top-level key {unknown[0]!r}",
                                why="a v1 lock allows package_id, created_ts, dependencies",
                                how=f"did you mean {near}? rename the key" if near else "remove the key")
    if "package_id" not in data:
        raise DocumentError("missing required key 'package_id'")
    pid = check_package_id(data["package_id"], "package_id")
    created = data.get("created_ts")
    if created is not None:
        if isinstance(created, int) and not isinstance(created, bool) and created >= 0:
            created = str(created)
        elif not (isinstance(created, str) and created.isascii() and created.isdigit()):
            raise DocumentError("created_ts: expected unix seconds like \"1730000000\"")
    raw_deps = data.get("dependencies", [])
    if not isinstance(raw_deps, list):
        raise DocumentError(f"dependencies: expected an array of tables, got {type_name(raw_deps)}")
    deps = tuple(_parse_dep(raw, f"dependencies[{i}]", version) for i, raw in enumerate(raw_deps))
    return Lock(pid, created, deps, source)


def load_lock(path: str | os.PathLike[str]) -> Lock:
    """Read and validate a lock file (TOML, YAML or JSON by suffix).

    Raises:
        LockError: missing, unreadable, not UTF-8, too large or invalid (``why`` names the
            file and the field).
    """
    p = Path(path)
    try:
        data, _ = read_document(p)
        return parse_lock(data, p)
    except DocumentError as exc:
        msg = exc.what if str(p) in exc.what else f"{p}: {exc.what}"
        raise LockError(msg + (f" ({exc.why})" if exc.why else ""), how=exc.how) from None


def lock_text(lock: Lock, fmt: str = "toml", *, previous: str | None = None) -> str:
    """Serialise a lock; ``previous`` TOML text is rewritten in place (comments kept)."""
    return dump_text(lock.to_dict(), fmt, previous=previous)


def dump_lock(lock: Lock, path: str | os.PathLike[str], fmt: str | None = None) -> None:
    """Write a lock atomically. An existing TOML lock is edited in place, keeping its comments,
    and keeps its ``created_ts`` when nothing else changed (so re-resolving does not churn).
    """
    p = Path(path)
    fmt = fmt or format_for_path(p)
    previous: str | None = None
    if p.is_file():
        try:
            old_data, previous = read_document(p, fmt)
            old = parse_lock(old_data)
            if replace(old, created_ts=lock.created_ts) == lock:
                lock = replace(lock, created_ts=old.created_ts)
        except (DocumentError, InputError):
            pass
    atomic_write_text(p, lock_text(lock, fmt, previous=previous if fmt == "toml" else None))


def find_lock(directory: str | os.PathLike[str]) -> Path | None:
    """The lock file in a directory (TOML preferred), or None."""
    d = Path(directory)
    for name in LOCK_NAMES:
        if (d / name).is_file():
            return d / name
    return None


def duplicates(deps: Iterable[LockedDep]) -> dict[str, list[LockedDep]]:
    """package_id -> its entries, for packages locked more than once."""
    groups: dict[str, list[LockedDep]] = {}
    for d in deps:
        groups.setdefault(d.package_id, []).append(d)
    return {k: v for k, v in groups.items() if len(v) > 1}


__all__ = [
    "FORMATS",
    "LOCK_NAMES",
    "SOURCE_MODES",
    "V1_DEP_KEYS",
    "V2_DEP_KEYS",
    "Lock",
    "LockError",
    "LockedDep",
    "dump_lock",
    "duplicates",
    "find_lock",
    "load_lock",
    "lock_text",
    "now_ts",
    "parse_lock",
]
