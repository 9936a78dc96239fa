"""A storage provider's reputation from its ``storage_proof`` events: the original's ratio and a beta score.

Compat (reference §1.8): ``status == "missing"`` counts as missing, anything else as ok;
``score = ok / (ok + missing)`` (1.0 with no proofs); level ``excellent`` >= 0.9, ``good`` >= 0.75,
``warn`` >= 0.5, else ``bad``.

Beta reputation (as Storj's audit reputation): start from the prior ``alpha = beta = 1``; for each
proof in ledger order ``alpha = lambda*alpha + ok``, ``beta = lambda*beta + (1 - ok)``;
``score = alpha / (alpha + beta)``. The forgetting factor ``lambda`` (default 0.95) lets old results
fade, so a provider that starts losing data drops quickly even after a long good record, which the
plain ratio hides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cheng_build.ledger.log import iter_events

DEFAULT_LAMBDA = 0.95


def level(score: float) -> str:
    """The original's level names."""
    if score >= 0.9:
        return "excellent"
    if score >= 0.75:
        return "good"
    if score >= 0.5:
        return "warn"
    return "bad"


@dataclass(frozen=True, slots=True)
class ProviderRepute:
    """Both reputations of one provider."""

    provider_id: str
    proof_ok_count: int
    proof_missing_count: int
    score: float
    level: str
    beta_alpha: float
    beta_beta: float
    beta_score: float
    beta_level: str
    forgetting: float

    def compat_dict(self) -> dict[str, object]:
        """The original's JSON object, keys in its order."""
        return {"provider_id": self.provider_id, "proof_ok_count": self.proof_ok_count,
                "proof_missing_count": self.proof_missing_count, "score": self.score,
                "level": self.level}

    def to_dict(self) -> dict[str, object]:
        d = self.compat_dict()
        d.update({"beta_alpha": self.beta_alpha, "beta_beta": self.beta_beta,
                  "beta_score": self.beta_score, "beta_level": self.beta_level,
                  "lambda": self.forgetting})
        return d


def store_repute(ledger: Path, provider_id: str, *, forgetting: float = DEFAULT_LAMBDA) -> ProviderRepute:
    """One pass over the ledger (every epoch, as the original).

    Raises:
        LedgerError: a malformed line (the message names it).
        ValueError: ``forgetting`` outside (0, 1].
    """
    if not 0 < forgetting <= 1:
        raise ValueError("the forgetting factor must be in (0, 1]")
    ok = missing = 0
    alpha = beta = 1.0
    for ev in iter_events(ledger):
        if ev.get("type") != "storage_proof" or ev.get("provider_id") != provider_id:
            continue
        good = ev.get("status") != "missing"
        if good:
            ok += 1
        else:
            missing += 1
        alpha = forgetting * alpha + (1.0 if good else 0.0)
        beta = forgetting * beta + (0.0 if good else 1.0)
    score = ok / (ok + missing) if ok + missing else 1.0
    bscore = alpha / (alpha + beta)
    return ProviderRepute(provider_id, ok, missing, score, level(score), alpha, beta, bscore,
                          level(bscore), forgetting)
