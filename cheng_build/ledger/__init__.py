"""The append-only event ledger (``ledger.jsonl``) shared by storage, compute and settlement.

- :mod:`cheng_build.ledger.log`: the writer (:class:`~cheng_build.ledger.log.Ledger`), the
  streaming reader (:func:`~cheng_build.ledger.log.iter_events`) and the chain check
  (:func:`~cheng_build.ledger.log.verify_ledger`);
- :mod:`cheng_build.ledger.events`: event types, their key orders and id fields (reference §1);
- :mod:`cheng_build.ledger.ids`: collision-free ids and the original's length/lease ids;
- :mod:`cheng_build.ledger.money`: integer nano-units and the original's float fields.

Imports only :mod:`cheng_build.core` (and the standard library).
"""
