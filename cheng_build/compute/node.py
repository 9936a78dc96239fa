"""The executor node and its client, over libp2p.

Protocol ``/cheng/compute/exec/1.0.0``: the requester opens a stream and sends one frame
(``uvarint(len) || JSON``) ``{"request": <exec_request event, money in nano units>}``. The executor
answers with frames on the same stream:

1. ``{"accepted": <request id>}`` once it has checked the request (its limits, that it names this
   executor or none, that this executor has the capabilities) and fetched the code and input CIDs
   over bitswap from the requester (blocks already in its store are not fetched), or
   ``{"error": <what>}`` and the stream closes;
2. ``{"receipt": <exec_receipt event>, "usage": <compute event>}`` when the run ended.

The executor's libp2p identity is derived from the same Ed25519 seed that signs its receipts, so
the requester checks that the receipt was signed by the very peer it talked to, and (with a
registry) that the key is registered to the receipt's ``executor_id``. Results stay in the
executor's store; the requester fetches ``result_cid`` over bitswap for ``--out``.

Open requests: an executor started with ``claim`` scans its ledger for ``exec_request`` lines
without an ``executor_id`` whose capabilities it has and whose code and input are in its store,
appends an ``exec_claim`` event (``claim_id, request_id, executor_id, epoch, ts``), and runs the
request only when its claim is the first one for that request in ledger order (appends are
serialised by the ledger's lock, so two executors never both win).

(Over 400 lines on purpose: the executor, its client and the open-request claims speak one
wire protocol, described once above; apart, the two ends of it would drift.)
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cheng_build.compute.ids import new_id
from cheng_build.compute.limits import DEFAULT_LIMITS, Limits, check_usage_figures
from cheng_build.compute.metering import Billing, build_usage
from cheng_build.compute.receipts import sign_receipt
from cheng_build.compute.records import ExecRequest, Receipt, Usage
from cheng_build.compute.runner import ExecResult
from cheng_build.core.errors import ChengError, InputError, IntegrityError, TransportError
from cheng_build.ledger.pricing import Prices
from cheng_build.trust.keys import KeyPair

PROTOCOL = "/cheng/compute/exec/1.0.0"
DEFAULT_TIMEOUT_S = 600
CLAIM_POLL_S = 0.5
LINGER_S = 30.0


class RequestRefusedError(ChengError):
    """The executor refused the request (its answer says why)."""


def _frame(obj: dict[str, Any]) -> bytes:
    from cheng_build.cas.varint import encode as uvarint  # the one varint codec

    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return uvarint(len(body)) + body


def _decode(body: bytes | None) -> dict[str, Any]:
    if body is None:
        raise TransportError("the peer closed the stream without an answer",
                             why="it disconnected or stopped mid-request")
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise IntegrityError("the peer sent a frame that is not JSON") from None
    if not isinstance(obj, dict):
        raise IntegrityError("the peer sent a frame that is not a JSON object")
    return obj


def check_request(req: ExecRequest, *, executor_id: str, caps: tuple[str, ...],
                  limits: Limits = DEFAULT_LIMITS) -> None:
    """What an executor checks before accepting a request.

    Raises:
        InputError: malformed (no code or input CID, bad CIDs, absurd limits, wrong executor).
        RequestRefusedError: this executor lacks a capability.
    """
    from cheng_build.cas.cid import parse_cid

    if not req.request_id or not req.code_cid or not req.input_cid:
        raise InputError("request without request_id, code_cid or input_cid")
    for what, text in (("code", req.code_cid), ("input", req.input_cid)):
        if len(text) > limits.max_text:
            raise InputError(f"{what} CID is too long")
        try:
            parse_cid(text)
        except ChengError:
            raise InputError(f"{what} {text[:60]!r} is not a CID") from None
    check_usage_figures(req.max_cpu_ms, req.max_mem_bytes, req.max_io_bytes, req.max_gpu_ms,
                        req.max_gpu_mem_bytes, req.max_gpu_count, limits, what="request")
    if not 0 <= req.timeout_s <= limits.max_timeout_s:
        raise InputError(f"request timeout {req.timeout_s} s is out of range")
    if req.executor_id and req.executor_id != executor_id:
        raise InputError(f"request names executor {req.executor_id}, this is {executor_id}")
    missing = req.needed_caps() - set(caps)
    if missing:
        raise RequestRefusedError(f"executor {executor_id} lacks {', '.join(sorted(missing))}",
                                  why=f"it offers {', '.join(caps) or 'nothing'}")


async def fetch_keep(node: Any, roots: list[bytes], peers: list[tuple[Any, Any]],
                     max_bytes: int | None = None) -> None:
    """Fetch DAGs through a running bitswap node without hanging up on the peers afterwards
    (the request's own stream runs on that connection).

    With ``max_bytes``, the fetch stops as soon as a root declares more (its UnixFS size) or more
    arrived: a requester cannot fill the executor's disk.

    Raises:
        InputError: the DAGs are larger than ``max_bytes``.
        TransportError / NotFoundError: the peer cannot give them.
    """
    import trio

    from cheng_build.pkg.fetch.p2p.session import FetchSession

    got = [0]
    with trio.CancelScope() as scope:
        def on_block(n: int) -> None:
            got[0] += n
            if max_bytes is not None and got[0] > max_bytes:
                scope.cancel()

        def on_total(total: int) -> None:
            if max_bytes is not None and total > max_bytes:
                scope.cancel()

        await FetchSession(node, roots, window=32, stall_s=15.0, on_block=on_block,
                           on_total=on_total).run(peers)
    if scope.cancelled_caught:
        raise InputError(f"code and input exceed {max_bytes} bytes",
                         why="this executor takes requests whose code and input fit its limit",
                         how="send less, or use an executor started with a larger "
                             "--max-input-bytes")


# --- running one request (shared by the node, claims and local audits) -----------------------


async def run_in_child(root: Path, req: ExecRequest, *, timeout: float,
                       use_cgroup: bool = True) -> ExecResult:
    """Run ``req`` in a fresh runner process (its own process tree, metered, killed on timeout)."""
    import trio

    work = root / "compute" / "work"
    work.mkdir(parents=True, exist_ok=True)
    ws = work / f"{req.request_id[-40:]}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    spec = json.dumps({"store": str(root), "request": req.to_event(), "workspace": str(ws),
                       "cgroup": use_cgroup, "parent": os.getpid()})
    env = dict(os.environ)
    parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with trio.move_on_after(timeout) as scope:
        proc = await trio.run_process([sys.executable, "-m", "cheng_build.compute.runner"],
                                      stdin=spec.encode(), capture_stdout=True,
                                      capture_stderr=True, check=False, env=env,
                                      start_new_session=True)
    if scope.cancelled_caught:
        from cheng_build.compute.metering import sweep_stale_cgroups
        from cheng_build.compute.workspace import Workspace, remove

        remove(Workspace(ws))
        await trio.to_thread.run_sync(lambda: sweep_stale_cgroups(wait_s=5.0))
        return ExecResult("err", f"timed out after {timeout:g} s")
    try:
        return ExecResult.from_json(json.loads(proc.stdout))
    except ValueError:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return ExecResult("err", f"runner failed: {tail[0][:200]}")


def run_local(root: Path, req: ExecRequest, *, timeout: float = DEFAULT_TIMEOUT_S) -> ExecResult:
    """Run ``req`` here (code and input already in ``root``'s store), in a child process."""
    import trio

    return trio.run(lambda: run_in_child(root, req, timeout=timeout))


def forge(root: Path, cheat: str, result: ExecResult) -> ExecResult:
    """What a cheating executor reports instead (tests and the demo's deliberate cheater):
    ``result`` a made-up result CID, ``meter`` a tenth of the measured usage."""
    if cheat == "result" and result.status == "ok":
        from cheng_build.cas.blockstore import Blockstore
        from cheng_build.cas.cid import cid_str
        from cheng_build.cas.importer import add_bytes

        fake = add_bytes(Blockstore(root), f"forged {time.time_ns()}".encode(), pin=True)
        return replace(result, result_cid=cid_str(fake))
    if cheat == "meter":
        m = result.measured
        return replace(result, measured=replace(m, cpu_ms=m.cpu_ms // 10, mem_bytes=m.mem_bytes // 10,
                                                io_bytes=m.io_bytes // 10))
    return result


def forge_receipt(cheat: str, usage: Usage, receipt: Receipt, key: KeyPair
                  ) -> tuple[Usage, Receipt]:
    """Receipt-level cheats (tests of the requester's checks): ``tamper`` edits the result after
    signing, ``foreign-key`` signs with a key that is not the node's, ``absurd`` bills a negative
    CPU time (signed, so only the usage check can refuse it)."""
    if cheat == "tamper":
        return usage, receipt.replace(result_cid=receipt.result_cid[::-1])
    if cheat == "foreign-key":
        return usage, sign_receipt(receipt.replace(signature=""), KeyPair.generate(receipt.executor_id))
    if cheat == "absurd":
        bad = usage.replace(cpu_ms=-1000)
        return bad, sign_receipt(receipt.replace(usage_digest=bad.digest(), signature=""), key)
    return usage, receipt


def settle_request(req: ExecRequest, result: ExecResult, key: KeyPair, mode: str = ""
                   ) -> tuple[Usage, Receipt]:
    """The usage event and signed receipt of a finished execution."""
    prices = Prices(req.price_cpu_ms, req.price_mem_gb, req.price_io_gb, req.price_gpu_ms,
                    req.price_gpu_mem_gb)
    billing = Billing(req.package_id, req.author_id, key.author_id, prices,
                      req.workload_kind or "other", req.epoch, mode)
    usage = build_usage(result.measured, req.task_id, billing, request_id=req.request_id)
    receipt = Receipt(receipt_id=new_id("receipt"), request_id=req.request_id, task_id=req.task_id,
                      executor_id=key.author_id, result_cid=result.result_cid,
                      usage_id=usage.usage_id, status=result.status, error=result.error,
                      epoch=req.epoch, ts=str(int(time.time())), request_digest=req.digest(),
                      usage_digest=usage.digest(), mode=mode)
    return usage, sign_receipt(receipt, key)


# --- the executor node -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """How an executor node runs."""

    root: Path
    ledger: Path
    key: KeyPair
    listen: str
    caps: tuple[str, ...] = ("cpu",)
    max_requests: int = 0  # 0: serve until stopped
    claim: bool = False
    cheat: str = ""  # a deliberately dishonest node (tests, demo): see forge, forge_receipt
    mode: str = ""
    limits: Limits = field(default_factory=Limits)
    default_timeout_s: int = DEFAULT_TIMEOUT_S


class _Executor:
    def __init__(self, cfg: ExecutorConfig, node: Any) -> None:
        self.cfg = cfg
        self.node = node
        self.served = 0
        self.done: Any = None  # trio.Event, set when max_requests were served

    def _finish_one(self) -> None:
        self.served += 1
        if self.cfg.max_requests and self.served >= self.cfg.max_requests:
            self.done.set()

    async def execute(self, req: ExecRequest) -> tuple[Usage, Receipt]:
        from cheng_build.ledger.log import Ledger

        timeout = req.timeout_s or self.cfg.default_timeout_s
        result = await run_in_child(self.cfg.root, req, timeout=timeout)
        result = forge(self.cfg.root, self.cfg.cheat, result)
        usage, receipt = settle_request(req, result, self.cfg.key, self.cfg.mode)
        usage, receipt = forge_receipt(self.cfg.cheat, usage, receipt, self.cfg.key)
        Ledger(self.cfg.ledger).append_many([usage.to_event(), receipt.to_event()])
        return usage, receipt

    def _check_code(self, req: ExecRequest) -> None:
        from cheng_build.cas.blockstore import Blockstore
        from cheng_build.compute.workspace import check_code

        check_code(Blockstore(self.cfg.root), req.code_cid)

    async def handle(self, stream: Any) -> None:
        import trio

        from cheng_build.pkg.fetch import libp2p_adapter as lp

        reader = lp.FrameReader(stream, self.cfg.limits.max_message_bytes)
        try:
            try:
                obj = _decode(await reader.next())
                ev = obj.get("request")
                if not isinstance(ev, dict) or ev.get("type") != "exec_request":
                    raise InputError("the frame holds no exec_request")
                req = ExecRequest.from_event(ev, money_nano=True)
                check_request(req, executor_id=self.cfg.key.author_id, caps=self.cfg.caps,
                              limits=self.cfg.limits)
                await self._fetch(req, stream.muxed_conn.peer_id)
                await trio.to_thread.run_sync(self._check_code, req)
            except (ChengError, ValueError) as exc:
                what = exc.what if isinstance(exc, ChengError) else str(exc)
                await stream.write(_frame({"error": what}))
                return
            await stream.write(_frame({"accepted": req.request_id}))
            usage, receipt = await self.execute(req)
            try:
                await stream.write(_frame({"receipt": receipt.to_event(), "usage": usage.to_event()}))
            except lp.STREAM_ERRORS:
                pass  # the requester left; the receipt is in the ledger
        except lp.STREAM_ERRORS:
            return
        finally:
            self._finish_one()
            try:
                await stream.close()
            except Exception:
                pass

    async def _fetch(self, req: ExecRequest, peer: Any) -> None:
        from cheng_build.cas.cid import cid_bytes, parse_cid

        roots = [cid_bytes(parse_cid(req.code_cid)), cid_bytes(parse_cid(req.input_cid))]
        # Connected already (the requester dialled us): the address is not dialled again.
        await fetch_keep(self.node, roots, [(None, peer)], self.cfg.limits.max_input_bytes)

    async def claim_loop(self) -> None:
        import trio

        while True:
            await trio.sleep(CLAIM_POLL_S)
            for req in claimable(self.cfg):
                if await trio.to_thread.run_sync(lambda r=req: try_claim(self.cfg, r)):
                    await self.execute(req)
                    self._finish_one()


def claimable(cfg: ExecutorConfig) -> list[ExecRequest]:
    """Open requests of ``cfg.ledger`` this executor can run and nobody has claimed."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import parse_cid
    from cheng_build.ledger.log import iter_events

    store = Blockstore(cfg.root)
    open_reqs: dict[str, ExecRequest] = {}
    for ev in iter_events(cfg.ledger, skip_bad=True):
        t = ev.get("type")
        if t == "exec_request" and not ev.get("executor_id"):
            q = ExecRequest.from_event(ev)
            open_reqs[q.request_id] = q
        elif t == "exec_claim":
            open_reqs.pop(str(ev.get("request_id")), None)
    out = []
    for q in open_reqs.values():
        try:
            check_request(q, executor_id=cfg.key.author_id, caps=cfg.caps, limits=cfg.limits)
            if not (store.has(parse_cid(q.code_cid)) and store.has(parse_cid(q.input_cid))):
                continue
        except ChengError:
            continue
        out.append(q)
    return out


def try_claim(cfg: ExecutorConfig, req: ExecRequest) -> bool:
    """Append a claim; True when it is the first claim of ``req`` in ledger order."""
    from cheng_build.ledger.log import Ledger, iter_events

    mine = Ledger(cfg.ledger).append({"type": "exec_claim", "claim_id": new_id("claim"),
                                      "request_id": req.request_id,
                                      "executor_id": cfg.key.author_id, "epoch": req.epoch,
                                      "ts": str(int(time.time()))})
    for ev in iter_events(cfg.ledger, skip_bad=True):
        if ev.get("type") == "exec_claim" and ev.get("request_id") == req.request_id:
            return ev.get("claim_id") == mine["claim_id"]
    return False


def run_executor(cfg: ExecutorConfig, *, on_ready: Callable[[list[str]], None] | None = None,
                 stop: Callable[[], Any] | None = None) -> int:
    """Serve until ``max_requests`` were served, ``stop()`` returns, or interrupted.

    Raises:
        UsageError: the listen address is bad or busy.
    """
    import multiaddr
    import trio
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.custom_types import TProtocol

    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.core.errors import UsageError
    from cheng_build.pkg.fetch import libp2p_adapter as lp
    from cheng_build.pkg.fetch.p2p.node import BitswapNode
    from cheng_build.pkg.serve import _check_port_free

    try:
        maddr = multiaddr.Multiaddr(cfg.listen)
    except Exception as exc:
        raise UsageError(f"bad --listen address '{cfg.listen}'", why=str(exc),
                         how="write it as /ip4/127.0.0.1/tcp/<port>") from exc
    _check_port_free(cfg.listen)
    cfg.root.mkdir(parents=True, exist_ok=True)
    from cheng_build.compute.metering import sweep_stale_cgroups

    sweep_stale_cgroups()  # left by runners of an earlier node that were killed
    store = Blockstore(cfg.root)
    ex: _Executor | None = None

    async def main() -> None:
        nonlocal ex
        host = lp.make_host(create_new_key_pair(cfg.key.seed))
        async with host.run(listen_addrs=[maddr]), BitswapNode.running(host, store) as node, \
                trio.open_nursery() as nursery:
            me = ex = _Executor(cfg, node)
            me.done = trio.Event()

            async def handler(stream: Any) -> None:
                # One request's failure must never take the node down: log it and go on.
                try:
                    await me.handle(stream)
                except Exception as exc:
                    print(f"executor: request failed: {type(exc).__name__}: {exc}",
                          file=sys.stderr, flush=True)

            host.set_stream_handler(TProtocol(PROTOCOL), handler)
            if on_ready is not None:
                on_ready(lp.listen_addrs(host))
            if cfg.claim:
                nursery.start_soon(me.claim_loop)
            if stop is not None:
                async def stopper() -> None:
                    await stop()
                    me.done.set()

                nursery.start_soon(stopper)
            await me.done.wait()
            # The last requester may still fetch its result from us: serve until it hangs up
            # (bounded, so a requester that never does cannot keep a --max node alive).
            with trio.move_on_after(LINGER_S):
                while host.get_network().connections:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()

    try:
        with lp.quick_gil_handoff():
            trio.run(main)
    except BaseExceptionGroup as eg:
        raise lp.unwrap_group(eg) from None
    return ex.served if ex is not None else 0


__all__ = ["PROTOCOL", "ExecutorConfig", "RequestRefusedError", "check_request", "claimable",
           "fetch_keep", "forge", "forge_receipt", "run_executor", "run_in_child", "run_local",
           "settle_request", "try_claim"]
