"""One libp2p host on a background trio thread, for synchronous callers (sync, resolve).

A registry sync asks a peer three or four questions, and resolve asks for a few blocks per
dependency; starting a host and dialling for each would cost a handshake every time. This keeps
one host (and, when a store is given, one bitswap node that fetches into it) for as long as the
caller needs it: ``with P2PClient(store) as c: c.request(addr, {...}); c.get_blocks(...)``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from cheng_build.core.errors import NotFoundError, TransportError

T = TypeVar("T")

REQUEST_TIMEOUT_S = 30.0


class P2PClient:
    """A client host on its own thread; ``close()`` (or leaving the ``with``) stops it."""

    def __init__(self, store: Any = None) -> None:
        self.store = store
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._token: Any = None
        self._stop: Any = None
        self._error: BaseException | None = None
        self.host: Any = None
        self.node: Any = None

    def __enter__(self) -> P2PClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        if self._thread is not None:
            if self._error is not None:
                raise self._error
            return
        self._thread = threading.Thread(target=self._run, name="p2p-client", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        import trio

        from cheng_build.pkg.fetch import libp2p_adapter as lp

        async def main() -> None:
            self._stop = trio.Event()
            self.host = lp.make_host()
            async with self.host.run(listen_addrs=[]):
                if self.store is not None:
                    from cheng_build.pkg.fetch.p2p.node import BitswapNode

                    async with BitswapNode.running(self.host, self.store, serve=False) as node:
                        self.node = node
                        self._token = trio.lowlevel.current_trio_token()
                        self._ready.set()
                        await self._stop.wait()
                else:
                    self._token = trio.lowlevel.current_trio_token()
                    self._ready.set()
                    await self._stop.wait()

        try:
            trio.run(main)
        except BaseException as exc:
            self._error = lp.unwrap_group(exc) if isinstance(exc, BaseExceptionGroup) else exc
        finally:
            self._ready.set()

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` on the host's thread and return its result."""
        import trio

        from cheng_build.pkg.fetch import libp2p_adapter as lp

        self._start()
        try:
            return trio.from_thread.run(fn, *args, trio_token=self._token)
        except BaseExceptionGroup as eg:
            raise lp.unwrap_group(eg) from None

    def close(self) -> None:
        if self._thread is None or self._token is None:
            return
        import trio

        try:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        except trio.RunFinishedError:
            pass
        self._thread.join(10)
        self._thread = None

    # -- the registry protocol ------------------------------------------------------------------

    def request(self, addr: str, req: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """Ask the peer at ``addr`` (``.../p2p/<id>``) one registry question.

        Raises:
            InputError: ``addr`` is not a peer address.
            TransportError: the peer cannot be reached, breaks off or answers nonsense.
        """
        from cheng_build.pkg.fetch import libp2p_adapter as lp

        target = lp.parse_peer_addr(addr)
        return self.call(self._request, addr, target, req)

    async def _request(self, addr: str, target: tuple[Any, Any],
                       req: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        import trio

        from cheng_build.pkg.fetch import libp2p_adapter as lp
        from cheng_build.pkg.remote import registry_proto as rp

        maddr, pid = target
        with trio.move_on_after(REQUEST_TIMEOUT_S) as scope:
            await lp.dial(self.host, maddr, pid)
            try:
                stream = await lp.open_stream(self.host, pid, [rp.PROTOCOL_ID])
            except Exception as exc:
                raise TransportError(f"{addr} does not serve a registry",
                                     why=str(exc) or type(exc).__name__) from None
            try:
                await stream.write(rp.frame(json.dumps(req).encode()))
                reader = lp.FrameReader(stream, rp.MAX_RESPONSE_BYTES)
                try:
                    raw_header = await reader.next()
                    body = await reader.next()
                except ValueError as exc:
                    raise TransportError(f"{addr}: malformed registry answer", why=str(exc)) from None
            finally:
                try:
                    await stream.close()
                except Exception:
                    pass
        if scope.cancelled_caught:
            raise TransportError(f"{addr}: no registry answer in {REQUEST_TIMEOUT_S:g} s")
        if raw_header is None or body is None:
            raise TransportError(f"{addr} closed the registry stream without an answer")
        try:
            header = json.loads(raw_header)
        except ValueError:
            raise TransportError(f"{addr}: its registry answer is not JSON") from None
        if not isinstance(header, dict) or header.get("ok") is not True:
            err = header.get("error") if isinstance(header, dict) else None
            raise TransportError(f"{addr} refused the registry request: {err or 'no reason'}")
        return header, body

    # -- blocks -----------------------------------------------------------------------------------

    def get_blocks(self, cids: Sequence[bytes], peers: Sequence[str]) -> None:
        """Fetch exactly these blocks (not their DAGs) from ``peers`` into the store.

        Raises:
            TransportError: no peer could be reached.
            NotFoundError: a block no peer would give.
        """
        from cheng_build.pkg.fetch import libp2p_adapter as lp

        if self.store is None:
            raise RuntimeError("P2PClient.get_blocks needs a store")
        targets = [lp.parse_peer_addr(p) for p in peers]
        self.call(self._get_blocks, list(cids), targets)

    async def _get_blocks(self, cids: list[bytes], targets: list[tuple[Any, Any]]) -> None:
        from cheng_build.pkg.fetch.p2p.session import FetchSession

        class _Blocks(FetchSession):
            # Exactly the blocks asked for: resolve reads one manifest's path, never a DAG.
            def _expand(self, cid_bytes: bytes, data: bytes | memoryview) -> None:
                return None

        session = _Blocks(self.node, cids, window=32, stall_s=15.0, on_block=None)
        stats = await session.run(targets)
        if stats.blocks_fetched + stats.blocks_local < len(set(cids)):
            raise NotFoundError("blocks missing after a p2p fetch")


__all__ = ["P2PClient"]
