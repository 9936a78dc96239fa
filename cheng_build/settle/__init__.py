"""Per-epoch settlement of the ledger and the RWAD bridge (reference §1.9-§1.10).

- :mod:`~cheng_build.settle.scan`: one streaming pass, hash chain checked;
- :mod:`~cheng_build.settle.accumulate`: the original's arithmetic per event type;
- :mod:`~cheng_build.settle.reconcile`: requests vs receipts vs usage;
- :mod:`~cheng_build.settle.document`, :mod:`~cheng_build.settle.render`,
  :mod:`~cheng_build.settle.reconcile_csv`: the output, byte-deterministic;
- :mod:`~cheng_build.settle.api`: :func:`settle`;
- :mod:`~cheng_build.settle.rwad`: batches for RWAD (export), results back (apply), the contract.

Imports :mod:`cheng_build.ledger`, :mod:`cheng_build.trust` and :mod:`cheng_build.core` only.
"""
