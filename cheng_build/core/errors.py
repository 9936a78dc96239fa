"""The error tree every layer raises and the CLI maps to messages and exit codes.

A ``ChengError`` carries three parts so a user always learns *what* went wrong, *why*, and *how*
to fix it. The CLI prints ``<command>: <what>`` as the first line (scripts match on it), then the
why and how lines; the library itself never prints or exits.

Two small trees, as in python-tuf: integrity/trust failures (the data is bad or untrusted) and
transport/IO failures (we could not get or store the data). Misuse of the library by its caller is
a plain ``RuntimeError``/``TypeError``, never one of these.
"""

from __future__ import annotations

# Exit codes, documented in one place (DESIGN.md section 3).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class ChengError(Exception):
    """Base of every error meant for a user.

    Args:
        what: one line, no trailing period; becomes ``<command>: <what>``.
        why: optional explanation lines.
        how: optional remedy lines.
        exit_code: 1 for a failed check (default), 2 for bad usage or missing input.
    """

    exit_code: int = EXIT_CHECK_FAILED

    def __init__(
        self,
        what: str,
        *,
        why: str | None = None,
        how: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.how = how
        if exit_code is not None:
            self.exit_code = exit_code

    def lines(self, command: str) -> list[str]:
        """Render as the lines the CLI prints, first line ``<command>: <what>``."""
        out = [f"{command}: {self.what}" if command else self.what]
        if self.why:
            out.extend(f"  why: {line}" if i == 0 else f"       {line}"
                       for i, line in enumerate(self.why.splitlines()))
        if self.how:
            out.extend(f"  how: {line}" if i == 0 else f"       {line}"
                       for i, line in enumerate(self.how.splitlines()))
        return out


class UsageError(ChengError):
    """The command line itself is wrong: unknown flag, missing argument, bad value."""

    exit_code = EXIT_USAGE


class InputError(ChengError):
    """A file the user named is missing, unreadable or malformed (manifest, lock, DAG, key)."""

    exit_code = EXIT_USAGE


# --- integrity / trust ------------------------------------------------------------------------


class IntegrityError(ChengError):
    """Data failed a check: a digest, a signature, a chain link, a policy."""


class DigestMismatchError(IntegrityError):
    """Bytes do not hash to the CID or digest that names them."""


class SignatureError(IntegrityError):
    """A signature is missing, malformed, or does not verify."""


class PolicyError(IntegrityError):
    """A rule refused the operation (single-version, namespace ownership, SemVer, security level)."""


# --- transport / IO ---------------------------------------------------------------------------


class TransportError(ChengError):
    """We could not reach, read or write something (peer, HTTP server, disk)."""


class NotFoundError(TransportError):
    """A block, package, run or file that should exist does not."""


class StoreError(TransportError):
    """The local store could not be written or read."""
