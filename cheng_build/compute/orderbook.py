"""Executor selection from an orderbook: the original's matcher, kept exactly (reference 1.5).

An orderbook is a JSON array of cards, or ``{"cards": [...]}``. A card: ``peer_id``, ``ts_ms``,
``ttl_ms``, ``bandwidth_out_bytes`` (or ``resource.bandwidth_out_bytes``), ``ask_price_cpu_nano``,
``ask_price_gpu_nano``, ``ask_price_io_nano``, ``ask_workload_mask`` (train 1, infer 2, other 4;
default 7). A card is eligible when it names a peer, its mask has the request's workload bit and
it has not expired (``ttl_ms > 0 and ts_ms > 0 and now_ms > ts_ms + ttl_ms`` expires it).

``expected_cost_nano = sat(max_cpu_ms * cpu) + sat(max_gpu_ms * gpu) + sat(ceil(max_io_bytes /
1024) * io)`` (saturating int64). An executor's fraud score comes from the ledger: the severity
weights (low 0.1, medium 0.5, else 1.0) of its fraud reports with ``ref - window + 1 <= epoch <=
ref``, clamped to 1 after each add (``ref`` = the request's epoch when > 0, else the ledger's
latest). The best card has the lowest cost, then the lowest fraud score, then the highest
bandwidth, then the lowest ``peer_id`` (byte order).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cheng_build.core.errors import InputError, PolicyError
from cheng_build.ledger.pricing import normalize_workload

INT64_MAX = 2**63 - 1
WORKLOAD_BITS = {"train": 1, "infer": 2, "other": 4}
SEVERITY_WEIGHT = {"low": 0.1, "medium": 0.5}


class OrderbookError(PolicyError):
    """No card of the orderbook can serve the request."""


@dataclass(frozen=True, slots=True)
class Match:
    """The chosen executor and what the request records about the choice."""

    peer_id: str
    expected_cost_nano: int
    fraud_score: float
    bandwidth_out_bytes: int


def event_int(v: object) -> int:
    """A ledger event's integer field as the original reads it: bools and in-range finite floats
    become ints, anything else 0."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v == v and abs(v) < 2**63:
        return int(v)
    return 0


def _sat_mul(a: int, b: int) -> int:
    return min(INT64_MAX, a * b) if a > 0 and b > 0 else 0


def load_orderbook(path: Path) -> list[Mapping[str, Any]]:
    """The cards of an orderbook file.

    Raises:
        InputError: missing, not JSON, or neither an array nor ``{"cards": [...]}``.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"orderbook match failed: orderbook file not found ({path})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"orderbook match failed: {path} is not JSON", why=str(exc)) from None
    cards = data.get("cards") if isinstance(data, dict) else data
    if not isinstance(cards, list):
        raise InputError(f"orderbook match failed: {path} holds no cards",
                         how='write a JSON array of cards, or {"cards": [...]}')
    return [c for c in cards if isinstance(c, Mapping)]


def fraud_scores(events: Iterable[Mapping[str, Any]], epoch: int, window: int) -> dict[str, float]:
    """Each executor's fraud score over the risk window (see the module doc)."""
    evs = list(events)
    ref = epoch if epoch > 0 else max((event_int(e.get("epoch", 0)) for e in evs), default=0)
    window = window if window > 0 else 3
    out: dict[str, float] = {}
    for e in evs:
        if e.get("type") != "fraud_report":
            continue
        ep = event_int(e.get("epoch", 0))
        ex = e.get("executor_id")
        if not isinstance(ex, str) or not ex or not ref - window + 1 <= ep <= ref:
            continue
        sev = str(e.get("severity", "")).strip().lower()
        out[ex] = min(1.0, out.get(ex, 0.0) + SEVERITY_WEIGHT.get(sev, 1.0))
    return out


def match(cards: Iterable[Mapping[str, Any]], *, workload: str, max_cpu_ms: int, max_gpu_ms: int,
          max_io_bytes: int, now_ms: int, scores: Mapping[str, float]) -> Match:
    """The best eligible card.

    Raises:
        OrderbookError: no card is eligible.
    """
    bit = WORKLOAD_BITS[normalize_workload(workload)]
    best: tuple[int, float, int, bytes] | None = None
    chosen: Match | None = None
    for c in cards:
        peer = c.get("peer_id")
        if not isinstance(peer, str) or not peer:
            continue
        mask = event_int(c.get("ask_workload_mask", 7)) if "ask_workload_mask" in c else 7
        if not mask & bit:
            continue
        ts, ttl = event_int(c.get("ts_ms")), event_int(c.get("ttl_ms"))
        if ttl > 0 and ts > 0 and now_ms > ts + ttl:
            continue
        bw = event_int(c.get("bandwidth_out_bytes"))
        res = c.get("resource")
        if "bandwidth_out_bytes" not in c and isinstance(res, Mapping):
            bw = event_int(res.get("bandwidth_out_bytes"))
        io_kib = -(-max(0, max_io_bytes) // 1024)
        cost = min(INT64_MAX, _sat_mul(max_cpu_ms, event_int(c.get("ask_price_cpu_nano")))
                   + _sat_mul(max_gpu_ms, event_int(c.get("ask_price_gpu_nano")))
                   + _sat_mul(io_kib, event_int(c.get("ask_price_io_nano"))))
        score = scores.get(peer, 0.0)
        key = (cost, score, -bw, peer.encode("utf-8", "surrogatepass"))
        if best is None or key < best:
            best = key
            chosen = Match(peer, cost, score, bw)
    if chosen is None:
        raise OrderbookError("orderbook match failed: no eligible card",
                             why="no card names a peer that takes this workload and has not expired")
    return chosen
