"""cheng-storage's library: content on the CAS, leases and tokens, GC, storage proofs, reputation.

Data flows cli -> storage -> (trust | cas | ledger) -> core. Nothing here prints or exits.
"""
