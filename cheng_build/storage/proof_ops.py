"""``proof``: challenge a provider (or this root), judge the answer, record a ``storage_proof`` event.

The event keeps the original's keys and order (``type, proof_id, provider_id, package_id?, cid,
bytes, status, proof_hash?, epoch, note?, ts``) with ``status`` ``ok`` or ``missing`` (so the
original's ``store-repute`` counts a failed challenge as missing), then adds ``challenges``,
``passed``, ``seed`` (hex), ``peer``, and for a failure ``reason`` and ``penalty`` (nano-units,
which settlement charges to the provider). ``bytes`` is the size of the proven DAG.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cheng_build.ledger.log import Ledger, latest_epoch, verify_ledger
from cheng_build.storage import proof as P
from cheng_build.storage.config import StorageConfig
from cheng_build.storage.store import open_root, parse_cid_ref


@dataclass(frozen=True, slots=True)
class ProofOutcome:
    verdict: P.Verdict
    event: dict[str, object]


def default_seed(cfg: StorageConfig) -> bytes:
    """The public seed when none is given: the ledger's head hash (it covers every recorded
    settlement and proof, so the verifier cannot pick it, and it changes after every event)."""
    return verify_ledger(cfg.ledger_path).head.encode("ascii")


def run_proof(cfg: StorageConfig, *, cid: str, provider_id: str, peer: str | None, k: int,
              seed: bytes | None, epoch: int | None, package_id: str = "", note: str = "",
              penalty: int = 0, timeout_s: float = 30.0) -> ProofOutcome:
    """Challenge ``peer`` (or prove the local store without one) and record the result.

    A peer that cannot be reached, refuses the protocol or does not answer in time has failed
    the challenge: that is recorded (with the penalty) like a wrong answer.

    Raises:
        CidError: ``cid`` is not a CID. InputError: a malformed peer address (nothing recorded).
    """
    root = parse_cid_ref(cid).cid
    if not 1 <= k <= P.MAX_K:
        raise ValueError(f"challenges must be 1..{P.MAX_K}")
    seed_b = seed if seed is not None else default_seed(cfg)
    req = P.Request(root, seed_b, k)
    unanswered = ""
    if peer:
        from cheng_build.core.errors import TransportError
        from cheng_build.storage.proof_net import challenge

        try:
            answer = challenge(peer, req, timeout_s=timeout_s)
        except TransportError as exc:  # unreachable or refusing: the challenge went unanswered
            answer, unanswered = None, exc.what
    else:
        store = open_root(cfg.root)
        answer = P.encode_response(P.prove(store.get, req))
    verdict = P.verify(req, answer)
    if unanswered:
        verdict = P.Verdict(False, k, 0, 0, unanswered, "")
    ev: dict[str, object] = {"type": "storage_proof", "provider_id": provider_id}
    if package_id:
        ev["package_id"] = package_id
    ev.update({"cid": str(root), "bytes": verdict.total_bytes,
               "status": "ok" if verdict.ok else "missing"})
    if verdict.proof_hash:
        ev["proof_hash"] = verdict.proof_hash
    ev["epoch"] = latest_epoch(cfg.ledger_path) if epoch is None else epoch
    if note:
        ev["note"] = note
    ev["ts"] = str(int(time.time()))
    ev.update({"challenges": k, "passed": verdict.passed, "seed": seed_b.hex(), "peer": peer or ""})
    if not verdict.ok:
        ev["reason"] = verdict.reason
        ev["penalty"] = penalty
    written = Ledger(cfg.ledger_path).append(ev)
    return ProofOutcome(verdict, written)
