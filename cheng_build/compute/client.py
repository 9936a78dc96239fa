"""The requester's side of ``/cheng/compute/exec/1.0.0`` (protocol in :mod:`.node`).

:class:`ExecClient` sends a request to an executor, records it once accepted, waits for the
answer, and checks it before recording anything more: the receipt's signature, that it binds this
request and the usage sent with it, that it was signed by the very peer we talked to (the node's
libp2p identity is its signing key), with a registry that the key is registered to the receipt's
``executor_id``, and that the usage figures are not absurd. With ``out`` it fetches the result DAG
over bitswap and writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cheng_build.compute.limits import DEFAULT_LIMITS, Limits, check_usage_figures
from cheng_build.compute.node import PROTOCOL, RequestRefusedError, _decode, _frame, fetch_keep
from cheng_build.compute.receipts import check_receipt
from cheng_build.compute.records import ExecRequest, Receipt, Usage
from cheng_build.core.errors import ChengError, IntegrityError, TransportError


@dataclass(slots=True)
class Outcome:
    """What ``exec --peer`` got back."""

    request: ExecRequest
    receipt: Receipt | None = None
    usage: Usage | None = None
    out: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request.to_event(),
                "receipt": self.receipt.to_event() if self.receipt else None,
                "usage": self.usage.to_event() if self.usage else None,
                "out": str(self.out) if self.out else None}


def peer_key_matches(peer_id: Any, pub_key: str) -> bool:
    """Whether ``pub_key`` (``ed25519:``) is the key of the libp2p ``peer_id``."""
    from libp2p.crypto.ed25519 import Ed25519PublicKey
    from libp2p.peer.id import ID

    from cheng_build.trust.keys import decode_ed25519

    try:
        raw = decode_ed25519(pub_key, size=32, what="pub_key")
    except ChengError:
        return False
    return bool(ID.from_pubkey(Ed25519PublicKey.from_bytes(raw)) == peer_id)


class ExecClient:
    """Sends requests to executors and checks what comes back."""

    def __init__(self, root: Path, ledger: Path, *, registry: str | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.root = root
        self.ledger = ledger
        self.keys = None
        if registry:
            from cheng_build.compute.identity import KeyBook

            self.keys = KeyBook.from_registry(registry)
        self.limits = limits

    def submit(self, peer: str, req: ExecRequest, *, wait: bool, timeout: float,
               out: Path | None = None) -> Outcome:
        """Record ``req``, send it to ``peer``; with ``wait``, check and record the receipt.

        Raises:
            TransportError: the executor cannot be reached, disconnects or times out.
            RequestRefusedError: the executor refused the request.
            SignatureError / ReceiptMismatchError / UnregisteredKeyError: a bad receipt.
        """
        import trio

        from cheng_build.cas.blockstore import Blockstore
        from cheng_build.ledger.log import Ledger
        from cheng_build.pkg.fetch import libp2p_adapter as lp
        from cheng_build.pkg.fetch.p2p.node import BitswapNode

        addr, peer_id = lp.parse_peer_addr(peer)
        self.root.mkdir(parents=True, exist_ok=True)
        store = Blockstore(self.root)
        outcome = Outcome(req)

        async def main() -> None:
            host = lp.make_host()
            async with host.run(listen_addrs=[]), BitswapNode.running(host, store) as node:
                await lp.dial(host, addr, peer_id)
                try:
                    stream = await lp.open_stream(host, peer_id, [PROTOCOL])
                except Exception as exc:
                    raise TransportError(f"executor {peer} does not speak {PROTOCOL}",
                                         why=str(exc) or type(exc).__name__) from exc
                reader = lp.FrameReader(stream, self.limits.max_message_bytes)
                with trio.move_on_after(timeout) as scope:
                    await stream.write(_frame({"request": req.to_event()}))
                    first = _decode(await reader.next())
                    if "error" in first:
                        raise RequestRefusedError(f"executor refused the request: {first['error']}")
                    if first.get("accepted") != req.request_id:
                        raise IntegrityError("the executor accepted another request")
                    # Recorded once accepted: a refused or unreachable request leaves no line.
                    await trio.to_thread.run_sync(lambda: Ledger(self.ledger).append(req.to_event()))
                    if not wait:
                        return
                    final = _decode(await reader.next())
                    self._check(final, req, peer_id, outcome)
                    if out is not None and outcome.receipt is not None \
                            and outcome.receipt.status == "ok":
                        await self._materialise(node, store, outcome.receipt.result_cid,
                                                addr, peer_id, out)
                        outcome.out = out
                if scope.cancelled_caught:
                    raise TransportError(f"executor {peer} timed out after {timeout:g} s",
                                         how="raise --timeout, or check the executor's log")
                # py-libp2p's Yamux.close ends with a fixed `trio.sleep(0.1)` after the socket is
                # already closed (twice per connection: ~200 ms of nothing). The socket goes
                # first; the sleeps are cut short, the host is stopping anyway.
                with trio.move_on_after(0.02):
                    await node.disconnect(peer_id)

        try:
            with lp.quick_gil_handoff():
                trio.run(main)
        except BaseExceptionGroup as eg:
            raise lp.unwrap_group(eg) from None
        if outcome.receipt is not None and outcome.usage is not None:
            self._record(outcome.receipt, outcome.usage)
        return outcome

    def _check(self, final: dict[str, Any], req: ExecRequest, peer_id: Any, outcome: Outcome) -> None:
        r_ev, u_ev = final.get("receipt"), final.get("usage")
        if not isinstance(r_ev, dict) or not isinstance(u_ev, dict):
            raise IntegrityError("the executor's answer holds no receipt and usage")
        receipt = Receipt.from_event(r_ev, money_nano=True)
        usage = Usage.from_event(u_ev, money_nano=True)
        check_receipt(receipt, request=req, usage=usage, keys=self.keys)
        if not peer_key_matches(peer_id, receipt.pub_key):
            raise IntegrityError(f"receipt {receipt.receipt_id} is not signed by the executor "
                                 "we talked to",
                                 why=f"the key {receipt.pub_key[:20]}... is not peer {peer_id}")
        check_usage_figures(usage.cpu_ms, usage.mem_bytes, usage.io_bytes, usage.gpu_ms,
                            usage.gpu_mem_bytes, usage.gpu_count, self.limits)
        outcome.receipt, outcome.usage = receipt, usage

    async def _materialise(self, node: Any, store: Any, result_cid: str, addr: Any, peer_id: Any,
                           out: Path) -> None:
        import trio

        from cheng_build.cas.cid import cid_bytes, parse_cid
        from cheng_build.cas.exporter import export_to

        cid = parse_cid(result_cid)
        await fetch_keep(node, [cid_bytes(cid)], [(addr, peer_id)])
        await trio.to_thread.run_sync(lambda: export_to(store, cid, out, contained_symlinks=True))

    def _record(self, receipt: Receipt, usage: Usage) -> None:
        """Append the usage and receipt unless the ledger has them (an executor sharing it)."""
        from cheng_build.compute.ledgerio import ComputeIndex
        from cheng_build.ledger.log import Ledger

        idx = ComputeIndex.load(self.ledger)
        todo = []
        if usage.usage_id not in idx.usages:
            todo.append(usage.to_event())
        if receipt.receipt_id not in idx.receipts:
            todo.append(receipt.to_event())
        if todo:
            Ledger(self.ledger).append_many(todo)


__all__ = ["ExecClient", "Outcome", "peer_key_matches"]
