"""Run one p2p fetch from synchronous code: start a host, fetch the roots, stop.

Imports libp2p (~0.5 s); ``fetch_lock`` imports this module only when a block is missing and a
p2p peer is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cheng_build.pkg.fetch.blocks import BlockStore
from cheng_build.pkg.fetch.p2p.session import SessionStats


def fetch_p2p(store: BlockStore, roots: list[bytes], peers: Sequence[str], *,
              on_block: Callable[[int], None] | None = None,
              on_total: Callable[[int], None] | None = None, window: int = 32,
              stall_s: float = 15.0) -> SessionStats:
    """Fetch the DAGs under ``roots`` from ``peers`` (full ``.../p2p/<id>`` multiaddrs).

    Raises:
        InputError: a peer address is malformed.
        TransportError: no peer could be reached.
        NotFoundError: blocks remain that no peer would give.
    """
    import trio

    from cheng_build.pkg.fetch import libp2p_adapter as lp
    from cheng_build.pkg.fetch.p2p.node import BitswapNode
    from cheng_build.pkg.fetch.p2p.session import fetch

    targets = [lp.parse_peer_addr(p) for p in peers]

    async def main() -> SessionStats:
        host = lp.make_host()
        async with host.run(listen_addrs=[]), BitswapNode.running(host, store, serve=False) as node:
            return await fetch(node, roots, targets, window=window, stall_s=stall_s,
                                    on_block=on_block, on_total=on_total)

    try:
        with lp.quick_gil_handoff():
            return trio.run(main)
    except BaseExceptionGroup as eg:
        raise lp.unwrap_group(eg) from None
