"""Storage-proof challenges over libp2p: the provider's stream handler and the verifier's client.

Protocol ``/cheng/storage-proof/1.0.0``: the verifier opens a stream and writes one frame
(``uvarint(len) || request``, :mod:`cheng_build.storage.proof`); the provider answers one frame
with the response and closes. Imports libp2p/trio (~0.5 s): only ``serve`` and ``proof --peer``
load this module.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from cheng_build.core.errors import TransportError
from cheng_build.pkg.fetch import libp2p_adapter as lp
from cheng_build.storage import proof as P

PROTOCOL = "/cheng/storage-proof/1.0.0"
MAX_REQUEST = 1024
log = logging.getLogger(__name__)


def _frame(body: bytes) -> bytes:
    return P._uv(len(body)) + body


def make_handler(get: Callable[[Any], bytes]) -> Callable[[Any], Awaitable[None]]:
    """An inbound stream handler answering challenges from ``get`` (a store's verified read)."""

    async def handler(stream: Any) -> None:
        try:
            reader = lp.FrameReader(lp.cap_window(stream), MAX_REQUEST)
            with trio.move_on_after(30):
                body = await reader.next()
                if body is None:
                    return
                try:
                    req = P.decode_request(body)
                except P.ProofFormatError as exc:
                    log.info("bad proof request: %s", exc.what)
                    await stream.reset()
                    return
                resp = await trio.to_thread.run_sync(P.prove, get, req)
                await stream.write(_frame(P.encode_response(resp)))
            await stream.close()
        except lp.STREAM_ERRORS:
            return
        except ValueError as exc:  # framing
            log.info("bad proof request framing: %s", exc)

    return handler


def challenge(peer: str, req: P.Request, *, timeout_s: float = 30.0) -> bytes | None:
    """Send ``req`` to ``peer`` (``.../p2p/<id>``); the response bytes, or None on timeout.

    Raises:
        InputError: a malformed peer address.
        TransportError: the peer cannot be reached or refuses the protocol.
    """
    addr, peer_id = lp.parse_peer_addr(peer)

    async def main() -> bytes | None:
        host = lp.make_host()
        async with host.run(listen_addrs=[]):
            with trio.move_on_after(timeout_s):
                await lp.dial(host, addr, peer_id)
                try:
                    stream = await lp.open_stream(host, peer_id, [PROTOCOL])
                except Exception as exc:
                    raise TransportError(f"peer {peer} does not answer storage proofs",
                                         why=str(exc) or type(exc).__name__,
                                         how="is it a 'cheng-storage serve' node?") from exc
                await stream.write(_frame(P.encode_request(req)))
                reader = lp.FrameReader(stream, P.MAX_RESPONSE)
                try:
                    body = await reader.next()
                except ValueError:
                    body = b"\xff"  # torn framing: a malformed answer, judged by the verifier
                except lp.STREAM_ERRORS:
                    body = None
                try:
                    await stream.close()
                except lp.STREAM_ERRORS:
                    pass
                return body
            return None

    try:
        with lp.quick_gil_handoff():
            return trio.run(main)
    except BaseExceptionGroup as eg:
        raise lp.unwrap_group(eg) from None
