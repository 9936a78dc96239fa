"""The registry log, ``registry.jsonl``: an append-only, hash-chained, signed list of records.

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

import binascii
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cheng_build.core.atomic import append_line_locked, file_lock
from cheng_build.core.errors import (
    IntegrityError,
    NotFoundError,
    PolicyError,
    SignatureError,
)
from cheng_build.trust import canonical, merkle
from cheng_build.trust.checkpoint import Checkpoint, CheckpointMemory
from cheng_build.trust.config import Config, Level, Limits
from cheng_build.trust.keys import ED25519_PREFIX, LOCAL_PREFIX, Verifier

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

CHANNELS = ("edge", "stable", "lts")
FORMATS = ("dag", "tar", "source")
GENESIS_PREV = "sha256:" + hashlib.sha256(b"").hexdigest()
_sha256 = hashlib.sha256


# --- errors (bad data from outside; misuse by a caller is RuntimeError) ------------------------


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


# --- records ----------------------------------------------------------------------------------


class EntryType(Enum):
    """Kinds of registry line."""

    PUBLISH = "publish"
    KEY = "key"
    CHECKPOINT = "checkpoint"


class KeyOp(Enum):
    """Operations of a ``key`` line."""

    REGISTER = "register"
    ROTATE = "rotate"
    REVOKE = "revoke"


class SigStatus(Enum):
    """What a line's signature turned out to be."""

    VALID = "valid"
    UNSIGNED = "unsigned"  # missing or the existing tooling's ``local:`` placeholder
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One parsed, well-formed registry line. ``data`` is every key of the line, read-only.

    The record's fields are properties over ``data`` (parsing builds only this small object: a
    verify parses every line, so construction cost is per-line overhead).
    """

    line: int
    type: EntryType
    raw: bytes = field(repr=False)
    data: Mapping[str, Any] = field(repr=False, compare=False)  # determined by raw
    ast_simhash64: str | None = None  # normalised to 16 lowercase hex digits

    package_id = property(lambda self: self.data.get("package_id"))
    author_id = property(lambda self: self.data.get("author_id"))
    channel = property(lambda self: self.data.get("channel"))
    epoch = property(lambda self: self.data.get("epoch"))
    cid = property(lambda self: self.data.get("cid"))
    format = property(lambda self: self.data.get("format"))
    pub_key = property(lambda self: self.data.get("pub_key"))
    signature = property(lambda self: self.data.get("signature"))
    created_ts = property(lambda self: self.data.get("created_ts"))
    seq = property(lambda self: self.data.get("seq"))
    prev = property(lambda self: self.data.get("prev"))
    parent = property(lambda self: self.data.get("parent"))
    version = property(lambda self: self.data.get("version"))
    api = property(lambda self: self.data.get("api"))

    @property
    def originality_score(self) -> float | None:
        """``originality_score`` as a float."""
        v = self.data.get("originality_score")
        return None if v is None else float(v)

    @property
    def signed(self) -> bool:
        """Whether the line carries an Ed25519 signature (not whether it verifies)."""
        sig = self.data.get("signature")
        return isinstance(sig, str) and sig.startswith(ED25519_PREFIX)

    @property
    def simhash(self) -> int | None:
        """``ast_simhash64`` as an integer."""
        return int(self.ast_simhash64, 16) if self.ast_simhash64 else None

    def lock_fields(self) -> dict[str, Any]:
        """The fields a lock entry carries for this publish (signed set + key + signature)."""
        out = canonical.normalize_publish_fields(self.data)
        for k in ("pub_key", "signature"):
            if self.data.get(k) is not None:
                out[k] = self.data[k]
        return out


def _req_str(d: Mapping[str, Any], key: str, line: int, *, optional: bool = False) -> str | None:
    v = d.get(key)
    if v is None:
        if optional:
            return None
        raise RegistryFormatError(f"missing {key}", line=line)
    if not isinstance(v, str) or not v:
        raise RegistryFormatError(f"{key} must be a non-empty string", line=line)
    return v


def _req_int(d: Mapping[str, Any], key: str, line: int, *, optional: bool = False) -> int | None:
    v = d.get(key)
    if v is None:
        if optional:
            return None
        raise RegistryFormatError(f"missing {key}", line=line)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise RegistryFormatError(f"{key} must be a non-negative integer", line=line)
    return v


_HEX16 = canonical.is_canonical_simhash
_PUBLISH_STR_REQUIRED = ("package_id", "author_id", "channel", "cid")
_PUBLISH_STR_OPTIONAL = ("format", "pub_key", "parent", "version", "api", "prev")


def parse_line(raw: bytes, line: int, limits: Limits | None = None) -> RegistryEntry:
    """Parse one line (without its newline) and check its shape.

    Raises:
        RegistryFormatError: not a well-formed record; the message names the line.
    """
    limits = limits or _DEFAULT_LIMITS
    if len(raw) > limits.max_line_bytes:
        raise RegistryFormatError(f"line is {len(raw)} bytes, over the {limits.max_line_bytes} limit",
                                  line=line)
    try:
        d = json.loads(raw)
    except UnicodeDecodeError:
        raise RegistryFormatError("not UTF-8 text", line=line) from None
    except json.JSONDecodeError as exc:
        if not raw.strip():
            raise RegistryFormatError("empty line", line=line,
                                      how="the log has no empty lines; this one was inserted by "
                                          "hand") from None
        raise RegistryFormatError(f"not JSON ({exc.msg} at column {exc.colno})", line=line) from None
    except RecursionError:
        raise RegistryFormatError("JSON nested too deeply", line=line) from None
    if type(d) is not dict:
        raise RegistryFormatError("not a JSON object", line=line)
    kind = d.get("type", "publish")
    if kind == "publish":
        etype = EntryType.PUBLISH
    else:
        try:
            etype = EntryType(kind)
        except (ValueError, TypeError):
            raise RegistryFormatError(f"unknown record type {str(kind)[:40]!r}", line=line) from None
    seq = d.get("seq")
    if seq is not None and (type(seq) is not int or seq < 0):
        raise RegistryFormatError("seq must be a non-negative integer", line=line)
    if (seq is None) != (d.get("prev") is None):
        raise RegistryFormatError("seq and prev must appear together", line=line)
    sig = d.get("signature")
    if sig is not None and type(sig) is not str:
        raise RegistryFormatError("signature must be a string", line=line)
    created = d.get("created_ts")
    if created is not None and type(created) is not str and type(created) is not int:
        raise RegistryFormatError("created_ts must be a string or integer", line=line)
    if etype is EntryType.PUBLISH:
        for key in _PUBLISH_STR_REQUIRED:
            v = d.get(key)
            if type(v) is not str or not v:
                raise RegistryFormatError(f"missing {key}" if v is None else
                                          f"{key} must be a non-empty string", line=line)
        for key in _PUBLISH_STR_OPTIONAL:
            v = d.get(key)
            if v is not None and (type(v) is not str or not v):
                raise RegistryFormatError(f"{key} must be a non-empty string", line=line)
        pkg = d["package_id"]
        if not pkg.startswith("pkg://") or len(pkg) <= 6:
            raise RegistryFormatError(f"package_id {pkg[:60]!r} is not pkg://<namespace>/<name>",
                                      line=line)
        if d["channel"] not in CHANNELS:
            raise RegistryFormatError(f"channel {d['channel'][:20]!r} is not one of "
                                      f"{', '.join(CHANNELS)}", line=line)
        fmt = d.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise RegistryFormatError(f"format {fmt[:20]!r} is not one of {', '.join(FORMATS)}",
                                      line=line)
        epoch = d.get("epoch")
        if type(epoch) is not int or epoch < 0:
            raise RegistryFormatError("missing epoch" if epoch is None else
                                      "epoch must be a non-negative integer", line=line)
        simhash = d.get("ast_simhash64")
        score = d.get("originality_score")
        try:
            # Inline fast checks for the forms publish writes; the canonical helpers decide
            # (and explain) everything else.
            if simhash is not None and not (type(simhash) is str and _HEX16(simhash)):
                simhash = canonical.simhash_hex(simhash)
            if score is not None and not (type(score) is float and 0.0 <= score <= 1.0):
                canonical.check_score(score)
        except canonical.CanonicalError as exc:
            raise RegistryFormatError(exc.what, line=line) from None
        addrs = d.get("source_addrs")
        if addrs is not None and (type(addrs) is not list or len(addrs) > limits.max_source_addrs
                                  or not all(type(a) is str for a in addrs)):
            raise RegistryFormatError("source_addrs must be a short list of strings", line=line)
        return RegistryEntry(line, etype, raw, MappingProxyType(d), simhash)
    if seq is None:
        raise RegistryFormatError(f"{etype.value} line without seq/prev", line=line)
    _req_str(d, "prev", line)
    if d.get("pub_key") is None or sig is None:
        raise RegistryFormatError(f"{etype.value} line must carry pub_key and signature", line=line)
    _req_str(d, "pub_key", line)
    if etype is EntryType.KEY:
        op = d.get("op")
        if op not in ("register", "rotate", "revoke"):
            raise RegistryFormatError(f"key op {str(op)[:20]!r} is not register, rotate or revoke",
                                      line=line)
        if op == "register":
            _req_str(d, "package_id", line)
            _req_str(d, "author_id", line)
        elif op == "rotate":
            _req_str(d, "package_id", line)
            _req_str(d, "new_pub_key", line)
        else:
            _req_str(d, "revoked_key", line)
            _req_str(d, "package_id", line, optional=True)
        _req_str(d, "author_id", line, optional=True)
        return RegistryEntry(line, etype, raw, MappingProxyType(d))
    for key in ("size", "timestamp", "expires"):
        _req_int(d, key, line)
    root = _req_str(d, "root", line)
    assert root is not None
    if len(root) != 64 or any(c not in "0123456789abcdef" for c in root):
        raise RegistryFormatError("checkpoint root must be 64 lowercase hex digits", line=line)
    _req_str(d, "operator_id", line)
    return RegistryEntry(line, etype, raw, MappingProxyType(d))


_DEFAULT_LIMITS = Limits()


def _signature_status(entry: RegistryEntry, verifier: Verifier) -> tuple[SigStatus, str]:
    """Check one line's signature. Returns (status, reason)."""
    sig = entry.signature
    if not sig or sig.startswith(LOCAL_PREFIX):
        return SigStatus.UNSIGNED, ("unsigned (the existing tooling's local: placeholder signature)"
                                    if sig else "unsigned (no signature)")
    if not sig.startswith(ED25519_PREFIX):
        return SigStatus.INVALID, "signature is neither ed25519: nor local:"
    if entry.pub_key is None:
        return SigStatus.INVALID, "signed line without pub_key"
    try:
        if entry.type is EntryType.PUBLISH:
            msg = canonical.publish_payload(entry.data)
        else:
            body = {k: v for k, v in entry.data.items() if k != "signature"}
            msg = (canonical.key_payload(body) if entry.type is EntryType.KEY
                   else canonical.checkpoint_payload(body))
        verifier.verify(entry.pub_key, msg, sig)
    except (SignatureError, canonical.CanonicalError) as exc:
        return SigStatus.INVALID, exc.what
    return SigStatus.VALID, ""


def verify_entry_signature(fields: Mapping[str, Any]) -> None:
    """Check a publish signature from the lock-carried fields alone (a lock entry, a meta file).

    Args:
        fields: at least ``pub_key``, ``signature`` and the signed fields that were present.

    Raises:
        UnsignedError: the signature is missing or a ``local:`` placeholder.
        SignatureError: malformed, or it does not verify.
    """
    sig = fields.get("signature")
    if not isinstance(sig, str) or not sig or sig.startswith(LOCAL_PREFIX):
        raise UnsignedError(f"{fields.get('package_id', 'entry')} is unsigned",
                            why="local: placeholder signatures are accepted only at L0")
    pub = fields.get("pub_key")
    if not isinstance(pub, str):
        raise SignatureError(f"{fields.get('package_id', 'entry')} has no pub_key")
    try:
        msg = canonical.publish_payload(fields)
    except canonical.CanonicalError as exc:
        raise SignatureError(exc.what) from None
    Verifier().verify(pub, msg, sig, what=f"signature of {fields.get('package_id', 'entry')}")


# --- verified state --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Owner:
    """Who owns a namespace: the first publisher, with the key it signed with."""

    author_id: str
    pub_key: str | None  # None while only unsigned (legacy) lines exist
    line: int


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A published package's SimHash, for the originality check."""

    line: int
    package_id: str
    simhash: int


class LogState:
    """Everything learnt by replaying the log in order; refuses a line that breaks a rule.

    As python-tuf's trusted metadata set: one object holds the verified state and ``apply`` only
    accepts the next line. Feeding lines out of order is a caller bug (``RuntimeError``); a line
    that breaks a rule is a :class:`RegistryError` naming it.
    """

    def __init__(self, *, need_merkle: bool = True, operator_key: str | None = None,
                 limits: Limits | None = None, root_at: int | None = None) -> None:
        self.limits = limits or _DEFAULT_LIMITS
        self._max_lines = self.limits.max_lines
        self.lines = 0
        self.last_digest = GENESIS_PREV
        self.chain_start: int | None = None
        self.owners: dict[str, Owner] = {}
        self.revoked: dict[str, int] = {}
        self.heads: dict[tuple[str, str], RegistryEntry] = {}
        self._fingerprinted: list[RegistryEntry] = []
        self.checkpoints: list[Checkpoint] = []
        self.operator_key = operator_key
        self.warnings: list[str] = []
        self.need_merkle = need_merkle
        self.merkle = merkle.MerkleAccumulator()
        self.root_at = root_at  # capture the Merkle root at this size (the remembered checkpoint)
        self.captured_root: str | None = None

    @property
    def fingerprints(self) -> list[Fingerprint]:
        """Every published fingerprint so far, in log order (built on demand: only publish
        needs them, and verify should not pay for it)."""
        return [Fingerprint(e.line, e.data["package_id"], int(e.ast_simhash64, 16))
                for e in self._fingerprinted if e.ast_simhash64 is not None]

    def apply(self, e: RegistryEntry) -> None:
        """Accept the next line, or raise naming it.

        Raises:
            RuntimeError: ``e`` is not the next line (caller bug).
            RegistryError: the line breaks the chain, ownership, epoch or checkpoint rules.
        """
        n = e.line
        if n != self.lines + 1:
            raise RuntimeError(f"LogState.apply: got line {n}, expected {self.lines + 1}")
        if n > self._max_lines:
            raise RegistryFormatError(f"log is longer than {self.limits.max_lines} lines", line=n)
        # 1. The chain (seq, prev).
        seq = e.data.get("seq")
        if seq is None:
            if self.chain_start is not None:
                raise ChainError("line has no seq/prev, but the chain started at line "
                                 f"{self.chain_start}", line=n,
                                 why="every line after the first chained one must be chained; "
                                     "this one was added by other tooling or by hand")
        else:
            if self.chain_start is None:
                self.chain_start = n
            if seq != n:
                raise ChainError(f"seq is {seq}, expected {n}", line=n,
                                 why="lines were removed or inserted before this one")
            if e.data["prev"] != self.last_digest:
                raise ChainError("chain broken: prev does not match the digest of line "
                                 f"{n - 1}" if n > 1 else "chain broken: prev of line 1 is not the "
                                 "genesis digest", line=n,
                                 why=f"line {n - 1} was changed after line {n} was written, or lines "
                                     "were removed or inserted" if n > 1 else None)
        # 2. The record's own rules (before it joins the Merkle tree: a checkpoint covers the
        #    lines before it).
        if e.type is EntryType.PUBLISH:
            self._publish(e)
        elif e.type is EntryType.KEY:
            self._key(e)
        else:
            self._checkpoint(e)
        raw = e.raw
        self.last_digest = "sha256:" + _sha256(raw).hexdigest()
        if self.need_merkle:
            self.merkle.add(_sha256(b"\x00" + raw).digest())  # merkle.leaf_hash, inlined
            if self.root_at == self.merkle.size:
                self.captured_root = self.merkle.root().hex()
        self.lines = n

    def _check_not_revoked(self, e: RegistryEntry, key: str | None) -> None:
        if key is not None and key in self.revoked and e.signed:
            raise RevokedKeyError(f"key revoked at line {self.revoked[key]}", line=e.line,
                                  why=f"{key[:20]}... was revoked and may not sign anything after",
                                  how="publish with the namespace's current key")

    def check_publish(self, e: RegistryEntry) -> None:
        """Ownership, revocation and epoch rules of a publish line, without changing state.

        Raises:
            NamespaceError, RevokedKeyError, RollbackError: as named.
        """
        d = e.data
        pkg, author, pub = d["package_id"], d["author_id"], d.get("pub_key")
        if self.revoked:
            self._check_not_revoked(e, pub)
        owner = self.owners.get(pkg)
        if owner is not None:
            if owner.author_id != author:
                raise NamespaceError(f"namespace owned by {owner.author_id}", line=e.line,
                                     why=f"{e.package_id} was first published by {owner.author_id} "
                                         f"(line {owner.line}); {e.author_id} may not publish it",
                                     how="publish under a namespace of your own")
            if owner.pub_key is not None and pub != owner.pub_key and e.signed:
                raise NamespaceError(f"namespace owned by {owner.author_id}", line=e.line,
                                     why=f"{e.package_id} is owned by {owner.author_id} with another "
                                         "key than the one that signed this line",
                                     how="sign with the namespace's current key (see rotate-key)")
        head = self.heads.get((pkg, d["channel"]))
        if head is not None and d["epoch"] <= head.data["epoch"] and d.get("seq") is not None:
            raise RollbackError(f"epoch {e.epoch} is not above epoch {head.epoch} of "
                                f"{e.package_id}@{e.channel} (line {head.line})", line=e.line,
                                why="epochs per package and channel strictly increase; a lower one "
                                    "is a rollback",
                                how=f"publish with --epoch:{head.epoch + 1} or higher")

    def _publish(self, e: RegistryEntry) -> None:
        self.check_publish(e)
        d = e.data
        key = (d["package_id"], d["channel"])
        head = self.heads.get(key)
        if head is not None and d["epoch"] <= head.data["epoch"]:
            # Only legacy (unchained) lines get here: check_publish refuses chained ones.
            self.warnings.append(f"line {e.line}: epoch {e.epoch} of {e.package_id}@{e.channel} "
                                 f"does not increase (line {head.line} has {head.epoch})")
        if head is None or d["epoch"] >= head.data["epoch"]:
            self.heads[key] = e
        owner = self.owners.get(key[0])
        if owner is None:
            self.owners[key[0]] = Owner(d["author_id"], d.get("pub_key") if e.signed else None, e.line)
        elif owner.pub_key is None and e.signed:
            self.owners[key[0]] = Owner(owner.author_id, d.get("pub_key"), owner.line)
        if e.ast_simhash64 is not None:
            self._fingerprinted.append(e)

    def _key(self, e: RegistryEntry) -> None:
        d = e.data
        self._check_not_revoked(e, e.pub_key)
        if d["op"] == KeyOp.REGISTER.value:
            pkg = d["package_id"]
            owner = self.owners.get(pkg)
            if owner is not None:
                raise NamespaceError(f"namespace owned by {owner.author_id}", line=e.line,
                                     why=f"{pkg} was claimed at line {owner.line}")
            self.owners[pkg] = Owner(d["author_id"], e.pub_key, e.line)
        elif d["op"] == KeyOp.ROTATE.value:
            pkg = d["package_id"]
            owner = self.owners.get(pkg)
            if owner is None:
                raise NamespaceError(f"rotation of {pkg}, which nobody owns yet", line=e.line)
            if owner.pub_key is not None and e.pub_key != owner.pub_key:
                raise NamespaceError(f"namespace owned by {owner.author_id}", line=e.line,
                                     why=f"the rotation of {pkg} is not signed by its current key")
            if e.author_id is not None and e.author_id != owner.author_id:
                raise NamespaceError(f"namespace owned by {owner.author_id}", line=e.line)
            new = d["new_pub_key"]
            if new in self.revoked:
                raise RevokedKeyError(f"rotation to a key revoked at line {self.revoked[new]}",
                                      line=e.line)
            self.owners[pkg] = Owner(owner.author_id, new, owner.line)
        else:
            target = d["revoked_key"]
            pkg = d.get("package_id")
            owner = self.owners.get(pkg) if pkg else None
            if e.pub_key != target and (owner is None or owner.pub_key != e.pub_key):
                raise NamespaceError("revocation signed by neither the key itself nor the "
                                     "namespace's current key", line=e.line)
            self.revoked.setdefault(target, e.line)

    def _checkpoint(self, e: RegistryEntry) -> None:
        d = e.data
        n = e.line
        if d["size"] != n - 1:
            raise CheckpointError(f"checkpoint size {d['size']} is not {n - 1} (the lines before it)",
                                  line=n)
        if not self.need_merkle:
            raise RuntimeError("LogState: a checkpoint needs need_merkle=True")
        if self.merkle.root().hex() != d["root"]:
            raise CheckpointError(f"checkpoint root does not match lines 1-{n - 1}", line=n,
                                  why="a line before it was changed after the operator signed")
        if d["expires"] <= d["timestamp"]:
            raise CheckpointError("checkpoint expires before it was made", line=n)
        if d["expires"] - d["timestamp"] > self.limits.max_checkpoint_ttl_s:
            raise CheckpointError("checkpoint is valid for longer than "
                                  f"{self.limits.max_checkpoint_ttl_s} s", line=n)
        if self.checkpoints and d["timestamp"] < self.checkpoints[-1].timestamp:
            raise CheckpointError("checkpoint timestamp goes backwards "
                                  f"(line {self.checkpoints[-1].line})", line=n)
        if self.operator_key is None:
            self.operator_key = e.pub_key  # trust on first use, remembered with the checkpoint
        elif e.pub_key != self.operator_key:
            raise CheckpointError("checkpoint signed by an unknown operator key", line=n,
                                  why=f"expected {self.operator_key[:24]}..., got {str(e.pub_key)[:24]}...",
                                  how="pin the right key with [registry] operator_key / "
                                      "PKG_OPERATOR_KEY")
        assert e.pub_key is not None
        self.checkpoints.append(Checkpoint(line=n, size=d["size"], root=d["root"],
                                           timestamp=d["timestamp"], expires=d["expires"],
                                           operator_id=d["operator_id"], pub_key=e.pub_key))


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


_PARALLEL_MIN = 512


def _cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _check_sigs(entries: Sequence[RegistryEntry]) -> list[tuple[int, str]]:
    """(line, reason) of every line in ``entries`` whose signature is not valid."""
    verifier = Verifier()
    check, public, b64 = verifier.check, verifier.public, binascii.a2b_base64
    publish = EntryType.PUBLISH
    payload = canonical.publish_payload
    bad = []
    for e in entries:
        # Fast path for the common case, a well-formed signed publish line; anything unusual
        # (and every failure) is decided, with its reason, by _signature_status.
        d = e.data
        sig = d.get("signature")
        if e.type is publish and type(sig) is str and len(sig) == 96 and sig.startswith("ed25519:"):
            try:
                if check(public(d["pub_key"]), payload(d), b64(sig[8:], strict_mode=True)):
                    continue
            except (KeyError, ValueError, TypeError, SignatureError, canonical.CanonicalError):
                pass
        status, why = _signature_status(e, verifier)
        if status is not SigStatus.VALID:
            bad.append((e.line, why))
    return bad


class _SigCheck:
    """Signature checks running beside the rule replay.

    libsodium releases the GIL (PyNaCl's cffi binding), so with several CPUs the chunks verify in
    worker threads while the main thread replays the chain and rules; with one CPU (or a short
    log) they run inline when asked for.
    """

    def __init__(self, entries: Sequence[RegistryEntry], threads: int, *,
                 started: tuple[ThreadPoolExecutor, list[Any], list[int]] | None = None,
                 skip: int = 0) -> None:
        self._skip = skip
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Any] = []
        if started is not None:
            self._pool, self._futures, ends = started
            if skip:
                # Chunks wholly inside the skipped prefix need not run (those already running
                # finish; their results are ignored).
                for f, chunk_end in zip(self._futures, ends, strict=True):
                    if chunk_end <= skip:
                        f.cancel()
        entries = entries[skip:]
        self._entries = entries
        if started is None and threads > 1 and len(entries) >= _PARALLEL_MIN:
            from concurrent.futures import ThreadPoolExecutor  # lazily: it imports logging

            step = -(-len(entries) // threads)
            self._pool = ThreadPoolExecutor(threads)
            self._futures = [self._pool.submit(_check_sigs, entries[i:i + step])
                             for i in range(0, len(entries), step)]

    def failures(self) -> list[tuple[int, str]]:
        """Every bad line past the skipped prefix, in line order."""
        if self._pool is None:
            return _check_sigs(self._entries)
        try:
            out: list[tuple[int, str]] = []
            for f in self._futures:
                if not f.cancelled():
                    out.extend(x for x in f.result() if x[0] > self._skip)
            return sorted(out)
        finally:
            self._pool.shutdown()


class RegistryLog:
    """A loaded registry: its lines, parsed. ``verify`` checks them; ``append`` adds one."""

    def __init__(self, path: Path, entries: Sequence[RegistryEntry], limits: Limits) -> None:
        self.path = path
        self.entries: tuple[RegistryEntry, ...] = tuple(entries)
        self.limits = limits
        self._ahead: tuple[ThreadPoolExecutor, list[Any], list[int]] | None = None

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
                    f"'truncate -s {good} {path}' and publish again")
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
        threads = _cpus() if verify_ahead else 1
        if threads < 2 or len(lines) < _PARALLEL_MIN:
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
                futures.append(pool.submit(_check_sigs, chunk))
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

    def head(self, package_id: str, channel: str) -> RegistryEntry | None:
        """The channel's head: highest epoch, a tie going to the later line."""
        best: RegistryEntry | None = None
        for e in self.publishes(package_id):
            if e.channel == channel and (best is None or (e.epoch or 0) >= (best.epoch or 0)):
                best = e
        return best

    def find(self, package_id: str, channel: str, epoch: int) -> RegistryEntry | None:
        """The publish of ``package_id@channel`` at ``epoch`` (the later line on a legacy tie)."""
        found = None
        for e in self.publishes(package_id):
            if e.channel == channel and e.epoch == epoch:
                found = e
        return found

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
            threads = _cpus()

        # Lines this client already verified with signatures required are bound by the root of
        # the checkpoint it remembers: if the replay below recomputes that same root, their bytes
        # are exactly the ones whose signatures were checked, so checking them again proves
        # nothing new (a fork is caught by the root comparison instead).
        skip = 0
        if remembered is not None and (remembered.verified_with_signatures
                                       or not policy.require_signature):
            skip = min(remembered.size, len(self.entries))
        sigs = _SigCheck(self.entries, threads, started=self._ahead, skip=skip)
        self._ahead = None
        state_error: RegistryError | None = None
        try:
            state = self.replay(operator_key=operator_key,
                                root_at=remembered.size if remembered else None)
        except RegistryError as exc:
            state_error = exc
        last = state_error.line if state_error is not None and state_error.line else len(self.entries)
        warnings: list[str] = []
        sig_bad: tuple[RegistryEntry, str] | None = None
        for line, why in sigs.failures():
            if line > last:
                break
            e = self.entries[line - 1]
            if e.type is EntryType.PUBLISH and not policy.require_signature:
                warnings.append(f"line {line}: {why}")  # L0: tolerated, reported
                continue
            sig_bad = (e, why)
            break
        if sig_bad is not None:
            e, why = sig_bad
            what = why if why.startswith("unsigned") else f"signature failed: {why}"
            raise UnsignedError(what, line=e.line,
                                why="the existing tooling's local: placeholders are accepted only at "
                                    "L0" if why.startswith("unsigned") else
                                    "the signed fields were changed, or another key signed them",
                                how="re-publish it signed (--priv:<key>), or verify at --level:L0 "
                                    "for development" if e.type is EntryType.PUBLISH else None)
        if state_error is not None:
            raise state_error
        warnings = state.warnings + warnings

        # The log as a whole: the remembered checkpoint, then the newest checkpoint's expiry.
        if remembered is not None:
            if state.lines < max(remembered.size, remembered.line):
                raise ForkError("registry forked",
                                why=f"this client saw a checkpoint of {remembered.size} lines "
                                    f"(root {remembered.root[:16]}...) at line {remembered.line}; the "
                                    "log now has only "
                                    f"{state.lines}: history was rolled back or rewritten",
                                how="get the registry from its operator again; if the operator "
                                    f"really restarted it, delete its entry in {mem.file if mem else ''}")
            at = self.entries[remembered.line - 1] if remembered.line else None
            if state.captured_root != remembered.root or (
                    at is not None and (at.type is not EntryType.CHECKPOINT
                                        or at.data.get("root") != remembered.root)):
                raise ForkError("registry forked",
                                why=f"its first {remembered.size} lines do not have the root of the "
                                    "checkpoint this client remembers: history was rewritten",
                                how="get the registry from its operator again; compare with "
                                    "another client's copy")
        newest = state.checkpoints[-1] if state.checkpoints else None
        t = time.time() if now is None else now
        if policy.level is not Level.L0:
            if newest is not None and t >= newest.expires:
                raise ExpiredCheckpointError(
                    "registry checkpoint expired",
                    why=f"the newest checkpoint (line {newest.line}) expired at "
                        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(newest.expires))}: "
                        "the log may be frozen at an old state",
                    how="ask the operator for a fresh checkpoint ('cheng-registry checkpoint')")
            if newest is None and policy.level is Level.L2:
                raise CheckpointError("registry has no checkpoint",
                                      why="L2 accepts only a log its operator signed",
                                      how="run 'cheng-registry checkpoint --priv:<operator key>'")
        if newest is not None and t >= newest.expires:
            warnings.append(f"the newest checkpoint (line {newest.line}) has expired")
        kept = remembered
        if mem is not None and newest is not None:
            fresh = replace(newest, verified_with_signatures=policy.require_signature)
            try:
                if mem.remember(self.path, fresh):
                    kept = fresh
            except OSError as exc:
                # The log itself verified; a read-only home (CI containers) only costs the
                # fork protection of the next run, so say so instead of failing this one.
                warnings.append(f"cannot remember the checkpoint in {mem.file}: {exc.strerror or exc}")
        return VerifyReport(lines=state.lines, publishes=sum(1 for _ in self.publishes()),
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
            OSError: the file cannot be written (nothing partial is left: one write + fsync).
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
            status, why = _signature_status(entry, Verifier())
            if status is not SigStatus.VALID:
                raise RuntimeError(f"RegistryLog.append: the new line's signature is {why}")
            try:
                state.apply(entry)
            except RegistryError as exc:
                raise AppendRefusedError(exc) from None
            append_line_locked(p, raw)
        return entry


def iter_lines(path: str | os.PathLike[str]) -> Iterable[bytes]:
    """The raw complete lines of a registry file (used by proofs).

    Raises:
        RegistryFormatError: torn last line.
    """
    p = Path(path)
    return RegistryLog.split_lines(p.read_bytes(), p)
