"""``cheng-package.toml``: what a package is and which channels it depends on.

Format (TOML shown; ``cheng-package.yaml`` / ``.json`` carry the same keys)::

    package_id = "pkg://cheng/app-demo"   # required
    version = "1.4.2"                     # SemVer; required to publish

    [[dependencies]]
    package_id = "pkg://cheng/libp2p"     # required
    channel = "edge"                      # edge | stable | lts; required unless tag
    tag = "v1.2.0"                        # instead of channel: the snapshot this tag names
    path = "../libp2p"                    # optional, dev-only: use a local tree instead

    [overrides]                           # top-level manifest only (ignored in dependencies)
    "pkg://cheng/fs" = "stable"           # force a channel for this package in the whole graph
    "pkg://cheng/gui" = { channel = "lts", path = "../gui" }

Rules: a dependency table allows exactly ``package_id``, ``channel``, ``tag``, ``path`` (one of
``channel`` and ``tag``; a tag is fixed forever by its owner's signed ``tag`` line, so resolve
pins that snapshot; anything else is
an error: a typo must not silently drop a constraint); a package may be listed once; other
top-level keys are kept but not interpreted (the compiler's own manifests carry e.g.
``module_prefix``). A ``path`` makes the manifest dev-only: the lock marks such entries and
:func:`ensure_publishable` refuses to publish it (the seed's A1: "workspace/path override ...
标记为 dev-only，禁止发布").
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from cheng_build.core.errors import InputError, PolicyError
from cheng_build.core.record import dataclass, field
from cheng_build.core.suggest import closest
from cheng_build.pkg.formats import (
    DocumentError,
    decode_utf8,
    parse_text,
    read_document,
    type_name,
)

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

CHANNELS = ("edge", "stable", "lts")
MANIFEST_NAMES = ("cheng-package.toml", "cheng-package.yaml", "cheng-package.yml",
                  "cheng-package.json")
PACKAGE_ID = re.compile(r"^pkg://[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)+$")

_DEP_KEYS = ("package_id", "channel", "path", "tag")


class ManifestError(InputError):
    """A manifest is missing or malformed; ``what`` is the seed's ``load manifest failed``."""

    def __init__(self, why: str, *, how: str | None = None) -> None:
        super().__init__("load manifest failed", why=why,
                         how=how or "fix the manifest (see docs/lock.md for its keys)")


@dataclass(frozen=True, slots=True)
class Dependency:
    """One ``[[dependencies]]`` entry (or an override, with ``channel`` possibly empty)."""

    package_id: str
    channel: str  # "" for a tag dependency
    path: str | None = None
    tag: str | None = None  # pin the snapshot this registry tag names (instead of a channel)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest. ``source`` is the file it was read from, if any."""

    package_id: str
    dependencies: tuple[Dependency, ...] = ()
    version: str | None = None
    overrides: Mapping[str, Dependency] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @property
    def base_dir(self) -> Path:
        """Directory that relative ``path`` overrides are resolved against."""
        return self.source.parent if self.source else Path.cwd()

    @property
    def dev_only(self) -> bool:
        """True when any dependency or override uses a local ``path``."""
        return any(d.path for d in self.dependencies) or any(
            o.path for o in self.overrides.values())


def manifest_to_dict(manifest: Manifest) -> dict[str, Any]:
    """The manifest as a document: package_id, version, other keys, dependencies, overrides."""
    out: dict[str, Any] = {"package_id": manifest.package_id}
    if manifest.version is not None:
        out["version"] = manifest.version
    out.update(manifest.extra)
    out["dependencies"] = [
        {"package_id": d.package_id, **({"channel": d.channel} if d.channel else {}),
         **({"tag": d.tag} if d.tag else {}), **({"path": d.path} if d.path else {})}
        for d in manifest.dependencies]
    if manifest.overrides:
        over: dict[str, Any] = {}
        for pid, o in manifest.overrides.items():
            if o.path is None:
                over[pid] = o.channel
            else:
                over[pid] = {**({"channel": o.channel} if o.channel else {}), "path": o.path}
        out["overrides"] = over
    return out


def dump_manifest(manifest: Manifest, path: str | os.PathLike[str], fmt: str | None = None) -> None:
    """Write a manifest atomically; an existing TOML manifest is edited in place (comments kept)."""
    from cheng_build.core.atomic import atomic_write_text
    from cheng_build.pkg.formats import dump_text, format_for_path

    p = Path(path)
    fmt = fmt or format_for_path(p)
    previous = None
    if fmt == "toml" and p.is_file():
        try:
            previous = read_document(p, fmt)[1]
        except DocumentError:
            previous = None
    atomic_write_text(p, dump_text(manifest_to_dict(manifest), fmt, previous=previous))


def check_package_id(value: object, where: str) -> str:
    """Validate a ``pkg://<namespace>/<name>`` id; returns it.

    Raises:
        DocumentError: not a string or not of that form (``where`` names the field).
    """
    if not isinstance(value, str):
        raise DocumentError(f"{where}: expected a string like \"pkg://cheng/fs\", "
                            f"got {type_name(value)}")
    if not PACKAGE_ID.match(value):
        raise DocumentError(f"{where}: invalid package id {value!r}",
                            how='write it like "pkg://cheng/fs"')
    return value


def _check_tag(raw: Mapping[str, Any], where: str) -> str | None:
    """A dependency's ``tag`` (None when it has none); refused together with channel or path."""
    if "tag" not in raw:
        return None
    tag = raw["tag"]
    if not isinstance(tag, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}", tag):
        raise DocumentError(f"{where}.tag: not a tag name: "
                            + (repr(tag)[:60] if isinstance(tag, str) else type_name(tag)),
                            why="1-128 of A-Z a-z 0-9 . _ + -, starting with a letter or digit")
    if "channel" in raw or "path" in raw:
        raise DocumentError(f"{where}: a tag dependency takes no channel or path",
                            why="a tag names one snapshot; a channel or path would name another",
                            how="keep either tag or channel")
    return tag


def check_channel(value: object, where: str) -> str:
    """Validate a channel name (edge, stable, lts)."""
    if not isinstance(value, str) or value not in CHANNELS:
        shown = repr(value) if isinstance(value, str) else type_name(value)
        raise DocumentError(f"{where}: channel must be one of {', '.join(CHANNELS)}, got {shown}")
    return value


def _check_path(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise DocumentError(f"{where}: path must be a non-empty string")
    return value


def parse_manifest(data: Mapping[str, Any], source: Path | None = None) -> Manifest:
    """Validate parsed manifest data.

    Raises:
        DocumentError: a field is missing, of the wrong type, unknown (in a dependency),
            or a package is listed twice. The message names the field.
    """
    if "package_id" not in data:
        raise DocumentError("missing required key 'package_id'")
    package_id = check_package_id(data["package_id"], "package_id")
    version = data.get("version")
    if version is not None:
        from cheng_build.pkg.semver import VersionError, parse_version

        try:
            parse_version(version)
        except VersionError as exc:
            raise DocumentError(f"version: {exc.what}") from None
    raw_deps = data.get("dependencies", [])
    if not isinstance(raw_deps, list):
        raise DocumentError(f"dependencies: expected an array of tables, got {type_name(raw_deps)}")
    deps: list[Dependency] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_deps):
        where = f"dependencies[{i}]"
        if not isinstance(raw, dict):
            raise DocumentError(f"{where}: expected a table, got {type_name(raw)}")
        unknown = sorted(str(k) for k in raw if k not in _DEP_KEYS)
        if unknown:
            near = closest(unknown[0], [k for k in _DEP_KEYS if k not in raw])
            raise DocumentError(f"{where}: unknown key {unknown[0]!r}",
                                why=f"a dependency allows {', '.join(_DEP_KEYS)}",
                                how=f"did you mean {near}? rename the key" if near else None)
        for key in ("package_id", "channel"):
            if key not in raw and not (key == "channel" and "tag" in raw):
                raise DocumentError(f"{where}: missing required key '{key}'",
                                    how="give a channel (or a tag)" if key == "channel" else None)
        pid = check_package_id(raw["package_id"], f"{where}.package_id")
        tag = _check_tag(raw, where)
        channel = check_channel(raw["channel"], f"{where}.channel") if tag is None else ""
        path = _check_path(raw["path"], f"{where}.path") if "path" in raw else None
        if pid in seen:
            raise DocumentError(f"{where}: duplicate dependency {pid} "
                                f"(already dependencies[{seen[pid]}])",
                                how="list each package once; the single-version rule allows one")
        if pid == package_id:
            raise DocumentError(f"{where}: the package depends on itself ({pid})")
        seen[pid] = i
        deps.append(Dependency(pid, channel, path, tag))
    raw_over = data.get("overrides", {})
    if not isinstance(raw_over, dict):
        raise DocumentError(f"overrides: expected a table, got {type_name(raw_over)}")
    overrides: dict[str, Dependency] = {}
    for key, val in raw_over.items():
        where = f"overrides.{key!r}"
        pid = check_package_id(key, where)
        if isinstance(val, str):
            overrides[pid] = Dependency(pid, check_channel(val, where))
            continue
        if not isinstance(val, dict):
            raise DocumentError(f"{where}: expected a channel name or a table, got {type_name(val)}")
        unknown = sorted(str(k) for k in val if k not in ("channel", "path"))
        if unknown:
            raise DocumentError(f"{where}: unknown key {unknown[0]!r}",
                                why="an override allows channel, path")
        if "channel" not in val and "path" not in val:
            raise DocumentError(f"{where}: needs 'channel' or 'path'")
        channel = check_channel(val["channel"], f"{where}.channel") if "channel" in val else ""
        path = _check_path(val["path"], f"{where}.path") if "path" in val else None
        overrides[pid] = Dependency(pid, channel, path)
    extra = {k: v for k, v in data.items()
             if k not in ("package_id", "version", "dependencies", "overrides")}
    return Manifest(package_id, tuple(deps), version, overrides, extra, source)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate ``cheng-package.toml`` (or ``.yaml`` / ``.json``).

    A directory is accepted too: its manifest file is found by :func:`find_manifest`.

    Raises:
        ManifestError: the file is missing, unreadable, not UTF-8, too large or invalid
            (``why`` names the file and the field).
    """
    p = Path(path)
    if p.is_dir():
        found = find_manifest(p)
        if found is None:
            raise ManifestError(f"no cheng-package.toml in {p}")
        p = found
    try:
        data, _ = read_document(p)
        return parse_manifest(data, p.resolve())
    except DocumentError as exc:
        msg = exc.what if str(p) in exc.what else f"{p}: {exc.what}"
        raise ManifestError(msg + (f" ({exc.why})" if exc.why else ""), how=exc.how) from None


def manifest_from_bytes(raw: bytes, name: str = "cheng-package.toml") -> Manifest:
    """Validate a manifest read from elsewhere (a dependency's snapshot); format from ``name``.

    Raises:
        ManifestError: as :func:`load_manifest`.
    """
    from cheng_build.pkg.formats import MAX_DOCUMENT_BYTES, format_for_path

    try:
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise DocumentError(f"{name}: file too large")
        data = parse_text(decode_utf8(raw, name), format_for_path(name), name)
        return parse_manifest(data)
    except DocumentError as exc:
        raise ManifestError(exc.what if exc.what.startswith(name) else f"{name}: {exc.what}"
                            ) from None


def find_manifest(directory: str | os.PathLike[str]) -> Path | None:
    """The manifest file in a package directory (TOML preferred), or None."""
    d = Path(directory)
    for name in MANIFEST_NAMES:
        if (d / name).is_file():
            return d / name
    return None


def publish_problems(manifest: Manifest) -> list[str]:
    """Why this manifest may not be published (empty when it may)."""
    problems = [f"dependency {d.package_id} uses a dev-only path override ({d.path})"
                for d in manifest.dependencies if d.path]
    problems += [f"override for {o.package_id} uses a dev-only path ({o.path})"
                 for o in manifest.overrides.values() if o.path]
    if manifest.version is None:
        problems.append("no version: a published package needs a SemVer 'version'")
    return problems


def manifest_is_publishable(manifest: Manifest) -> bool:
    """True when :func:`publish_problems` finds nothing."""
    return not publish_problems(manifest)


def ensure_publishable(manifest: Manifest) -> None:
    """Refuse a manifest that must not be published (``publish`` calls this).

    Raises:
        PolicyError: ``dev-only manifest`` (path overrides) or ``manifest has no version``.
    """
    problems = publish_problems(manifest)
    if not problems:
        return
    dev = [p for p in problems if "path" in p]
    raise PolicyError("dev-only manifest" if dev else "manifest has no version",
                      why="\n".join(problems),
                      how="remove the path overrides (use a channel) and set version before "
                          "publishing" if dev else 'add version = "1.0.0" to the manifest')


__all__ = ["CHANNELS", "MANIFEST_NAMES", "PACKAGE_ID", "Dependency", "Manifest", "ManifestError",
           "check_channel", "check_package_id", "dump_manifest", "ensure_publishable",
           "find_manifest", "load_manifest", "manifest_from_bytes", "manifest_is_publishable",
           "manifest_to_dict", "parse_manifest", "publish_problems"]
