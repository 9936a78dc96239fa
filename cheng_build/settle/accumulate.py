"""One streaming pass over ledger events: totals, payouts, pricing, sampling, trust, reconcile.

The arithmetic is the original's (reference §1.9), event by event:

- ``lease``: storage_total += royalty + provider + treasury; authors += royalty;
  providers += provider; treasury_total += treasury.
- ``compute``: compute_total += royalty + executor + treasury; authors += royalty;
  executors += executor; treasury_total += treasury; GPU core/mem totals and the alpha-weighted
  total (train 13500, infer 8500, other 10000 bps). A metered build's event (``chengc --ledger``)
  lists the ``packages`` it used: its royalty is split among their authors, equally per package
  (:func:`cheng_build.ledger.pricing.royalty_shares`), instead of going to ``author_id``.
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

# Types other areas write that carry no money and nothing settlement counts: counted in the v2
# event counts, never warned about as unknown.
UNSETTLED_TYPES = frozenset({"exec_claim"})

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


def _ints(*values: object) -> bool:
    """All non-negative ints (not bools): the fast path of a chained line's money."""
    for v in values:  # noqa: SIM110 - a plain loop is faster than all() of a generator here
        if type(v) is not int or v < 0:
            return False
    return True


class Accumulator:
    """Feed events in ledger order with :meth:`feed`; read :attr:`totals` at the end.

    The handlers read a chained line's integer money and string ids directly (the common case,
    a few dict look-ups per field) and fall back to :mod:`.fields`' checked readers for anything
    else, so every odd value still gets the same error or compat reading.
    """

    def __init__(self, epoch: int, mode: Mode) -> None:
        self.totals = Totals(epoch=epoch, mode=mode)
        self.epoch = epoch
        self._filtered = epoch >= 0
        self.compat = mode is Mode.COMPAT
        self._money: Callable[[F.Event, str, int], F.Num] = (
            F.money_float if self.compat else F.money_nano)
        handlers: dict[str, Callable[[F.Event, int, int], None]] = {
            "lease": self._lease, "compute": self._compute, "audit": self._audit,
            "audit_sample": self._sample, "fraud_report": self._fraud,
            "storage_proof": self._proof, "exec_request": self._request,
            "exec_receipt": self._receipt}
        # type -> (handler, its id field, the ids seen so far)
        self._types = {k: (h, ID_FIELD[k], set[str]()) for k, h in handlers.items()}
        self._alpha: dict[str, int] = {}
        if self.compat:
            for name in ("storage_total", "compute_total", "treasury_total", "audit_total",
                         "gpu_core_total", "gpu_mem_total", "gpu_alpha_weighted_total"):
                setattr(self.totals, name, 0.0)

    def feed(self, ev: F.Event, line: int) -> None:
        """Settle one event (skipped when outside the epoch filter).

        Raises:
            LedgerError: a field of the wrong type, negative money (default mode), a repeated id
                (default mode), a penalty with no one to take it from (default mode).
        """
        epoch = ev.get("epoch", 0)
        if type(epoch) is not int:
            epoch = F.epoch_of(ev, line)
        if self._filtered and epoch != self.epoch:
            return
        kind = ev.get("type")
        if type(kind) is not str:
            kind = ""
        counts = self.totals.event_counts
        counts[kind] = counts.get(kind, 0) + 1
        entry = self._types.get(kind)
        if entry is None:
            if kind not in UNSETTLED_TYPES:
                unknown = self.totals.unknown_types
                unknown[kind] = unknown.get(kind, 0) + 1
            return
        handler, key, seen = entry
        ident = ev.get(key)
        if type(ident) is not str:
            ident = F.text(ev, key, line)
        if ident:
            n = len(seen)
            seen.add(ident)
            if len(seen) == n:
                self._repeated(key, ident, line)
        handler(ev, line, epoch)

    def _repeated(self, key: str, ident: str, line: int) -> None:
        if not self.compat:
            raise LedgerError(
                f"{key} {ident} appears twice", line=line,
                why="a duplicated or replayed line, or a ledger written with the original "
                    "tool's length-based ids (which collide)",
                how="check the ledger with 'cheng-storage verify-ledger'; settle a legacy "
                    "ledger with --compat, which merges repeated ids as the original did")
        self.totals.id_collisions[key] = self.totals.id_collisions.get(key, 0) + 1

    def _text(self, ev: F.Event, key: str, line: int) -> str:
        v = ev.get(key)
        return v if type(v) is str else F.text(ev, key, line)

    def _party(self, ev: F.Event, key: str, line: int, amount: F.Num) -> str:
        # Default mode keeps authors + providers + executors + treasury == the totals, so money
        # cannot go to an empty id (the original dropped it from the tables).
        who = ev.get(key)
        if type(who) is not str:
            who = F.text(ev, key, line)
        if not who and amount and not self.compat:
            raise LedgerError(f"{key} is empty but {amount} is owed to it", line=line,
                              how="every paid party needs an id")
        return who

    def _split(self, ev: F.Event, line: int, a: str, b: str, c: str) -> tuple[F.Num, F.Num, F.Num]:
        """Three money fields: integers as written on a chained line, else checked readers."""
        x, y, z = ev.get(a, 0), ev.get(b, 0), ev.get(c, 0)
        if self.compat or "prev" not in ev or not _ints(x, y, z):
            m = self._money
            return m(ev, a, line), m(ev, b, line), m(ev, c, line)
        return x, y, z

    def _royalties(self, used: object, royalty: F.Num, line: int) -> None:
        """A metered build's royalty, shared among the authors of the packages it used."""
        from cheng_build.ledger.pricing import royalty_shares

        if (type(used) is not list or not used or type(royalty) is not int
                or not all(type(p) is dict and type(p.get("author_id")) is str and p["author_id"]
                           for p in used)):
            raise LedgerError("packages is not a list of {package_id, cid, author_id}", line=line,
                              how="a metered build lists the packages it used, each with its author")
        t = self.totals
        for who, share in royalty_shares(royalty, used):
            t.authors[who] = t.authors.get(who, 0) + share

    def _lease(self, ev: F.Event, line: int, epoch: int) -> None:
        t = self.totals
        royalty, provider, treasury = self._split(ev, line, "royalty", "provider", "treasury")
        t.storage_total += royalty + provider + treasury
        t.treasury_total += treasury
        who = self._party(ev, "author_id", line, royalty)
        if who:
            t.authors[who] = t.authors.get(who, 0) + royalty
        who = self._party(ev, "provider_id", line, provider)
        if who:
            t.providers[who] = t.providers.get(who, 0) + provider
        t.counts["lease"] += 1

    def _compute(self, ev: F.Event, line: int, epoch: int) -> None:
        t = self.totals
        royalty, executor, treasury = self._split(ev, line, "royalty", "executor", "treasury")
        t.compute_total += royalty + executor + treasury
        t.treasury_total += treasury
        used = ev.get("packages")
        if used is not None and not self.compat:
            self._royalties(used, royalty, line)
        else:
            who = self._party(ev, "author_id", line, royalty)
            if who:
                t.authors[who] = t.authors.get(who, 0) + royalty
        who = self._party(ev, "executor_id", line, executor)
        if who:
            t.executors[who] = t.executors.get(who, 0) + executor
        t.counts["compute"] += 1
        wk = ev.get("workload_kind")
        alpha = self._alpha.get(wk) if type(wk) is str else None
        if alpha is None:
            alpha = F.alpha_bps(ev, line)  # raises for a workload that is not text
            if type(wk) is str:
                self._alpha[wk] = alpha
        gpu_ms, gpu_mem = ev.get("gpu_ms", 0), ev.get("gpu_mem_bytes", 0)
        p_core, p_mem = ev.get("price_gpu_ms", 0), ev.get("price_gpu_mem_gb", 0)
        if self.compat:
            m = self._money
            core = F.quantity(ev, "gpu_ms", line) * m(ev, "price_gpu_ms", line)
            mem = F.quantity(ev, "gpu_mem_bytes", line) / F.GIB * m(ev, "price_gpu_mem_gb", line)
            t.gpu_core_total += core
            t.gpu_mem_total += mem
            t.gpu_alpha_weighted_total += (core + mem) * alpha / 10000
        else:
            if "prev" in ev and _ints(gpu_ms, gpu_mem, p_core, p_mem):
                # exact integers, rounded half up once: the same on every machine
                core_n = gpu_ms * p_core
                mem_n = (2 * gpu_mem * p_mem + F.GIB_INT) // (2 * F.GIB_INT)
            else:
                m = self._money
                core_n = F.round_div(F.quantity(ev, "gpu_ms", line) * m(ev, "price_gpu_ms", line), 1)
                mem_n = F.round_div(F.quantity(ev, "gpu_mem_bytes", line)
                                    * m(ev, "price_gpu_mem_gb", line), F.GIB_INT)
            t.gpu_core_total += core_n
            t.gpu_mem_total += mem_n
            t.gpu_alpha_weighted_total += (2 * (core_n + mem_n) * alpha + 10000) // 20000
        usage = self._text(ev, "usage_id", line)
        if usage:
            t.reconcile.usages[usage] = epoch

    def _penalty(self, ev: F.Event, line: int, who_key: str, table: dict[str, F.Num]) -> None:
        t = self.totals
        if self._text(ev, "status", line) == "ok":
            return
        p = ev.get("penalty", 0)
        if p == 0 and type(p) is int:
            return
        p = self._money(ev, "penalty", line)
        if not p > 0:
            return
        who = self._party(ev, who_key, line, p)
        t.audit_total += p
        t.treasury_total += p
        if who:
            table[who] = table.get(who, 0) - p
            t.penalties[who] = t.penalties.get(who, 0) + p

    def _audit(self, ev: F.Event, line: int, epoch: int) -> None:
        self.totals.counts["audit"] += 1
        self._penalty(ev, line, "executor_id", self.totals.executors)

    def _sample(self, ev: F.Event, line: int, epoch: int) -> None:
        t = self.totals
        t.audit_sample_count += 1
        t.selected_count += 1
        if self._text(ev, "risk_level", line) == "high":
            t.high_risk_selected_count += 1
        base = int(F.number(ev, "base_rate_bps", line))
        if base > 0:
            t.base_rate_bps = base
        high = int(F.number(ev, "high_risk_rate_bps", line))
        if high > 0:
            t.high_risk_rate_bps = high

    def _fraud(self, ev: F.Event, line: int, epoch: int) -> None:
        t = self.totals
        t.fraud_report_count += 1
        who = self._text(ev, "executor_id", line)
        tenths = F.severity_tenths(ev, line)
        if who:
            weight = tenths / 10 if self.compat else tenths
            t.fraud_by_executor[who] = t.fraud_by_executor.get(who, 0) + weight

    def _proof(self, ev: F.Event, line: int, epoch: int) -> None:
        t = self.totals
        t.storage_proof_count += 1
        who = self._text(ev, "provider_id", line)
        status = self._text(ev, "status", line)
        # The original counted only "missing" as a failure; our proofs also write "failed".
        if status == "missing" if self.compat else status != "ok":
            t.storage_proof_missing_count += 1
            if who:
                t.storage_missing_by_provider[who] = t.storage_missing_by_provider.get(who, 0) + 1
        elif who:
            t.storage_ok_by_provider[who] = t.storage_ok_by_provider.get(who, 0) + 1
        self._penalty(ev, line, "provider_id", t.providers)

    def _request(self, ev: F.Event, line: int, epoch: int) -> None:
        self.totals.counts["exec_request"] += 1
        rid = ev.get("request_id")
        if type(rid) is not str:
            rid = F.text(ev, "request_id", line)
        if rid:
            self.totals.reconcile.requests[rid] = epoch

    def _receipt(self, ev: F.Event, line: int, epoch: int) -> None:
        self.totals.counts["exec_receipt"] += 1
        get = ev.get
        rec, req, usage, status = (get("receipt_id"), get("request_id"), get("usage_id"),
                                   get("status"))
        if not (type(rec) is str and type(req) is str and type(usage) is str
                and type(status) is str):
            text = self._text
            rec, req = text(ev, "receipt_id", line), text(ev, "request_id", line)
            usage, status = text(ev, "usage_id", line), text(ev, "status", line)
        recon = self.totals.reconcile
        if rec:
            recon.receipts[rec] = (req, usage, epoch)
        if status != "ok":
            recon.bad.append((rec, req, status, self._text(ev, "error", line)))


__all__ = ["ID_FIELD", "KNOWN_TYPES", "UNSETTLED_TYPES", "Accumulator", "Mode", "Totals"]
