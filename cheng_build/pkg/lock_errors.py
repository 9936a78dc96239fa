"""Errors of resolve and verify that carry a report: one ``- <package>: ...`` line per finding.

The seed's A1.14 shows the shape scripts match on::

    verify: single-version conflict
    - pkg://cheng/fs: stable@1 bafy... [tar] vs edge@2 bafy... [source]

so these errors print their detail lines right after the first line, before why/how.
"""

from __future__ import annotations

from collections.abc import Sequence

from cheng_build.core.errors import ChengError, IntegrityError, PolicyError, SignatureError


class _Detailed(ChengError):
    """Mixin behaviour: ``details`` lines follow the first line verbatim."""

    details: tuple[str, ...] = ()

    def lines(self, command: str) -> list[str]:
        out = super().lines(command)
        return [out[0], *self.details, *out[1:]]


class SingleVersionConflictError(_Detailed, PolicyError):
    """Two snapshots of one package in the graph (or the lock)."""

    def __init__(self, details: Sequence[str], *, why: str | None = None,
                 how: str | None = None) -> None:
        super().__init__("single-version conflict", why=why, how=how)
        self.details = tuple(details)


class DependencyCycleError(PolicyError):
    """Packages depend on each other in a ring: ``dependency cycle: a -> b -> a``."""

    def __init__(self, cycle: Sequence[str]) -> None:
        super().__init__("dependency cycle: " + " -> ".join(cycle),
                         how="break the cycle: move the shared code into a package both use")
        self.cycle = tuple(cycle)


class SignatureFailedError(_Detailed, SignatureError):
    """One or more locked snapshots carry a signature that does not verify."""

    def __init__(self, details: Sequence[str], *, how: str | None = None) -> None:
        super().__init__("signature failed", how=how or (
            "re-resolve the lock from a trusted registry ('cheng-pkg resolve'); "
            "never edit cid, signature or pub_key by hand"))
        self.details = tuple(details)


class RegistryMismatchError(_Detailed, IntegrityError):
    """A locked snapshot is not what the registry records for its package, channel and epoch."""

    def __init__(self, details: Sequence[str]) -> None:
        super().__init__("registry mismatch", how=(
            "re-resolve against this registry ('cheng-pkg resolve'), or point --registry at "
            "the registry the lock was made from"))
        self.details = tuple(details)


class LockManifestMismatchError(_Detailed, PolicyError):
    """The lock no longer matches the manifest beside it."""

    def __init__(self, details: Sequence[str]) -> None:
        super().__init__("lock does not match manifest",
                         how="run 'cheng-pkg resolve' to update the lock, and commit both")
        self.details = tuple(details)


class DevOnlyError(_Detailed, PolicyError):
    """A dev-only path dependency where the security level forbids it."""

    def __init__(self, details: Sequence[str]) -> None:
        super().__init__("dev-only path dependency",
                         why="level L2 (production) accepts only signed registry snapshots",
                         how="replace the path overrides by channels and re-resolve")
        self.details = tuple(details)


__all__ = ["DependencyCycleError", "DevOnlyError", "LockManifestMismatchError",
           "RegistryMismatchError", "SignatureFailedError", "SingleVersionConflictError"]
