"""Compute: execution requests, measured metering, signed receipts, audits by re-execution.

The seed's compute layer (seed 000 section C) on the project's own parts: the CIS engine runs a
request's DAG in its sandbox, the CAS holds code, input and result by CID, libp2p carries requests
between nodes, and the ledger (``cheng_build.ledger``) records every event. Modules, one job each:

``ids``        collision-free ids (default) and the original's length ids (``--legacy-ids``)
``money``      the usage price formula: the original's floats (compat) and integer nano units
``records``    the event records (exec_request, compute, exec_receipt, audit, audit_sample,
               fraud_report): parsers that read every line the original wrote, writers in its
               key order
``sampling``   the audit sampling formula, exactly as the original (golden vectors in the tests)
``standing``   ratelimit and repute, the original's formulas
``legacy``     the original's length ids (``--compat`` writing)
``limits``     limits on untrusted input (usage figures, frames, fetched bytes)
``identity``   which keys the registry binds to an executor id
``receipts``   signing and checking receipts
``metering``   measured usage of a process tree and the Python metering API, from
``cgroups``    (cgroup v2) and ``gpu`` (NVML accounting)
``orderbook``  the original's executor selection from an orderbook
``workspace``  a request's working directory (code, input read-only, out writable) and result CID
``runner``     runs one request's DAG with the CIS engine and meters it (a child process)
``node``       the executor node (the protocol, checks, claims of open requests)
``client``     the requester's side: send, wait, check the receipt, fetch the result
``audit``      recompute audits, majority of replicas, fraud reports
``ledgerio``   the ledger's compute events by id, and the fraud report's checks

Data flows one way: cli -> compute -> (cis | cas | trust | ledger | pkg.fetch) -> core.
"""
