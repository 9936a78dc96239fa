"""``cheng-storage serve``: ``cheng-pkg serve``'s node (bitswap + gateway) on a storage root, plus proofs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cheng_build.storage.config import StorageConfig
from cheng_build.storage.store import open_root


def serve_root(cfg: StorageConfig, *, listen: str, http: str | None = None,
               max_peers: int | None = None,
               on_ready: Callable[[list[str], str | None], None] | None = None,
               stop: Callable[[], Any] | None = None) -> None:
    """Serve the root's blocks (CAS and legacy flat objects) and answer proof challenges.

    Raises:
        InputError: the root does not exist. UsageError: the address cannot be listened on.
    """
    from cheng_build.pkg.serve import Listening, serve
    from cheng_build.storage.proof_net import PROTOCOL, make_handler

    store = open_root(cfg.root)

    def ready(where: Listening) -> None:
        if on_ready is not None:
            http_addr = None
            if where.http:
                host, port = where.http.removeprefix("http://").rsplit(":", 1)
                http_addr = f"/ip4/{host}/tcp/{port}/http"
            on_ready(list(where.p2p), http_addr)

    serve(cfg.root, listen, http=http, max_peers=max_peers, on_ready=ready, stop=stop, store=store,
          protocols={PROTOCOL: make_handler(store.get)})
