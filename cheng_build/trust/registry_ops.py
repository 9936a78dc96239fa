"""Signed non-publish appends: key rotation, key revocation, operator checkpoints, proofs.

Each builds its line against the state replayed under the log's file lock
(:meth:`RegistryLog.append`), so the rules are checked on exactly the log the line joins.
Line formats: :mod:`cheng_build.trust.registry_log`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cheng_build.core.errors import InputError, PolicyError
from cheng_build.trust import canonical, merkle
from cheng_build.trust.checkpoint import DEFAULT_TTL_S
from cheng_build.trust.keys import KeyPair, Verifier, decode_ed25519
from cheng_build.trust.registry_log import (
    AppendRefusedError,
    EntryType,
    LogState,
    RegistryEntry,
    RegistryLog,
)

PROOF_FORMAT = "cheng-registry-inclusion/1"


class RefusedError(PolicyError):
    """A registry operation was refused by a rule (message without the line prefix)."""


def _refuse(exc: AppendRefusedError) -> RefusedError:
    return RefusedError(exc.what, why=exc.why, how=exc.how)


def _signed(key: KeyPair, body: dict[str, Any], domain_payload: Any) -> dict[str, Any]:
    body["pub_key"] = key.pub_key
    body["signature"] = key.sign(domain_payload(body))
    return body


def register_namespace(registry: str | os.PathLike[str], key: KeyPair, package_id: str,
                       *, now: int | None = None) -> RegistryEntry:
    """Claim ``package_id`` for ``key`` before publishing anything (a first publish also claims).

    Raises:
        RefusedError: the namespace is already owned.
    """
    if not key.author_id:
        raise RefusedError("the key has no author_id", how="keygen --author:<id>")

    def build(log: RegistryLog, state: LogState) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "key", "seq": state.lines + 1, "prev": state.last_digest,
                                "op": "register", "package_id": package_id,
                                "author_id": key.author_id,
                                "created_ts": str(now if now is not None else int(time.time()))}
        return _signed(key, body, canonical.key_payload)

    try:
        return RegistryLog.append(registry, build)
    except AppendRefusedError as exc:
        raise _refuse(exc) from None


def rotate_key(registry: str | os.PathLike[str], old: KeyPair, package_id: str, new_pub_key: str,
               *, now: int | None = None) -> RegistryEntry:
    """Move ``package_id`` to ``new_pub_key``; signed by the namespace's current (old) key.

    Raises:
        RefusedError: ``old`` does not own the namespace, or a key involved is revoked.
    """
    decode_ed25519(new_pub_key, size=32, what="new public key")

    def build(log: RegistryLog, state: LogState) -> dict[str, Any]:
        owner = state.owners.get(package_id)
        if owner is None:
            raise RefusedError(f"{package_id} has never been published", how="publish it first")
        body: dict[str, Any] = {"type": "key", "seq": state.lines + 1, "prev": state.last_digest,
                                "op": "rotate", "package_id": package_id,
                                "author_id": owner.author_id, "new_pub_key": new_pub_key,
                                "created_ts": str(now if now is not None else int(time.time()))}
        return _signed(old, body, canonical.key_payload)

    try:
        return RegistryLog.append(registry, build)
    except AppendRefusedError as exc:
        raise _refuse(exc) from None


def revoke_key(registry: str | os.PathLike[str], signer: KeyPair, revoked_key: str | None = None,
               *, package_id: str | None = None, now: int | None = None) -> RegistryEntry:
    """Revoke ``revoked_key`` (default: the signer's own key) from the next line on.

    Raises:
        RefusedError: signed by neither the key itself nor the namespace's current key.
    """
    target = revoked_key or signer.pub_key
    decode_ed25519(target, size=32, what="revoked key")

    def build(log: RegistryLog, state: LogState) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "key", "seq": state.lines + 1, "prev": state.last_digest,
                                "op": "revoke", "revoked_key": target,
                                "author_id": signer.author_id or None,
                                "created_ts": str(now if now is not None else int(time.time()))}
        if package_id:
            body["package_id"] = package_id
        body = {k: v for k, v in body.items() if v is not None}
        return _signed(signer, body, canonical.key_payload)

    try:
        return RegistryLog.append(registry, build)
    except AppendRefusedError as exc:
        raise _refuse(exc) from None


def append_checkpoint(registry: str | os.PathLike[str], operator: KeyPair, *,
                      ttl_s: int = DEFAULT_TTL_S, now: int | None = None,
                      operator_id: str | None = None) -> RegistryEntry:
    """Append the operator's signed checkpoint of every line so far.

    Raises:
        RefusedError: another operator key signed the earlier checkpoints, or time went backwards.
    """
    t = int(time.time()) if now is None else now

    def build(log: RegistryLog, state: LogState) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "checkpoint", "seq": state.lines + 1,
                                "prev": state.last_digest, "size": state.lines,
                                "root": state.merkle.root().hex(), "timestamp": t,
                                "expires": t + ttl_s,
                                "operator_id": operator_id or operator.author_id or "operator"}
        return _signed(operator, body, canonical.checkpoint_payload)

    try:
        return RegistryLog.append(registry, build, need_merkle=True)
    except AppendRefusedError as exc:
        raise _refuse(exc) from None


# --- inclusion proofs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProofResult:
    """What a checked proof establishes."""

    line: int
    size: int
    root: str
    operator_id: str
    pub_key: str
    line_text: str


def prove(registry: str | os.PathLike[str], line: int) -> dict[str, Any]:
    """An inclusion proof of ``line`` against the newest checkpoint that covers it.

    The proof is self-contained: the line's text, the audit path, and the checkpoint line itself
    (whose operator signature anchors the root), so ``verify-proof`` needs nothing else.

    Raises:
        InputError: no such line, or no checkpoint covers it yet.
    """
    log = RegistryLog.load(registry)
    if not 1 <= line <= len(log.entries):
        raise InputError(f"line {line} is not in the registry (it has {len(log.entries)} lines)")
    cps = [e for e in log.entries if e.type is EntryType.CHECKPOINT and e.data["size"] >= line]
    if not cps:
        raise InputError(f"no checkpoint covers line {line} yet",
                         how="append one: cheng-registry checkpoint --priv:<operator key>")
    cp = cps[-1]
    size = cp.data["size"]
    leaves = log.merkle_leaves()[:size]
    path = merkle.inclusion_path(leaves, line - 1)
    return {"format": PROOF_FORMAT, "line": line, "size": size,
            "leaf": log.entries[line - 1].raw.decode("utf-8"),
            "path": [h.hex() for h in path],
            "checkpoint": cp.raw.decode("utf-8")}


def verify_proof(proof: object, *, operator_key: str | None = None,
                 now: float | None = None) -> ProofResult:
    """Check an inclusion proof offline: path -> root, root signed by the operator.

    Args:
        proof: the parsed proof document.
        operator_key: the operator key to require (else the one in the checkpoint is reported).
        now: when given, an expired checkpoint is refused.

    Raises:
        merkle.ProofError: malformed, or the path does not lead to the signed root.
        SignatureError: the checkpoint signature does not verify.
    """
    if not isinstance(proof, dict) or proof.get("format") != PROOF_FORMAT:
        raise merkle.ProofError(f"not a {PROOF_FORMAT} document")
    line, size, leaf, path, cp_text = (proof.get(k) for k in ("line", "size", "leaf", "path",
                                                               "checkpoint"))
    if not (isinstance(line, int) and isinstance(size, int) and isinstance(leaf, str)
            and isinstance(path, list) and isinstance(cp_text, str)) or isinstance(line, bool):
        raise merkle.ProofError("proof fields have the wrong types")
    if len(path) > 64 or not all(isinstance(h, str) and len(h) == 64 for h in path):
        raise merkle.ProofError("proof path must be at most 64 hex digests")
    try:
        hashes = [bytes.fromhex(h) for h in path]
        cp = json.loads(cp_text)
    except ValueError:
        raise merkle.ProofError("proof path or checkpoint is malformed") from None
    if not isinstance(cp, dict) or cp.get("type") != "checkpoint" or cp.get("size") != size:
        raise merkle.ProofError("the proof's checkpoint does not match its size")
    body = {k: v for k, v in cp.items() if k != "signature"}
    pub = cp.get("pub_key")
    if operator_key is not None and pub != operator_key:
        raise merkle.ProofError("checkpoint signed by another operator key than the one required")
    Verifier().verify(str(pub), canonical.checkpoint_payload(body), str(cp.get("signature")),
                      what="checkpoint signature")
    root = merkle.root_from_inclusion(line - 1, size,
                                      merkle.leaf_hash(leaf.encode("utf-8")), hashes)
    if root.hex() != cp.get("root"):
        raise merkle.ProofError(f"line {line} is not in the checkpointed log",
                                why="the audit path does not lead to the checkpoint's root: the line "
                                    "or the path was changed")
    if now is not None and now >= cp.get("expires", 0):
        raise merkle.ProofError("the proof's checkpoint has expired")
    return ProofResult(line, size, root.hex(), str(cp.get("operator_id")), str(pub), leaf)


def load_proof(path: str | os.PathLike[str]) -> object:
    """Read a proof file.

    Raises:
        InputError: missing or not JSON.
    """
    how = "write one with 'cheng-registry prove --line:<n> --out:<file>'"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"proof file {path} not found", how=how) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"proof {path} is not a proof file",
                         why=f"not UTF-8 text (byte {exc.start})", how=how) from None
    except OSError as exc:
        raise InputError(f"cannot read proof {path}", why=exc.strerror or str(exc)) from None
    if not text.strip():
        raise InputError(f"proof {path} is empty", how=how)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"proof {path} is not a proof file",
                         why=f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                         how=how) from None
