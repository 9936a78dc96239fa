"""The one gate every consumer of the registry passes: verify the log, then use it.

``cheng-registry verify`` was once the only tool that checked the log; ``cheng-pkg resolve``,
``verify``, ``fetch``, ``meta``, ``log`` and ``chengc`` read lines from it and trusted them. A
hash-chained line appended by someone who does not own the namespace (or signed by a revoked key,
or a rolled-back or forked log) was then resolved, "verified" and built. Now each of them calls
:func:`load_trusted_registry` and uses only the log it returns.

What it checks is :meth:`RegistryLog.verify` at the configured level: the chain, every signature,
namespace ownership, key revocation, epochs, checkpoints and their expiry, and the checkpoint this
client remembers (fork and rollback detection). Lines covered by the remembered checkpoint are not
signature-checked again when its root is recomputed unchanged, so a warm verify costs a replay, not
a signature check per line.

Levels: at L1 and L2 a log that fails is refused (:class:`UntrustedRegistryError`, exit 1); at L0
(development) it is used with a warning naming what is wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cheng_build.core.errors import IntegrityError
from cheng_build.trust.checkpoint import Checkpoint, CheckpointMemory
from cheng_build.trust.config import Config, Level, Limits
from cheng_build.trust.registry_errors import RegistryError
from cheng_build.trust.registry_log import RegistryLog, VerifyPolicy


class UntrustedRegistryError(IntegrityError):
    """The registry log does not verify at the required level; nothing of it may be used."""

    def __init__(self, path: Path, cause: RegistryError) -> None:
        why = [cause.why] if cause.why else []
        why.append(f"{path} is not the log its owners and operator signed; no line of it is used")
        how = [cause.how] if cause.how else []
        how.append(f"'cheng-registry verify --registry:{path}' shows the details; get the registry "
                   "from its operator again (--level:L0 only warns, for development)")
        super().__init__(f"registry does not verify: {cause.what}", why="\n".join(why),
                         how="\n".join(how))
        self.cause = cause


@dataclass(frozen=True, slots=True)
class TrustedRegistry:
    """A registry log that passed verification (or, at L0, was accepted with ``warnings``)."""

    log: RegistryLog
    level: Level
    warnings: tuple[str, ...]
    newest_checkpoint: Checkpoint | None  # the log's newest checkpoint (expiry matters to stamps)
    remembered: Checkpoint | None  # the checkpoint this client remembers after this verify


def _policy_level(config: Config | Level | str) -> Level:
    return VerifyPolicy.of(config).level


def load_trusted_registry(path: str | os.PathLike[str], config: Config | Level | str, *,
                          memory: CheckpointMemory | bool | None = True,
                          now: float | None = None) -> TrustedRegistry:
    """Load ``registry.jsonl`` and verify it before any line is used.

    Args:
        path: the registry file.
        config: the effective configuration (its level, signature rule, pinned operator key and
            limits), or just a level.
        memory: the remembered checkpoints (``True``: the default trust dir; see
            :meth:`RegistryLog.verify`).
        now: the current time, for checkpoint expiry (tests pass one).

    Returns:
        The verified log with the warnings to show (L0: what failed; any level: tolerated issues).

    Raises:
        NotFoundError: no registry at ``path``.
        RegistryFormatError: a line is malformed or torn (the log cannot be read at all).
        UntrustedRegistryError: at L1/L2, the log breaks a rule (names the line and the rule).
        InputError: the remembered checkpoints file is corrupt.
    """
    limits = config.limits if isinstance(config, Config) else Limits()
    log = RegistryLog.load(path, limits=limits, verify_ahead=True)
    return trust_log(log, config, memory=memory, now=now)


def trust_log(log: RegistryLog, config: Config | Level | str, *,
              memory: CheckpointMemory | bool | None = True,
              now: float | None = None) -> TrustedRegistry:
    """The same gate for a log already parsed, e.g. bytes received from a peer before they
    replace the local file (``RegistryLog.from_bytes(data, path, verify_ahead=True)``; the
    remembered checkpoint is the one of ``log.path``).

    Raises:
        UntrustedRegistryError: at L1/L2, the log breaks a rule.
        InputError: the remembered checkpoints file is corrupt.
    """
    level = _policy_level(config)
    try:
        report = log.verify(config, memory=memory, now=now)
    except RegistryError as exc:
        if level is not Level.L0:
            raise UntrustedRegistryError(log.path, exc) from None
        return TrustedRegistry(log, level, (f"registry does not verify (used anyway at L0): "
                                            f"{exc.what}",), None, None)
    return TrustedRegistry(log, level, report.warnings, report.newest_checkpoint, report.remembered)


__all__ = ["TrustedRegistry", "UntrustedRegistryError", "load_trusted_registry", "trust_log"]
