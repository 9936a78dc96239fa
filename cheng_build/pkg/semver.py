"""SemVer 2.0.0 versions and the release rule the registry enforces.

``check_release`` is the gate ``publish`` runs before it appends a release: given the public API of
the previous release on the channel and of the new one (see :mod:`cheng_build.pkg.api`), it lists
every reason the new version number lies about the change:

- a patch or minor release may not remove a public symbol or change its signature;
- a patch release may not add a public symbol either (that is a minor release);
- a major release may do anything.

For ``0.y.z`` we follow Cargo rather than the letter of SemVer item 4 (which allows anything
below 1.0): a ``y`` bump is treated as a major release and a ``z`` bump as a patch, so a
pre-1.0 package still gets a useful guarantee. A pre-release (``1.4.0-rc.1``), as the previous
or the new version, is exempt from the API rules: SemVer item 9 says it promises nothing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from cheng_build.core.errors import InputError
from cheng_build.core.record import dataclass

# semver.org 2.0.0, section 2, 9 and 10: numbers without leading zeros, dot-separated
# pre-release identifiers (numeric ones without leading zeros), build metadata ignored for order.
_NUM = r"0|[1-9]\d*"
_PRE_ID = r"0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*"
_SEMVER = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$",
    re.ASCII,
)


class VersionError(InputError):
    """A version string is not SemVer 2.0.0."""


class Bump(enum.Enum):
    """What kind of release a version step is."""

    MAJOR = "major"
    MINOR = "minor"
    PATCH = "patch"
    NONE = "none"  # same version, or a step backwards


@dataclass(frozen=True, slots=True)
class Version:
    """A parsed SemVer version; compares by SemVer precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()
    build: str = ""

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(self.pre)
        if self.build:
            text += "+" + self.build
        return text

    def _key(self) -> tuple[object, ...]:
        # A release sorts after all of its pre-releases (item 11.3); numeric identifiers sort
        # before alphanumeric ones and numerically among themselves (item 11.4).
        pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre_key)

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Version) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: Version) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: Version) -> bool:
        return self._key() >= other._key()

    def same_precedence(self, other: Version) -> bool:
        """True when the two versions have equal precedence (build metadata ignored)."""
        return self._key() == other._key()


def parse_version(text: object) -> Version:
    """Parse a SemVer 2.0.0 string.

    Raises:
        VersionError: ``text`` is not a string or not valid SemVer (names the text).
    """
    if not isinstance(text, str):
        raise VersionError(f"version must be a string, got {type(text).__name__}",
                           how='write it like "1.4.2"')
    m = _SEMVER.match(text)
    if m is None:
        raise VersionError(f"invalid version {text!r}",
                           why="a version is MAJOR.MINOR.PATCH, optionally -prerelease and +build",
                           how='write it like "1.4.2" or "2.0.0-rc.1"')
    pre = tuple(m.group("pre").split(".")) if m.group("pre") else ()
    return Version(int(m.group("major")), int(m.group("minor")), int(m.group("patch")),
                   pre, m.group("build") or "")


def classify_bump(prev: Version, new: Version) -> Bump:
    """Classify the step from ``prev`` to ``new`` (0.y.z handled the Cargo way)."""
    if new <= prev:
        return Bump.NONE
    if new.major != prev.major:
        return Bump.MAJOR
    if prev.major == 0:
        if new.minor != prev.minor:
            return Bump.MAJOR
        return Bump.PATCH
    if new.minor != prev.minor:
        return Bump.MINOR
    return Bump.PATCH


def _sig_of(entry: object) -> tuple[str, str]:
    """(kind, signature) of an API table value: a Symbol, a mapping or a plain signature."""
    kind = getattr(entry, "kind", None)
    sig = getattr(entry, "signature", None)
    if kind is not None and sig is not None:
        return str(kind), str(sig)
    if isinstance(entry, Mapping):
        return str(entry.get("kind", "")), str(entry.get("signature", ""))
    return "", str(entry)


def check_release(
    prev_api: Mapping[str, object],
    new_api: Mapping[str, object],
    prev_version: str | Version,
    new_version: str | Version,
) -> list[str]:
    """List why ``new_version`` may not be published after ``prev_version``; empty means ok.

    Args:
        prev_api: the previous release's public symbols, name -> Symbol (or a mapping with
            ``kind``/``signature``, or a plain signature string), as :func:`api.extract_api`
            returns or :func:`api.api_from_json` reads.
        new_api: the same for the release being published.
        prev_version: SemVer of the previous release on the channel.
        new_version: SemVer of the new release.

    Returns:
        One line per breaking symbol (sorted by name), or one line when the version does not
        move forward. A major release returns only the latter kind.

    Raises:
        VersionError: a version string is not SemVer.
    """
    prev_v = prev_version if isinstance(prev_version, Version) else parse_version(prev_version)
    new_v = new_version if isinstance(new_version, Version) else parse_version(new_version)
    bump = classify_bump(prev_v, new_v)
    if bump is Bump.NONE:
        return [f"version {new_v} does not follow {prev_v}: a new release needs a higher version"]
    if bump is Bump.MAJOR or prev_v.pre or new_v.pre:
        # A pre-release promises nothing (SemVer item 9), in either direction.
        return []
    reasons: list[str] = []
    for name in sorted(set(prev_api) | set(new_api)):
        if name not in new_api:
            kind, sig = _sig_of(prev_api[name])
            reasons.append(f"removed {kind} {name}: {sig}".replace("  ", " "))
        elif name not in prev_api:
            if bump is Bump.PATCH:
                kind, sig = _sig_of(new_api[name])
                reasons.append(f"added {kind} {name} in a patch release (adding needs a minor "
                               f"release): {sig}".replace("  ", " "))
        else:
            old_kind, old_sig = _sig_of(prev_api[name])
            new_kind, new_sig = _sig_of(new_api[name])
            if (old_kind, old_sig) != (new_kind, new_sig):
                old_text = f"{old_kind} {old_sig}".strip()
                new_text = f"{new_kind} {new_sig}".strip()
                reasons.append(f"changed {name}: {old_text} -> {new_text}")
    return reasons


__all__ = ["Bump", "Version", "VersionError", "check_release", "classify_bump", "parse_version"]
