"""Effective configuration: CLI > ``PKG_*`` environment > ``cheng-pkg-config.toml`` > defaults.

Security levels (the seed's A1.18-A1.20):

- ``L0`` (development): HTTP fallback allowed; a missing or bad signature (including the
  existing tooling's ``local:`` placeholders) is a warning, not a failure; registry mismatch warns.
- ``L1`` (default): no HTTP fallback; signatures required; registry must match; an expired
  registry checkpoint is refused.
- ``L2`` (production): L1, plus only allow-listed peers are used (an empty allow-list allows none),
  signatures and registry match cannot be switched off, and trust decisions go to an audit log.

A level only supplies *defaults* for ``http_fallback``, ``require_signature`` and
``require_registry_match``; a value set explicitly (file, env or CLI) wins, except that L2 refuses
to be weakened. Every value records where it came from (``Config.sources``), which is what
``cheng-pkg config show`` prints.

File (``--config:`` > ``PKG_CONFIG`` > ``./cheng-pkg-config.toml`` > ``~/.cheng/cheng-pkg-config.toml``)::

    [remote]
    mode = "auto"            # local | p2p | auto
    peers = []               # multiaddrs
    bootstrap = []           # DHT bootstrap peers (multiaddrs); serve joins, fetch asks
    routers = []             # delegated routing (IPIP-337) URLs fetch asks for providers
    allow = []
    deny = []
    http_fallback = false
    require_signature = true
    require_registry_match = true

    [security]
    level = "L1"             # L0 | L1 | L2
    audit_log = "~/.cheng/audit.jsonl"

    [registry]
    path = "build/cheng_registry/registry.jsonl"
    operator_key = ""        # pin the checkpoint operator's ed25519:<base64> key
    checkpoint_ttl_s = 604800
    sync_from = []           # mirrors to sync the log from first (multiaddrs, http URLs)
    sync_fresh_s = 60        # chengc does not sync again within this many seconds

    [toolchain]
    compiler = "/opt/cheng/bin/chengc"   # the real Cheng compiler chengc hands builds to;
                                         # a relative path is relative to this file
    sign_key = "builder.json"            # chengc --sign's default key (docs/chengc.md)

    [metering]                           # prices of chengc --ledger, decimal whole units
    price_cpu = "0.000001"               # per CPU ms; price_mem / price_io per GiB
    royalty = "0.12"                     # author share; treasury likewise (rates 0..1)

Environment: ``PKG_MODE, PKG_PEERS, PKG_ALLOW, PKG_DENY`` (comma separated), ``PKG_HTTP_FALLBACK,
PKG_REQUIRE_SIGNATURE, PKG_REQUIRE_REGISTRY_MATCH`` (``0|1``), and ours: ``PKG_LEVEL``,
``PKG_REGISTRY``, ``PKG_OPERATOR_KEY``, ``PKG_AUDIT_LOG``, ``PKG_CHECKPOINT_TTL``, ``PKG_CONFIG``,
``PKG_REGISTRY_FROM``, ``PKG_BOOTSTRAP``, ``PKG_ROUTERS`` (comma separated), ``PKG_SYNC_FRESH_S``;
and the toolchain's own ``CHENG_COMPILER`` (the order :mod:`cheng_build.build.compiler` uses:
``--compiler`` > ``CHENG_COMPILER`` > ``[toolchain] compiler``). The compiler is only checked
to be a path here; whether it exists is chengc's business, so ``cheng-pkg verify`` never fails
for a compiler it does not run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from types import MappingProxyType

from cheng_build.core.errors import InputError, PolicyError, UsageError
from cheng_build.core.paths import DEFAULT_REGISTRY
from cheng_build.core.record import dataclass, field

CONFIG_FILENAME = "cheng-pkg-config.toml"


class Level(Enum):
    """Security level (seed A1.18)."""

    L0 = "L0"
    L1 = "L1"
    L2 = "L2"

    @classmethod
    def parse(cls, value: object) -> Level:
        """``Level`` from ``"L1"``/``"l1"``/``1``/a Level.

        Raises:
            UsageError: not a level.
        """
        if isinstance(value, Level):
            return value
        text = str(value).strip().upper()
        if text in ("0", "1", "2"):
            text = "L" + text
        try:
            return cls(text)
        except ValueError:
            raise UsageError(f"unknown security level {value!r}", how="use L0, L1 or L2") from None


class Mode(Enum):
    """Where packages may come from (seed A1.3)."""

    LOCAL = "local"
    P2P = "p2p"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound on untrusted registry input, in one place (python-tuf's ``UpdaterConfig``)."""

    max_line_bytes: int = 1 << 20
    max_lines: int = 50_000_000
    max_proof_len: int = 64
    max_source_addrs: int = 64
    # A checkpoint valid for longer than this is refused: a stolen old one must expire.
    max_checkpoint_ttl_s: int = 366 * 24 * 3600


_LEVEL_DEFAULTS: dict[Level, dict[str, bool]] = {
    Level.L0: {"http_fallback": True, "require_signature": False, "require_registry_match": False},
    Level.L1: {"http_fallback": False, "require_signature": True, "require_registry_match": True},
    Level.L2: {"http_fallback": False, "require_signature": True, "require_registry_match": True},
}

_LISTS = ("peers", "allow", "deny", "sync_from", "bootstrap", "routers")
_BOOLS = ("http_fallback", "require_signature", "require_registry_match")
_ENV = {
    "level": "PKG_LEVEL", "mode": "PKG_MODE", "peers": "PKG_PEERS", "allow": "PKG_ALLOW",
    "deny": "PKG_DENY", "http_fallback": "PKG_HTTP_FALLBACK",
    "require_signature": "PKG_REQUIRE_SIGNATURE",
    "require_registry_match": "PKG_REQUIRE_REGISTRY_MATCH", "registry": "PKG_REGISTRY",
    "operator_key": "PKG_OPERATOR_KEY", "audit_log": "PKG_AUDIT_LOG",
    "checkpoint_ttl_s": "PKG_CHECKPOINT_TTL", "compiler": "CHENG_COMPILER",
    "sync_from": "PKG_REGISTRY_FROM", "sync_fresh_s": "PKG_SYNC_FRESH_S",
    "bootstrap": "PKG_BOOTSTRAP", "routers": "PKG_ROUTERS",
}
# Where each key sits in the file.
_FILE_KEYS = {
    "mode": ("remote", "mode"), "peers": ("remote", "peers"), "allow": ("remote", "allow"),
    "deny": ("remote", "deny"), "http_fallback": ("remote", "http_fallback"),
    "require_signature": ("remote", "require_signature"),
    "require_registry_match": ("remote", "require_registry_match"),
    "level": ("security", "level"), "audit_log": ("security", "audit_log"),
    "registry": ("registry", "path"), "operator_key": ("registry", "operator_key"),
    "checkpoint_ttl_s": ("registry", "checkpoint_ttl_s"),
    "compiler": ("toolchain", "compiler"),
    "sync_from": ("registry", "sync_from"), "sync_fresh_s": ("registry", "sync_fresh_s"),
    "bootstrap": ("remote", "bootstrap"), "routers": ("remote", "routers"),
}
# Keys chengc reads itself (build/compiler.py config_toolchain_path/config_table, which checks
# their values): known here so the file is not refused, not part of Config.
_READ_BY_CHENGC = {("toolchain", "sign_key"), ("metering", "price_cpu"), ("metering", "price_mem"),
                   ("metering", "price_io"), ("metering", "royalty"), ("metering", "treasury")}
_KNOWN_SECTIONS = {"remote", "security", "registry", "toolchain", "metering"}


@dataclass(frozen=True, slots=True)
class Config:
    """The effective configuration and where each value came from."""

    level: Level = Level.L1
    mode: Mode = Mode.AUTO
    peers: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    http_fallback: bool = False
    require_signature: bool = True
    require_registry_match: bool = True
    registry: Path = Path(DEFAULT_REGISTRY)
    operator_key: str | None = None
    audit_log: Path = Path("~/.cheng/audit.jsonl")
    checkpoint_ttl_s: int = 7 * 24 * 3600
    compiler: Path | None = None  # [toolchain] compiler: what chengc hands builds to
    sync_from: tuple[str, ...] = ()  # registry mirrors resolve/verify/chengc sync from first
    sync_fresh_s: int = 60  # chengc skips the sync this long after the last one
    bootstrap: tuple[str, ...] = ()  # Kademlia DHT bootstrap peers (content routing)
    routers: tuple[str, ...] = ()  # IPIP-337 delegated routing endpoints (http://host:port)
    config_file: Path | None = None
    limits: Limits = field(default_factory=Limits)
    # field name -> "cli" | "env PKG_X" | "file <path>" | "level L1" | "default"
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def peer_allowed(self, addr: str) -> bool:
        """Whether a peer may be used: never when denied; at L2 only when allow-listed; at L0/L1
        an empty allow-list allows everyone."""
        if addr in self.deny:
            return False
        if self.allow or self.level is Level.L2:
            return addr in self.allow
        return True

    def permitted_peers(self) -> tuple[str, ...]:
        """``peers`` filtered by the allow/deny lists and the level."""
        return tuple(p for p in self.peers if self.peer_allowed(p))

    def rows(self) -> list[tuple[str, str, str]]:
        """(name, value, source) for display, in a stable order."""
        names = ("level", "mode", "peers", "allow", "deny", "http_fallback", "require_signature",
                 "require_registry_match", "registry", "operator_key", "audit_log",
                 "checkpoint_ttl_s", "compiler", "sync_from", "sync_fresh_s", "bootstrap", "routers",
                 "config_file")
        out = []
        for n in names:
            v = getattr(self, n)
            if isinstance(v, Enum):
                text = str(v.value)
            elif isinstance(v, tuple):
                text = ",".join(v) if v else "(none)"
            elif isinstance(v, bool):
                text = "true" if v else "false"
            elif v is None:
                text = "(none)"
            else:
                text = str(v)
            out.append((n, text, self.sources.get(n, "default")))
        return out


def _parse_bool(value: object, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise UsageError(f"{origin}: {value!r} is not a boolean", how="use 0 or 1 (true or false)")


def _parse_list(value: object, origin: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, list | tuple) and all(isinstance(p, str) for p in value):
        return tuple(p.strip() for p in value if p.strip())
    raise UsageError(f"{origin}: expected a list of strings or a comma-separated string")


def _coerce(name: str, value: object, origin: str) -> object:
    if name in _LISTS:
        return _parse_list(value, origin)
    if name in _BOOLS:
        return _parse_bool(value, origin)
    if name == "level":
        return Level.parse(value)
    if name == "mode":
        try:
            return Mode(str(value).strip().lower())
        except ValueError:
            raise UsageError(f"{origin}: unknown mode {value!r}", how="use local, p2p or auto") from None
    if name in ("registry", "audit_log"):
        return Path(str(value)).expanduser()
    if name == "operator_key":
        text = str(value).strip()
        return text or None
    if name == "compiler":
        if not isinstance(value, str | os.PathLike):
            raise UsageError(f"{origin}: the compiler must be a path (a string), got "
                             f"{type(value).__name__}", how='write compiler = "/path/to/chengc"')
        text = os.fspath(value)
        if not isinstance(text, str) or not text.strip() or "\x00" in text:
            raise UsageError(f"{origin}: the compiler path is empty or not a valid path",
                             how='write compiler = "/path/to/chengc"')
        return Path(text).expanduser()
    if name == "sync_fresh_s":
        try:
            n = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise UsageError(f"{origin}: {value!r} is not a number of seconds") from None
        if n < 0:
            raise UsageError(f"{origin}: the sync freshness window cannot be negative")
        return n
    if name == "checkpoint_ttl_s":
        try:
            n = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise UsageError(f"{origin}: {value!r} is not a number of seconds") from None
        if n <= 0:
            raise UsageError(f"{origin}: checkpoint TTL must be positive")
        return n
    raise KeyError(name)


def find_config_file(flag: str | None, env: Mapping[str, str]) -> tuple[Path | None, str]:
    """The config file to read and why: ``--config`` > ``PKG_CONFIG`` > cwd > ``~/.cheng``."""
    if flag:
        return Path(flag).expanduser(), "cli"
    if env.get("PKG_CONFIG"):
        return Path(env["PKG_CONFIG"]).expanduser(), "env PKG_CONFIG"
    for candidate in (Path.cwd() / CONFIG_FILENAME, Path.home() / ".cheng" / CONFIG_FILENAME):
        if candidate.is_file():
            return candidate, "found"
    return None, ""


def _read_file(path: Path) -> dict[str, object]:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read config file {path}", why=str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {path} is not valid TOML", why=str(exc)) from None
    out: dict[str, object] = {}
    for section in data:
        if section not in _KNOWN_SECTIONS:
            raise InputError(f"config file {path}: unknown section [{section}]",
                             how=f"known sections: {', '.join(sorted(_KNOWN_SECTIONS))}")
    for name, (section, key) in _FILE_KEYS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise InputError(f"config file {path}: [{section}] is not a table")
        if key in table:
            out[name] = table[key]
    for section in _KNOWN_SECTIONS:
        table = data.get(section, {})
        known = {k for (s, k) in (*_FILE_KEYS.values(), *_READ_BY_CHENGC) if s == section}
        for key in table:
            if key not in known:
                raise InputError(f"config file {path}: unknown key {section}.{key}",
                                 how=f"known keys in [{section}]: {', '.join(sorted(known))}")
    return out


def load_config(
    cli_overrides: Mapping[str, object] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
) -> Config:
    """Merge CLI > ``PKG_*`` env > config file > level defaults > built-in defaults.

    Args:
        cli_overrides: values from flags (``None`` values are ignored), keyed by field name.
        env: the environment (default ``os.environ``).
        config_path: ``--config:``; else ``PKG_CONFIG``, then the default locations.

    Raises:
        UsageError: a value does not parse.
        InputError: the config file is missing (when named), unreadable or has unknown keys.
        PolicyError: L2 with a weakened setting.
    """
    env = os.environ if env is None else env
    cli = {k: v for k, v in (cli_overrides or {}).items() if v is not None}
    unknown = set(cli) - set(_FILE_KEYS)
    if unknown:
        raise RuntimeError(f"load_config: unknown override(s) {sorted(unknown)}")  # caller bug
    path, why = find_config_file(os.fspath(config_path) if config_path else None, env)
    file_vals = _read_file(path) if path is not None else {}

    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for name in _FILE_KEYS:
        if name in cli:
            values[name], sources[name] = _coerce(name, cli[name], f"--{name}"), "cli"
        elif env.get(_ENV[name]) not in (None, ""):
            origin = f"env {_ENV[name]}"
            values[name], sources[name] = _coerce(name, env[_ENV[name]], origin), origin
        elif name in file_vals:
            origin = f"file {path}"
            values[name], sources[name] = _coerce(name, file_vals[name], f"{path}: {name}"), origin
            compiler = values[name]
            if name == "compiler" and path is not None and isinstance(compiler, Path) \
                    and not compiler.is_absolute():
                # Relative to the file that names it, as chengc reads it (build/compiler.py).
                values[name] = path.parent / compiler
    level = values.get("level", Level.L1)
    assert isinstance(level, Level)
    sources.setdefault("level", "default")
    for name, default in _LEVEL_DEFAULTS[level].items():
        if name not in values:
            values[name], sources[name] = default, f"level {level.value}"
    if level is Level.L2:
        for name in ("require_signature", "require_registry_match"):
            if values[name] is False:
                raise PolicyError(f"{name} cannot be off at L2 ({sources[name]})",
                                  how="remove the setting, or use level L1 for this run")
        if values["http_fallback"] is True:
            raise PolicyError(f"http_fallback cannot be on at L2 ({sources['http_fallback']})",
                              how="remove the setting, or use level L0/L1")
    if path is not None:
        sources["config_file"] = why
    return Config(config_file=path, sources=MappingProxyType(sources),
                  **values)  # type: ignore[arg-type]


__all__ = ["Config", "Level", "Limits", "Mode", "load_config"]

