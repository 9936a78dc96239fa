"""CIS across machines: node agents that claim tasks by capability over a Matrix room.

room.py      the transport interface (post, read in timeline order, join/create) + errors
memroom.py   an in-memory room with the same ordering semantics (unit tests)
matrix.py    the same interface on a Matrix homeserver (plain JSON requests on http1.py)
matrix_join.py  getting into a room the first time: login, join or create (mautrix, aiohttp)
http1.py     a small asyncio HTTP/1.1 client (h11): no aiohttp at a run's start-up
protocol.py  the room events: kinds, fields, size limit, validation
ledger.py    what a node knows of the room: runs, claims, leases, task states (pure)
agent.py     the node agent: claim, run locally, renew, report
origin.py    `cis run --room:`: post a run and mirror its progress into the local store
island.py    the outbox of events a node could not post (island mode)
mdns.py      presence on the LAN (python-zeroconf)
"""
