"""The state learnt by replaying the registry log in order: chain, owners, heads, checkpoints.

Rules are those of :mod:`cheng_build.trust.registry_log` (format and rules at its top).
"""

from __future__ import annotations

from cheng_build.core.record import dataclass
from cheng_build.core.sha256 import sha256 as _sha256  # start-up: hashlib only for large logs
from cheng_build.trust import merkle
from cheng_build.trust.checkpoint import Checkpoint
from cheng_build.trust.config import Limits
from cheng_build.trust.gov_state import Governance
from cheng_build.trust.registry_entry import EntryType, KeyOp, RegistryEntry
from cheng_build.trust.registry_errors import (
    ChainError,
    CheckpointError,
    NamespaceError,
    RegistryFormatError,
    RevokedKeyError,
    RollbackError,
)

_PUBLISH = EntryType.PUBLISH
GENESIS_PREV = "sha256:" + _sha256(b"").hexdigest()
_DEFAULT_LIMITS = Limits()


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
        self.publishes = 0  # publish lines so far (the verify report's count)
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
        self.gov = Governance()  # tags, maintainers, promotions, quarantines, appeals

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
        hot = e.hot
        if hot is not None:  # parse_line's reading (HOT_FIELDS order): no dict look-ups
            seq, prev = hot[0], hot[1]
        else:
            seq, prev = e.data.get("seq"), e.data.get("prev")
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
            if prev != self.last_digest:
                raise ChainError("chain broken: prev does not match the digest of line "
                                 f"{n - 1}" if n > 1 else "chain broken: prev of line 1 is not the "
                                 "genesis digest", line=n,
                                 why=f"line {n - 1} was changed after line {n} was written, or lines "
                                     "were removed or inserted" if n > 1 else None)
        # 2. The record's own rules (before it joins the Merkle tree: a checkpoint covers the
        #    lines before it).
        etype = e.type
        if etype is _PUBLISH:
            self._publish(e)
            self.gov.published(e)
        elif etype is EntryType.KEY:
            self._key(e)
        elif etype is EntryType.CHECKPOINT:
            self._checkpoint(e)
        else:
            self.gov.apply(e, self)  # governance lines: cheng_build.trust.gov_state
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

    def _publish(self, e: RegistryEntry) -> None:
        """Ownership, revocation and epoch rules of a publish line, then record it."""
        d = e.data
        hot = e.hot  # parse_line's reading of these fields (HOT_FIELDS order), when it has one
        if hot is not None:
            _seq, _prev, pkg, author, channel, _cid, epoch, _fmt, pub, sig, _score = hot
        else:
            pkg, author, pub, sig = d["package_id"], d["author_id"], d.get("pub_key"), d.get("signature")
            channel, epoch = d["channel"], d["epoch"]
        signed = type(sig) is str and sig.startswith("ed25519:")  # e.signed, inlined (per line)
        if self.revoked:
            self._check_not_revoked(e, pub)
        owner = self.owners.get(pkg)
        if owner is not None:
            if owner.author_id != author:
                raise NamespaceError(f"namespace owned by {owner.author_id}", line=e.line,
                                     why=f"{pkg} was first published by {owner.author_id} "
                                         f"(line {owner.line}); {author} may not publish it",
                                     how="publish under a namespace of your own")
            if owner.pub_key is not None and pub != owner.pub_key and signed:
                raise NamespaceError(f"namespace owned by {owner.author_id}", line=e.line,
                                     why=f"{pkg} is owned by {owner.author_id} with another key "
                                         "than the one that signed this line",
                                     how="sign with the namespace's current key (see rotate-key)")
        key = (pkg, channel)
        head = self.heads.get(key)
        head_epoch: int = -1 if head is None else head.data["epoch"]  # -1: read only with a head
        if head is not None and epoch <= head_epoch:
            if d.get("seq") is not None:
                raise RollbackError(f"epoch {epoch} is not above epoch {head_epoch} of "
                                    f"{pkg}@{key[1]} (line {head.line})", line=e.line,
                                    why="epochs per package and channel strictly increase; a lower "
                                        "one is a rollback",
                                    how=f"publish with --epoch:{head_epoch + 1} or higher")
            # A legacy (unchained) line: history we cannot fix, reported.
            self.warnings.append(f"line {e.line}: epoch {epoch} of {pkg}@{key[1]} does not "
                                 f"increase (line {head.line} has {head_epoch})")
        if head is None or epoch >= head_epoch:
            self.heads[key] = e
        if owner is None:
            self.owners[pkg] = Owner(author, pub if signed else None, e.line)
        elif owner.pub_key is None and signed:
            self.owners[pkg] = Owner(owner.author_id, pub, owner.line)
        if e.ast_simhash64 is not None:
            self._fingerprinted.append(e)
        self.publishes += 1

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
