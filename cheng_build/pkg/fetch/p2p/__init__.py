"""Bitswap over py-libp2p: ``node`` (the serving side; one per host), ``session`` (the client
scheduler of one DAG fetch) and ``run`` (one p2p fetch from synchronous code)."""
