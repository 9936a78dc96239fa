"""Errors of the registry log: bad data from outside, each naming the first bad line.

Misuse of the library by its caller is a plain ``RuntimeError``, never one of these.
"""

from __future__ import annotations

from cheng_build.core.errors import IntegrityError, PolicyError, SignatureError

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any


class RegistryError(IntegrityError):
    """Something in the registry is wrong; ``line`` names the first bad line when known."""

    def __init__(self, what: str, *, line: int | None = None, **kwargs: Any) -> None:
        self.bare = what
        self.line = line
        super().__init__(f"line {line}: {what}" if line else what, **kwargs)


class RegistryFormatError(RegistryError):
    """A line is not a well-formed record (garbage, wrong types, torn)."""


class ChainError(RegistryError):
    """``seq``/``prev`` do not link this line to the one before."""


class RollbackError(RegistryError):
    """An epoch does not increase."""


class NamespaceError(RegistryError, PolicyError):
    """A publish or key change by someone who does not own the namespace."""


class RevokedKeyError(RegistryError, PolicyError):
    """A revoked key signed something after its revocation."""


class CheckpointError(RegistryError):
    """A checkpoint's root, size, times or operator key are wrong."""


class ExpiredCheckpointError(CheckpointError):
    """The newest checkpoint has expired (a freeze attack, or an operator who stopped signing)."""


class ForkError(CheckpointError):
    """The log does not extend the checkpoint this client remembers."""


class AppendRefusedError(RegistryError, PolicyError):
    """The line being appended breaks a rule (ownership, revocation, epoch, checkpoint).

    ``what`` carries no line prefix: the line does not exist yet. ``cause`` is the rule's error.
    """

    def __init__(self, cause: RegistryError) -> None:
        super().__init__(cause.bare, why=cause.why, how=cause.how)
        self.cause = cause


class UnsignedError(RegistryError, SignatureError):
    """A line is unsigned (``local:`` placeholder) or its signature does not verify."""
