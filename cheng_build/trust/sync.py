"""Registry sync: take the lines a source has beyond ours, verify them fully, then append them.

What a client does with one source (``pkg/remote`` supplies sources over libp2p and HTTP; any
object with ``name``, ``head``, ``lines`` and ``proof`` will do):

1. ``head()``: the source's line count and its newest checkpoint line (raw bytes).
2. The checkpoint must extend the one this client remembers (size ``m``, root ``r_m``, kept in
   :class:`CheckpointMemory`): ``proof(m, n)`` is an RFC 6962 consistency proof, checked against
   ``r_m`` and the new checkpoint's root *before* a line is downloaded. A source that fails it
   serves a history other than the one this client saw: ``registry forked``, naming both
   checkpoints. Then the checkpoint's signature and operator key (pinned ``operator_key``, else
   the remembered checkpoint's, else trust on first use), and its expiry.
3. ``lines(after, limit)``: the lines after our last one, in pages.
4. Our lines plus theirs are verified as one log (:meth:`RegistryLog.verify`: chain, every
   signature, ownership, epochs, revocations, every checkpoint's root, the remembered
   checkpoint); the checkpoint of step 2 must be the line it claimed to be.
5. Only then the new lines are appended, in one ``write`` + ``fsync`` under the registry's file
   lock (truncated back on failure), and the new checkpoint is remembered.

Nothing is appended unless every step passed. A source that fails a step is named; the caller
tries the next (:func:`sync_registry`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from cheng_build.core.atomic import file_lock
from cheng_build.core.errors import ChengError, IntegrityError, StoreError, TransportError
from cheng_build.trust.checkpoint import Checkpoint, CheckpointMemory
from cheng_build.trust.config import Config, Level
from cheng_build.trust.consistency import verify_consistency
from cheng_build.trust.keys import Verifier
from cheng_build.trust.merkle import ProofError
from cheng_build.trust.registry_entry import EntryType, SigStatus, parse_line, signature_status
from cheng_build.trust.registry_errors import ForkError, RegistryError
from cheng_build.trust.registry_log import RegistryLog
from cheng_build.trust.trusted import UntrustedRegistryError, trust_log

# Lines asked for per request (a source may send fewer; it never may send more).
PAGE_LINES = 4096


@dataclass(frozen=True, slots=True)
class RemoteHead:
    """What a source says its log is: ``size`` lines, the newest checkpoint at ``checkpoint_at``."""

    size: int
    checkpoint_at: int  # 0: the source's log has no checkpoint
    checkpoint_raw: bytes | None


class RegistrySource(Protocol):
    """Where lines come from (``pkg.remote.registry_sources``)."""

    name: str

    def head(self) -> RemoteHead: ...

    def lines(self, after: int, limit: int) -> list[bytes]: ...

    def proof(self, old: int, new: int) -> list[bytes]: ...


class SourceLiedError(IntegrityError):
    """A source served something that does not verify (bad lines, a checkpoint not signed by
    the operator, an expired one); nothing of it was appended."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync did."""

    source: str  # the source used ("" when none was needed)
    appended: int  # lines appended
    size: int  # lines in the local log now
    checkpoint: Checkpoint | None  # the newest checkpoint, now remembered
    refused: tuple[tuple[str, str], ...] = ()  # (source, why) of each source skipped


def _cp_text(size: int, root: str, line: int) -> str:
    return f"{size} lines, root {root[:16]}... (line {line})"


class _StagedMemory(CheckpointMemory):
    """The client's memory, read-only until the lines are on disk: verify may recall, and what
    it would remember is kept here and written only after the append."""

    def __init__(self, real: CheckpointMemory) -> None:
        super().__init__(real.dir)
        self.staged: Checkpoint | None = None

    def remember(self, registry_path: str | os.PathLike[str], cp: Checkpoint) -> bool:
        self.staged = cp
        return True


# How trust_log names a log it accepted at L0 although it failed (trusted.py).
_L0_FAILED = "registry does not verify"


def _refusal(name: str, exc: RegistryError, have: int) -> ChengError:
    """The error for a received log that failed verification."""
    if isinstance(exc, ForkError):
        return ForkError("registry forked", why=f"{name}: {exc.why or exc.what}", how=exc.how)
    if exc.line is not None and exc.line <= have:
        return exc  # our own log is broken: not the source's fault
    return SourceLiedError(f"{name}: its lines do not verify: {exc.what}", why=exc.why,
                           how="nothing was appended")


def _append_all(path: Path, data: bytes, expect_size: int) -> None:
    """Append ``data`` (whole lines) in one write + fsync; on any failure truncate back.

    Raises:
        StoreError: the write failed (the file is back to ``expect_size`` bytes).
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        if start != expect_size:  # a writer that ignored the lock; do not interleave with it
            raise StoreError(f"{path} changed while it was synced",
                             how="run the sync again")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, start)
            with contextlib.suppress(OSError):
                os.fsync(fd)
            raise StoreError(f"cannot append to the registry: {exc.strerror or exc}",
                             why=f"{path} was rolled back; nothing of the sync was kept") from exc
    finally:
        os.close(fd)


def _check_head(head: RemoteHead, source: str, config: Config) -> tuple[Checkpoint | None, str | None]:
    """Parse and check the shape of the source's checkpoint line (its signature comes later)."""
    if head.size < 0 or head.checkpoint_at < 0 or head.checkpoint_at > head.size:
        raise SourceLiedError(f"{source}: its head is inconsistent "
                              f"(checkpoint at line {head.checkpoint_at} of {head.size})")
    if head.checkpoint_at == 0 or head.checkpoint_raw is None:
        return None, None
    try:
        e = parse_line(head.checkpoint_raw, head.checkpoint_at, config.limits)
    except RegistryError as exc:
        raise SourceLiedError(f"{source}: its checkpoint is malformed: {exc.what}") from None
    if e.type is not EntryType.CHECKPOINT:
        raise SourceLiedError(f"{source}: line {head.checkpoint_at} it calls its checkpoint is a "
                              f"{e.type.value} line")
    d = e.data
    cp = Checkpoint(line=head.checkpoint_at, size=d["size"], root=d["root"],
                    timestamp=d["timestamp"], expires=d["expires"],
                    operator_id=d["operator_id"], pub_key=str(e.pub_key))
    status, why = signature_status(e, Verifier())
    return cp, (None if status is SigStatus.VALID else why)


def _check_extends(source: RegistrySource, head: RemoteHead, cp: Checkpoint | None,
                   remembered: Checkpoint | None) -> None:
    """Refuse a source whose newest checkpoint does not extend the one this client remembers."""
    name = source.name
    if remembered is not None and cp is not None:
        m, n = remembered.size, cp.size
        old_root, new_root = bytes.fromhex(remembered.root), bytes.fromhex(cp.root)
        try:
            if n == m:  # the head we know: no proof to ask for (one round trip when current)
                verify_consistency(m, n, old_root, new_root, [])
            elif n > m:
                verify_consistency(m, n, old_root, new_root, source.proof(m, n))
            else:  # the source is behind us: its checkpoint must be a prefix of ours
                verify_consistency(n, m, new_root, old_root, source.proof(n, m))
        except ProofError as exc:
            raise ForkError(
                "registry forked",
                why=f"{name} serves checkpoint {_cp_text(cp.size, cp.root, cp.line)}, which "
                    f"does not extend the checkpoint this client remembers: "
                    f"{_cp_text(remembered.size, remembered.root, remembered.line)} "
                    f"({exc.what}): the history was rewritten",
                how="nothing was appended; sync from another mirror, and tell the operator "
                    f"about {name}") from None
    elif remembered is not None and cp is None and head.size > 0:
        raise SourceLiedError(f"{name}: its log has no checkpoint, but this client has seen "
                              f"{_cp_text(remembered.size, remembered.root, remembered.line)}")


def _check_signer(name: str, head: RemoteHead, cp: Checkpoint | None, bad_sig: str | None,
                  remembered: Checkpoint | None, config: Config, t: float) -> None:
    """Refuse a checkpoint with a bad signature, another signer than the operator, or expired."""
    if cp is not None:
        if bad_sig is not None:
            raise SourceLiedError(f"{name}: its checkpoint's signature is {bad_sig}")
        want = config.operator_key or (remembered.pub_key if remembered else None)
        if want is not None and cp.pub_key != want:
            raise SourceLiedError(f"{name}: its checkpoint is not signed by the operator",
                                  why=f"signed by {cp.pub_key[:28]}..., the operator's key "
                                      f"is {want[:28]}...")
        if config.level is not Level.L0 and t >= cp.expires:
            raise SourceLiedError(f"{name}: its newest checkpoint (line {cp.line}) has expired",
                                  why="a frozen or stale mirror")
    elif config.level is Level.L2 and head.size > 0:
        raise SourceLiedError(f"{name}: its log has no checkpoint (L2 accepts only a log "
                              "its operator signed)")


def _new_lines(source: RegistrySource, head: RemoteHead, cp: Checkpoint | None,
               have: int) -> list[bytes]:
    """The lines after our ``have``, in pages; each page must continue where we are."""
    name = source.name
    fresh: list[bytes] = []
    while have + len(fresh) < head.size:
        want_n = min(PAGE_LINES, head.size - have - len(fresh))
        page = source.lines(have + len(fresh), want_n)
        if not page:
            raise SourceLiedError(f"{name}: announced {head.size} lines but sent only "
                                  f"{have + len(fresh)}")
        if len(page) > want_n or any(b"\n" in ln for ln in page):
            raise SourceLiedError(f"{name}: sent more or other lines than asked for")
        fresh.extend(page)
    if cp is not None and cp.line > have and fresh[cp.line - have - 1] != head.checkpoint_raw:
        raise SourceLiedError(f"{name}: line {cp.line} is not the checkpoint it announced")
    return fresh


def sync_from(path: str | os.PathLike[str], source: RegistrySource, config: Config, *,
              memory: CheckpointMemory | None = None, now: float | None = None) -> SyncResult:
    """Bring ``path`` up to ``source``'s log, or raise without appending anything.

    Raises:
        ForkError: ``registry forked``: the source's log does not extend what this client saw.
        SourceLiedError: the source's checkpoint or lines do not verify.
        TransportError: the source could not be reached or broke off.
        RegistryError: the local log itself is broken.
        StoreError: the append failed (rolled back).
    """
    p = Path(path)
    mem = memory if memory is not None else CheckpointMemory()
    t = time.time() if now is None else now
    name = source.name
    p.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(p):
        try:
            local_bytes = p.read_bytes()
        except FileNotFoundError:
            local_bytes = b""
        local_lines = RegistryLog.split_lines(local_bytes, p)
        have = len(local_lines)
        remembered = mem.recall(p)
        head = source.head()
        cp, bad_sig = _check_head(head, name, config)

        # 1. Does the source's newest checkpoint extend the one we remember? (Before anything
        #    else: a rewritten history is refused whoever signed it.)
        _check_extends(source, head, cp, remembered)
        # 2. The checkpoint's signature, operator and expiry.
        _check_signer(name, head, cp, bad_sig, remembered, config, t)

        # 3. Nothing new: the source's checkpoint, if we hold that line, must be our line.
        if head.size <= have:
            if cp is not None and cp.line <= have and local_lines[cp.line - 1] != head.checkpoint_raw:
                raise ForkError("registry forked",
                                why=f"{name}'s checkpoint at line {cp.line} differs from ours")
            return SyncResult(name, 0, have, remembered)

        # 4. The new lines, in pages; each page must continue where we are.
        fresh = _new_lines(source, head, cp, have)

        # 5. Verify our lines and theirs as one log, against the remembered checkpoint.
        added = b"".join(ln + b"\n" for ln in fresh)
        staged = _StagedMemory(mem)
        try:
            log = RegistryLog.from_bytes(local_bytes + added, p, config.limits, verify_ahead=True)
            # The one gate every consumer passes (trust/trusted.py), on the bytes received.
            trusted = trust_log(log, config, memory=staged, now=t)
        except RegistryError as exc:  # a malformed line (parse)
            raise _refusal(name, exc, have) from None
        except UntrustedRegistryError as exc:
            raise _refusal(name, exc.cause, have) from None
        if trusted.level is Level.L0 and trusted.newest_checkpoint is None and any(
                w.startswith(_L0_FAILED) for w in trusted.warnings):
            # L0 uses a broken local log with a warning; sync never appends one.
            raise SourceLiedError(f"{name}: its lines do not verify",
                                  why=trusted.warnings[0], how="nothing was appended")
        newest_cp = trusted.newest_checkpoint
        if cp is not None and (newest_cp is None or newest_cp.line < cp.line):
            raise SourceLiedError(f"{name}: its checkpoint did not verify in its own log")

        # 6. Append, then remember.
        _append_all(p, added, len(local_bytes))
    newest = newest_cp
    if staged.staged is not None:
        with contextlib.suppress(OSError):  # a read-only home costs the next run's protection only
            mem.remember(p, staged.staged)
        newest = staged.staged
    return SyncResult(name, len(fresh), have + len(fresh), newest)


def sync_registry(path: str | os.PathLike[str], sources: Sequence[RegistrySource], config: Config,
                  *, memory: CheckpointMemory | None = None,
                  now: float | None = None) -> SyncResult:
    """Sync from the first source that passes every check; each one refused is named.

    Raises:
        ForkError: every source failed and one of them serves a forked registry (that one named).
        ChengError: every source failed (the last reason; the others in ``why``).
    """
    refused: list[tuple[str, str]] = []
    fork: ForkError | None = None
    last: ChengError | None = None
    for src in sources:
        try:
            res = sync_from(path, src, config, memory=memory, now=now)
        except ForkError as exc:
            fork = fork or exc
            refused.append((src.name, f"registry forked: {exc.why}"))
            continue
        except (SourceLiedError, TransportError) as exc:
            last = exc
            refused.append((src.name, exc.what + (f" ({exc.why})" if exc.why else "")))
            continue
        return replace(res, refused=tuple(refused))
    if fork is not None:
        raise fork
    if last is None:
        raise TransportError("no registry source given",
                             how="pass --from:<multiaddr|http-url> or set PKG_REGISTRY_FROM")
    raise type(last)(last.what if len(refused) < 2 else f"no source could be used; last: {last.what}",
                     why="\n".join(f"{s}: {w}" for s, w in refused),
                     how="check the addresses in --from / PKG_REGISTRY_FROM")


__all__ = ["PAGE_LINES", "RegistrySource", "RemoteHead", "SourceLiedError", "SyncResult",
           "sync_from", "sync_registry"]
