"""One streaming pass over ledger events: totals, payouts, pricing, sampling, trust, reconcile.

The arithmetic is the original's (reference §1.9), event by event:

- ``lease``: storage_total += royalty + provider + treasury; authors += royalty;
  providers += provider; treasury_total += treasury.
- ``compute``: compute_total += royalty + executor + treasury; authors += royalty;
  executors += executor; treasury_total += treasury; GPU core/mem totals and the alpha-weighted
  total (train 13500, infer 8500, other 10000 bps).
- ``audit`` with ``status != ok`` and ``penalty > 0``: the penalty moves from the executor to the
  treasury (audit_total and penalties record the move).
- ``storage_proof`` with ``status != ok`` and ``penalty > 0`` (the original never wrote one; our
  challenge-response proofs do): the same move from the provider to the treasury.
- ``audit_sample``, ``fraud_report``, ``storage_proof``: sampling and trust counters.
- ``exec_request``, ``exec_receipt`` and the ``compute`` usage ids feed the reconcile lists.

So authors + providers + executors + treasury_total == storage_total + compute_total always
(exactly, in default mode's integer nano-units), and penalties are moved, never lost.

Memory is bounded by the events *inside the settled epoch* (the reconcile tables keep one entry
per request, receipt and usage of that epoch), never by the ledger's length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from cheng_build.settle import fields as F
from cheng_build.settle.errors import LedgerLineError as LedgerError
from cheng_build.settle.reconcile import ReconcileState

# The event types settlement understands; any other type is counted and reported, not settled.
KNOWN_TYPES = ("lease", "compute", "audit", "audit_sample", "fraud_report", "storage_proof",
               "exec_request", "exec_receipt")

# The id field of each event type: in default mode an id seen twice inside the settled range is
# an error (a duplicated or replayed line); compat ledgers reuse ids (they are payload lengths).
ID_FIELD = {"lease": "lease_id", "compute": "usage_id", "audit": "audit_id",
            "audit_sample": "sample_id", "fraud_report": "report_id", "storage_proof": "proof_id",
            "exec_request": "request_id", "exec_receipt": "receipt_id"}


class Mode(Enum):
    """How money is read and tables are ordered."""

    DEFAULT = "default"  # integer nano-units, sorted table keys, repeated ids refused
    COMPAT = "compat"  # floats in file order, the original's hash-table key order, ids merged


@dataclass(slots=True)
class Totals:
    """Everything a settlement holds before it is cut and rendered."""

    epoch: int
    mode: Mode
    storage_total: F.Num = 0
    compute_total: F.Num = 0
    treasury_total: F.Num = 0
    audit_total: F.Num = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("lease", "compute", "audit", "exec_request", "exec_receipt"), 0))
    authors: dict[str, F.Num] = field(default_factory=dict)
    providers: dict[str, F.Num] = field(default_factory=dict)
    executors: dict[str, F.Num] = field(default_factory=dict)
    penalties: dict[str, F.Num] = field(default_factory=dict)
    gpu_core_total: F.Num = 0
    gpu_mem_total: F.Num = 0
    gpu_alpha_weighted_total: F.Num = 0
    base_rate_bps: int = 1000
    high_risk_rate_bps: int = 10000
    selected_count: int = 0
    high_risk_selected_count: int = 0
    audit_sample_count: int = 0
    fraud_report_count: int = 0
    storage_proof_count: int = 0
    storage_proof_missing_count: int = 0
    # Compat: the float weights summed in file order; default: integer tenths (printed / 10).
    fraud_by_executor: dict[str, F.Num] = field(default_factory=dict)
    storage_ok_by_provider: dict[str, int] = field(default_factory=dict)
    storage_missing_by_provider: dict[str, int] = field(default_factory=dict)
    reconcile: ReconcileState = field(default_factory=ReconcileState)
    # Outside the original's settlement: what the pass saw (v2 envelope, warnings).
    event_counts: dict[str, int] = field(default_factory=dict)
    unknown_types: dict[str, int] = field(default_factory=dict)
    id_collisions: dict[str, int] = field(default_factory=dict)


def _add(table: dict[str, F.Num], key: str, value: F.Num) -> None:
    # The original never adds an empty key (tableAdd returns on len(key) == 0).
    if key:
        table[key] = table.get(key, 0) + value


class Accumulator:
    """Feed events in ledger order with :meth:`feed`; read :attr:`totals` at the end."""

    def __init__(self, epoch: int, mode: Mode) -> None:
        self.totals = Totals(epoch=epoch, mode=mode)
        self.epoch = epoch
        self.compat = mode is Mode.COMPAT
        self._seen: dict[str, set[str]] = {t: set() for t in KNOWN_TYPES}
        self._money: Callable[[F.Event, str, int], F.Num] = (
            F.money_float if self.compat else F.money_nano)
        self._handlers: dict[str, Callable[[F.Event, int], None]] = {
            "lease": self._lease, "compute": self._compute, "audit": self._audit,
            "audit_sample": self._sample, "fraud_report": self._fraud,
            "storage_proof": self._proof, "exec_request": self._request,
            "exec_receipt": self._receipt}
        if self.compat:
            self._zero: F.Num = 0.0
            for name in ("storage_total", "compute_total", "treasury_total", "audit_total",
                         "gpu_core_total", "gpu_mem_total", "gpu_alpha_weighted_total"):
                setattr(self.totals, name, 0.0)

    def feed(self, ev: F.Event, line: int) -> None:
        """Settle one event (skipped when outside the epoch filter).

        Raises:
            LedgerError: a field of the wrong type, negative money (default mode), a repeated id
                (default mode), a penalty with no one to take it from (default mode).
        """
        if self.epoch >= 0 and F.epoch_of(ev, line) != self.epoch:
            return
        kind = ev.get("type")
        if type(kind) is not str:
            kind = ""
        counts = self.totals.event_counts
        counts[kind] = counts.get(kind, 0) + 1
        handler = self._handlers.get(kind)
        if handler is None:
            unknown = self.totals.unknown_types
            unknown[kind] = unknown.get(kind, 0) + 1
            return
        self._check_id(kind, ev, line)
        handler(ev, line)

    def _check_id(self, kind: str, ev: F.Event, line: int) -> None:
        key = ID_FIELD[kind]
        ident = F.text(ev, key, line)
        if not ident:
            return
        seen = self._seen[kind]
        if ident in seen:
            if not self.compat:
                raise LedgerError(
                    f"{key} {ident} appears twice", line=line,
                    why="a duplicated or replayed line, or a ledger written with the original "
                        "tool's length-based ids (which collide)",
                    how="check the ledger with 'cheng-storage verify-ledger'; settle a legacy "
                        "ledger with --compat, which merges repeated ids as the original did")
            self.totals.id_collisions[key] = self.totals.id_collisions.get(key, 0) + 1
        else:
            seen.add(ident)

    def _party(self, ev: F.Event, key: str, line: int, amount: F.Num) -> str:
        # Default mode keeps authors + providers + executors + treasury == the totals, so money
        # cannot go to an empty id (the original dropped it from the tables).
        who = F.text(ev, key, line)
        if not who and amount and not self.compat:
            raise LedgerError(f"{key} is empty but {amount} is owed to it", line=line,
                              how="every paid party needs an id")
        return who

    def _lease(self, ev: F.Event, line: int) -> None:
        t, m = self.totals, self._money
        royalty, provider, treasury = m(ev, "royalty", line), m(ev, "provider", line), m(
            ev, "treasury", line)
        t.storage_total += royalty + provider + treasury
        t.treasury_total += treasury
        _add(t.authors, self._party(ev, "author_id", line, royalty), royalty)
        _add(t.providers, self._party(ev, "provider_id", line, provider), provider)
        t.counts["lease"] += 1

    def _compute(self, ev: F.Event, line: int) -> None:
        t, m = self.totals, self._money
        royalty, executor, treasury = m(ev, "royalty", line), m(ev, "executor", line), m(
            ev, "treasury", line)
        t.compute_total += royalty + executor + treasury
        t.treasury_total += treasury
        _add(t.authors, self._party(ev, "author_id", line, royalty), royalty)
        _add(t.executors, self._party(ev, "executor_id", line, executor), executor)
        t.counts["compute"] += 1
        alpha = F.alpha_bps(ev, line)
        gpu_ms, gpu_mem = F.quantity(ev, "gpu_ms", line), F.quantity(ev, "gpu_mem_bytes", line)
        if self.compat:
            core = gpu_ms * m(ev, "price_gpu_ms", line)
            mem = gpu_mem / F.GIB * m(ev, "price_gpu_mem_gb", line)
            t.gpu_core_total += core
            t.gpu_mem_total += mem
            t.gpu_alpha_weighted_total += (core + mem) * alpha / 10000
        else:
            # Integer nano-units, each product rounded half up once: the same on every machine.
            core_n = F.round_div(gpu_ms * m(ev, "price_gpu_ms", line), 1)
            mem_n = F.round_div(gpu_mem * m(ev, "price_gpu_mem_gb", line), F.GIB_INT)
            t.gpu_core_total += core_n
            t.gpu_mem_total += mem_n
            t.gpu_alpha_weighted_total += F.round_div((core_n + mem_n) * alpha, 10000)
        t.reconcile.add_usage(F.text(ev, "usage_id", line), F.epoch_of(ev, line))

    def _penalty(self, ev: F.Event, line: int, who_key: str, table: dict[str, F.Num]) -> None:
        t = self.totals
        if F.text(ev, "status", line) == "ok":
            return
        p = self._money(ev, "penalty", line)
        if not p > 0:
            return
        who = self._party(ev, who_key, line, p)
        t.audit_total += p
        t.treasury_total += p
        _add(table, who, -p)
        _add(t.penalties, who, p)

    def _audit(self, ev: F.Event, line: int) -> None:
        self.totals.counts["audit"] += 1
        self._penalty(ev, line, "executor_id", self.totals.executors)

    def _sample(self, ev: F.Event, line: int) -> None:
        t = self.totals
        t.audit_sample_count += 1
        t.selected_count += 1
        if F.text(ev, "risk_level", line) == "high":
            t.high_risk_selected_count += 1
        base = int(F.number(ev, "base_rate_bps", line))
        if base > 0:
            t.base_rate_bps = base
        high = int(F.number(ev, "high_risk_rate_bps", line))
        if high > 0:
            t.high_risk_rate_bps = high

    def _fraud(self, ev: F.Event, line: int) -> None:
        t = self.totals
        t.fraud_report_count += 1
        who = F.text(ev, "executor_id", line)
        tenths = F.severity_tenths(ev, line)
        _add(t.fraud_by_executor, who, tenths / 10 if self.compat else tenths)

    def _proof(self, ev: F.Event, line: int) -> None:
        t = self.totals
        t.storage_proof_count += 1
        who = F.text(ev, "provider_id", line)
        status = F.text(ev, "status", line)
        # The original counted only "missing" as a failure; our proofs also write "failed".
        if status == "missing" if self.compat else status != "ok":
            t.storage_proof_missing_count += 1
            if who:
                t.storage_missing_by_provider[who] = t.storage_missing_by_provider.get(who, 0) + 1
        elif who:
            t.storage_ok_by_provider[who] = t.storage_ok_by_provider.get(who, 0) + 1
        self._penalty(ev, line, "provider_id", t.providers)

    def _request(self, ev: F.Event, line: int) -> None:
        self.totals.counts["exec_request"] += 1
        self.totals.reconcile.add_request(F.text(ev, "request_id", line), F.epoch_of(ev, line))

    def _receipt(self, ev: F.Event, line: int) -> None:
        self.totals.counts["exec_receipt"] += 1
        self.totals.reconcile.add_receipt(
            F.text(ev, "receipt_id", line), F.text(ev, "request_id", line),
            F.text(ev, "usage_id", line), F.epoch_of(ev, line), F.text(ev, "status", line),
            F.text(ev, "error", line))


__all__ = ["ID_FIELD", "KNOWN_TYPES", "Accumulator", "Mode", "Totals"]
