"""The registry log, ``registry.jsonl``: an append-only, hash-chained, signed list of records.

(Over 400 lines because its on-disk format, documented below, is read, verified and appended
under one lock in one place; the checks around the replay are in :mod:`.log_checks`, the
signature workers in :mod:`.sig_check`.)

On-disk format (version 1)
==========================

UTF-8 text, one compact JSON object per line, each line ended by ``\\n``. Line numbers start at 1.
A file whose last byte is not ``\\n`` has a *torn* last line (a writer died mid-append, or the
file was cut): it is refused, never silently dropped, and nothing is appended after it.

Every line has a ``type``:

``publish`` (the existing Cheng tooling's record; all of its keys keep their meaning)
    ``package_id`` (``pkg://cheng/<name>``), ``author_id``, ``channel`` (``edge|stable|lts``),
    ``epoch`` (int >= 0), ``cid``, ``format`` (``dag|tar|source``), ``ast_simhash64`` (16 hex
    digits; an int is accepted on read), ``originality_score`` (0.0-1.0), ``pub_key``
    (``ed25519:<base64>``), ``signature`` (``ed25519:<base64>``, or the existing tooling's
    ``local:...`` placeholder = unsigned), ``created_ts``. Extensions: ``parent`` (the previous
    head's CID on this channel), ``version`` (SemVer), ``api`` (digest of the public-symbol
    table) and ``api_cid`` (that table's JSON in the CAS), ``similar_to`` / ``similar_line`` /
    ``similar_distance`` (the original this package is a high-similarity copy of),
    ``source_addrs`` (``format=source``), ``chunker`` (``format=dag``).
    The signature covers exactly the lock-carried fields (:mod:`cheng_build.trust.canonical`).

``key`` — a change to a namespace's key, signed by ``pub_key`` over every other field:
    ``op = "register"``: ``package_id``, ``author_id``: claims a namespace before its first publish
    (a first publish claims it too). ``op = "rotate"``: ``package_id``, ``author_id``,
    ``pub_key`` (the current, old key), ``new_pub_key``. ``op = "revoke"``: ``revoked_key``
    (signed by itself, or by the current key of ``package_id``); from this line on that key
    signs nothing.

``checkpoint`` — the operator's signed head, signed by ``pub_key`` over every other field:
    ``size`` (= this line's number - 1: it covers every line before it), ``root`` (64 hex digits,
    the RFC 6962 Merkle root of those lines, :mod:`cheng_build.trust.merkle`), ``timestamp`` and
    ``expires`` (Unix seconds), ``operator_id``.

Governance lines (``tag``, ``maintainer``, ``promote``, ``quarantine``, ``release``, ``appeal``,
``decision``) and the publish extension ``parents`` (merge parents)
    Documented at the top of :mod:`cheng_build.trust.gov_lines` (the module that checks their
    shape); their rules are in :mod:`cheng_build.trust.gov_state`, applied by :class:`LogState`
    like every other rule. Each is chained and signed (domain ``cheng.registry.gov.v1``).

The chain
    Lines written by us carry ``seq`` (= their line number) and ``prev`` (``sha256:<hex>`` of the
    previous line's bytes without the newline; for line 1 the digest of the empty string). Lines of
    the existing tooling have neither and may only come before the first chained line. Editing,
    removing or inserting a line breaks the chain at the next line; rewriting the whole tail is
    caught by the operator's checkpoints and by the checkpoint the client remembers.

Ownership and order (replayed in :class:`LogState`)
    The first publisher of a ``package_id`` owns the namespace with its key; a publish by anyone
    else, or by another key, is refused. Per (package, channel), each chained publish's epoch is
    strictly above every earlier one (a channel's head is its highest epoch, a tie going to the
    later line, for the legacy lines that predate this rule).

Appends
    Under ``flock`` on ``registry.jsonl.lock``: re-read the file, refuse a torn tail, replay it,
    build the new line against that state, append it with one ``write`` + ``fsync``. Two
    publishers therefore never interleave, and each sees the other's line before choosing ``seq``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from cheng_build.core.atomic import append_line_locked, file_lock
from cheng_build.core.errors import NotFoundError
from cheng_build.core.record import dataclass
from cheng_build.trust import log_checks, merkle
from cheng_build.trust.checkpoint import Checkpoint, CheckpointMemory
from cheng_build.trust.config import Config, Level, Limits
from cheng_build.trust.keys import Verifier
from cheng_build.trust.log_state import GENESIS_PREV, Fingerprint, LogState, Owner
from cheng_build.trust.registry_entry import (
    CHANNELS,
    FORMATS,
    EntryType,
    KeyOp,
    RegistryEntry,
    SigStatus,
    parse_line,
    signature_status,
    verify_entry_signature,
)
from cheng_build.trust.registry_errors import (
    AppendRefusedError,
    ChainError,
    CheckpointError,
    ExpiredCheckpointError,
    ForkError,
    NamespaceError,
    RegistryError,
    RegistryFormatError,
    RevokedKeyError,
    RollbackError,
    UnsignedError,
)
from cheng_build.trust.sig_check import PARALLEL_MIN, SigCheck, check_sigs, cpus

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor
    from typing import Any

_DEFAULT_LIMITS = Limits()

# --- the log ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    """What verification requires: from a level, or a whole :class:`Config`."""

    level: Level
    require_signature: bool
    operator_key: str | None = None

    @classmethod
    def of(cls, level: Level | Config | str) -> VerifyPolicy:
        """Policy for a level (``"L1"``), or from a config (its level and require_signature)."""
        if isinstance(level, Config):
            return cls(level.level, level.require_signature, level.operator_key)
        lv = Level.parse(level)
        return cls(lv, lv is not Level.L0)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a successful verify found."""

    lines: int
    publishes: int
    checkpoints: int
    warnings: tuple[str, ...]
    newest_checkpoint: Checkpoint | None
    remembered: Checkpoint | None  # the checkpoint this client remembers after this verify


class _Index:
    """Every publish's (package, channel) head and (package, channel, epoch) line, in one pass.

    The same rules as a scan of the log: a head is the highest epoch, a tie going to the later
    line; ``find`` answers the later line of a legacy tie. Only publish lines count (a publish
    line always has a package id, a channel and an int epoch: ``parse_line`` refuses others).
    """

    __slots__ = ("by_epoch", "heads")

    def __init__(self, entries: Iterable[RegistryEntry]) -> None:
        heads: dict[tuple[str, str], RegistryEntry] = {}
        by_epoch: dict[tuple[str, str, int], RegistryEntry] = {}
        publish = EntryType.PUBLISH
        for e in entries:
            if e.type is not publish:
                continue
            d = e.data
            pid, channel, epoch = d["package_id"], d["channel"], d["epoch"]  # parse_line checked
            key = (pid, channel)
            best = heads.get(key)
            if best is None or (epoch or 0) >= (best.epoch or 0):
                heads[key] = e
            by_epoch[(pid, channel, epoch)] = e  # the later line wins a legacy tie
        self.heads = heads
        self.by_epoch = by_epoch


class RegistryLog:
    """A loaded registry: its lines, parsed. ``verify`` checks them; ``append`` adds one."""

    def __init__(self, path: Path, entries: Sequence[RegistryEntry], limits: Limits) -> None:
        self.path = path
        self.entries: tuple[RegistryEntry, ...] = tuple(entries)
        self.limits = limits
        self._ahead: tuple[ThreadPoolExecutor, list[Any], list[int]] | None = None
        self._index: _Index | None = None

    # -- reading ------------------------------------------------------------------------------

    @staticmethod
    def split_lines(data: bytes, path: Path | str) -> list[bytes]:
        """The complete lines of ``data``; a torn last line is refused.

        Raises:
            RegistryFormatError: the last line has no newline.
        """
        if not data:
            return []
        lines = data.split(b"\n")
        tail = lines.pop()
        if tail:
            n = len(lines) + 1
            good = len(data) - len(tail)
            raise RegistryFormatError(
                "truncated last line (no newline at the end)", line=n,
                why=f"{path} ends in {len(tail)} bytes without a newline: a publisher died "
                    "mid-append, or the file was cut",
                how=f"inspect line {n}; if it is a crashed append, cut it off with "
                    f"'cheng-registry repair --registry:{path}' (or 'truncate -s {good} {path}') "
                    "and publish again")
        return lines

    @classmethod
    def from_bytes(cls, data: bytes, path: Path | str = "registry.jsonl",
                   limits: Limits | None = None, *, verify_ahead: bool = False) -> RegistryLog:
        """Parse a whole log held in memory.

        With ``verify_ahead`` (for callers that verify next, as every CLI path does), signature
        checks of parsed chunks start in worker threads while later chunks are still parsed;
        :meth:`verify` then collects them.

        Raises:
            RegistryFormatError: a line is malformed or the last one torn (names the line).
        """
        limits = limits or _DEFAULT_LIMITS
        lines = cls.split_lines(data, path)
        threads = cpus() if verify_ahead else 1
        if threads < 2 or len(lines) < PARALLEL_MIN:
            entries = [parse_line(raw, i, limits) for i, raw in enumerate(lines, 1)]
            return cls(Path(path), entries, limits)
        # Pipeline: parse a chunk, hand its signatures to a worker, parse the next, so parsing
        # (which holds the GIL) overlaps with libsodium (which releases it).
        from concurrent.futures import ThreadPoolExecutor  # lazily: it imports logging

        step = max(256, len(lines) // (threads * 4))
        pool = ThreadPoolExecutor(threads)
        futures: list[Any] = []
        ends: list[int] = []
        entries = []
        try:
            for start in range(0, len(lines), step):
                chunk = [parse_line(raw, i, limits)
                         for i, raw in enumerate(lines[start:start + step], start + 1)]
                entries.extend(chunk)
                futures.append(pool.submit(check_sigs, chunk))
                ends.append(start + len(chunk))
        except BaseException:
            for f in futures:
                f.cancel()
            pool.shutdown(wait=False)
            raise
        log = cls(Path(path), entries, limits)
        log._ahead = (pool, futures, ends)
        return log

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, limits: Limits | None = None,
             missing_ok: bool = False, verify_ahead: bool = False) -> RegistryLog:
        """Read and parse ``registry.jsonl``.

        Raises:
            NotFoundError: the file does not exist (unless ``missing_ok``: an empty log).
            RegistryFormatError: a line is malformed or the last one torn (names the line).
        """
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            if missing_ok:
                return cls(p, [], limits or _DEFAULT_LIMITS)
            raise NotFoundError(f"registry {p} not found",
                                how="publish a package first, or pass --registry:<path>") from None
        return cls.from_bytes(data, p, limits, verify_ahead=verify_ahead)

    def publishes(self, package_id: str | None = None) -> Iterator[RegistryEntry]:
        """Publish lines, optionally of one package, in log order."""
        for e in self.entries:
            if e.type is EntryType.PUBLISH and (package_id is None or e.package_id == package_id):
                yield e

    def _lookup(self) -> _Index:
        # Built on the first look-up, not on load: verify-only callers never pay for it. The
        # entries are a tuple, so the index can never go stale.
        if self._index is None:
            self._index = _Index(self.entries)
        return self._index

    def head(self, package_id: str, channel: str) -> RegistryEntry | None:
        """The channel's head: highest epoch, a tie going to the later line. O(1) after the
        first call (one pass over the log builds the index)."""
        return self._lookup().heads.get((package_id, channel))

    def find(self, package_id: str, channel: str, epoch: int) -> RegistryEntry | None:
        """The publish of ``package_id@channel`` at ``epoch`` (the later line on a legacy tie).
        O(1) after the first call."""
        return self._lookup().by_epoch.get((package_id, channel, epoch))

    def find_cid(self, cid: str) -> list[RegistryEntry]:
        """Every publish of a CID."""
        return [e for e in self.publishes() if e.cid == cid]

    def replay(self, *, operator_key: str | None = None, root_at: int | None = None,
               need_merkle: bool = False) -> LogState:
        """Replay every line's rules (not signatures) into a :class:`LogState`.

        Raises:
            RegistryError: the first line that breaks a rule.
        """
        need = (need_merkle or root_at is not None
                or any(e.type is EntryType.CHECKPOINT for e in self.entries))
        state = LogState(need_merkle=need, operator_key=operator_key, limits=self.limits,
                         root_at=root_at)
        for e in self.entries:
            state.apply(e)
        return state

    def merkle_leaves(self) -> list[bytes]:
        """RFC 6962 leaf hashes of every line."""
        return [merkle.leaf_hash(e.raw) for e in self.entries]

    # -- verification --------------------------------------------------------------------------

    def verify(
        self,
        level: Level | Config | str = Level.L1,
        *,
        memory: CheckpointMemory | bool | None = True,
        now: float | None = None,
        threads: int | None = None,
    ) -> VerifyReport:
        """Check every chain link, signature, ownership rule, epoch and checkpoint.

        Args:
            level: ``L0``/``L1``/``L2``, or a :class:`Config` (its level, require_signature and
                pinned operator key).
            memory: the client's remembered checkpoints: ``True`` = the default trust dir,
                ``False``/``None`` = do not consult or update one, or a :class:`CheckpointMemory`.
            now: the current time (tests pass one; default ``time.time()``).
            threads: signature-checking threads (default: the CPUs available).

        Returns:
            A report with the warnings (tolerated problems at L0) and checkpoints.

        Raises:
            RegistryError: names the first bad line and what is wrong; ``ForkError`` ("registry
                forked") and ``ExpiredCheckpointError`` ("registry checkpoint expired") for the
                log as a whole.
        """
        try:
            policy = VerifyPolicy.of(level)
            mem = CheckpointMemory() if memory is True else (memory or None)
            remembered = mem.recall(self.path) if mem is not None else None
        except BaseException:
            if self._ahead is not None:  # do not leave pipelined checks running for nothing
                self._ahead[0].shutdown(wait=False, cancel_futures=True)
                self._ahead = None
            raise
        operator_key = policy.operator_key or (remembered.pub_key if remembered else None)
        if threads is None:
            threads = cpus()

        # Lines this client already verified with signatures required are bound by the root of
        # the checkpoint it remembers: if the replay below recomputes that same root, their bytes
        # are exactly the ones whose signatures were checked, so checking them again proves
        # nothing new (a fork is caught by the root comparison instead).
        skip = 0
        if remembered is not None and (remembered.verified_with_signatures
                                       or not policy.require_signature):
            skip = min(remembered.size, len(self.entries))
        sigs = SigCheck(self.entries, threads, started=self._ahead, skip=skip)
        self._ahead = None
        state_error: RegistryError | None = None
        try:
            state = self.replay(operator_key=operator_key,
                                root_at=remembered.size if remembered else None)
        except RegistryError as exc:
            state_error = exc
        last = state_error.line if state_error is not None and state_error.line else len(self.entries)
        sig_warnings = log_checks.signature_warnings(self.entries, sigs.failures(), last,
                                                     policy.require_signature)
        if state_error is not None:
            raise state_error
        warnings = state.warnings + sig_warnings
        # The log as a whole: the remembered checkpoint, then the newest checkpoint's expiry.
        if remembered is not None:
            log_checks.check_remembered(self.entries, state, remembered, mem)
        newest = state.checkpoints[-1] if state.checkpoints else None
        warnings += log_checks.check_expiry(policy.level, newest, time.time() if now is None else now)
        kept = log_checks.remember_newest(mem, self.path, newest, policy.require_signature,
                                          remembered, warnings)
        return VerifyReport(lines=state.lines, publishes=state.publishes,
                            checkpoints=len(state.checkpoints), warnings=tuple(warnings),
                            newest_checkpoint=newest, remembered=kept)

    # -- appending -----------------------------------------------------------------------------

    @classmethod
    def append(
        cls,
        path: str | os.PathLike[str],
        build: Callable[[RegistryLog, LogState], Mapping[str, Any]],
        *,
        limits: Limits | None = None,
        need_merkle: bool = False,
    ) -> RegistryEntry:
        """Append one line built against the current state, under the file lock.

        ``build(log, state)`` returns the new line's fields without ``seq``/``prev`` (they are
        added here); it may raise to refuse. The new line is checked against the replayed state
        and its signature verified before a byte is written.

        Raises:
            AppendRefusedError: the new line breaks a rule (nothing is written).
            RegistryError: the log already on disk is broken (torn tail, chain, garbage line).
            StoreError: the file cannot be written (a failed write is truncated away under the
                lock, so nothing partial is left).
        """
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(p):
            log = cls.load(p, limits=limits, missing_ok=True)
            state = log.replay(need_merkle=need_merkle)
            fields = dict(build(log, state))
            n = state.lines + 1
            ordered: dict[str, Any] = {"type": fields.pop("type", "publish"), "seq": n,
                                       "prev": state.last_digest}
            ordered.update(fields)
            raw = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            entry = parse_line(raw, n, log.limits)
            status, why = signature_status(entry, Verifier())
            if status is not SigStatus.VALID:
                raise RuntimeError(f"RegistryLog.append: the new line's signature is {why}")
            try:
                state.apply(entry)
            except RegistryError as exc:
                raise AppendRefusedError(exc) from None
            try:
                append_line_locked(p, raw)
            except OSError as exc:
                from cheng_build.core.errors import StoreError

                raise StoreError(f"cannot append to the registry: {exc.strerror or exc}",
                                 why=f"{p} was rolled back to its {len(log.entries)} complete "
                                     "lines: nothing of the new line was kept",
                                 how="free disk space (or raise the file size limit) and run the "
                                     "command again") from exc
        return entry


def iter_lines(path: str | os.PathLike[str]) -> Iterable[bytes]:
    """The raw complete lines of a registry file (used by proofs).

    Raises:
        RegistryFormatError: torn last line.
    """
    p = Path(path)
    return RegistryLog.split_lines(p.read_bytes(), p)


__all__ = [
    "CHANNELS", "FORMATS", "GENESIS_PREV", "AppendRefusedError", "ChainError", "CheckpointError",
    "EntryType", "ExpiredCheckpointError", "Fingerprint", "ForkError", "KeyOp", "LogState",
    "NamespaceError", "Owner", "RegistryEntry", "RegistryError", "RegistryFormatError",
    "RegistryLog", "RevokedKeyError", "RollbackError", "SigStatus", "UnsignedError",
    "VerifyPolicy", "VerifyReport", "iter_lines", "parse_line", "verify_entry_signature",
]
