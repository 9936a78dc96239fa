"""``cheng-storage exec | meter | receipt | audit | sample | fraud | ratelimit | repute | executor``.

The compute subcommands (seed 000 section C; formats in ``reference/storage-compute-formats.md``
sections 1.4-1.8). Each records one event in the ledger (``--root``/``--ledger``) and prints
``<command> ok: <id>`` as the original did, or with ``--format:json`` the event itself. Default
mode writes collision-free ids, integer nano-unit money and hash-chained lines; ``--compat``
writes the original's unchained lines (length ids, float money) for tools that need them.

Network commands: ``executor --listen: --priv:`` runs an executor node; ``exec --peer: --code:
--input: --wait [--out:]`` sends it a request and checks the signed receipt; ``audit --recompute``
re-runs a receipt's request (locally or on ``--peer`` executors) and compares result CIDs.

(Over 400 lines on purpose: the nine compute subcommands share the ledger-writing, epoch and
reporting helpers here, and each one's flags and runner are short.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.cli.storage_common import add_common_flags, config_from_args
from cheng_build.core.errors import InputError, UsageError

_ORIG_OK = {"exec": "exec", "meter": "meter", "receipt": "receipt", "audit": "audit",
            "fraud": "fraud"}


def _money(flag: str) -> Any:
    from cheng_build.ledger.money import MoneyError, to_nano

    def convert(text: str) -> int:
        try:
            value = to_nano(text, what=flag)
        except MoneyError as exc:
            raise UsageError(exc.what, how=f"give {flag} as a decimal number, e.g. 0.25") from None
        if value < 0:
            raise UsageError(f"{flag} is negative", how=f"give {flag} as a number >= 0")
        return value

    convert.__name__ = flag.lstrip("-")
    return convert


def _rate(flag: str) -> Any:
    conv = _money(flag)

    def convert(text: str) -> int:
        value = int(conv(text))
        if value > 10**9:
            raise UsageError(f"{flag} {text} is above 1", how=f"give {flag} as a fraction, e.g. 0.12")
        return value

    convert.__name__ = flag.lstrip("-")
    return convert


def _usage_flags(p: Parser, *, maxima: bool) -> None:
    g = p.add_argument_group("resources" + (" (the request's maxima)" if maxima else " (measured)"))
    for flag, what in (("cpu_ms", "CPU milliseconds"), ("mem_bytes", "memory bytes (peak)"),
                       ("io_bytes", "bytes written"), ("gpu_ms", "GPU milliseconds"),
                       ("gpu_mem_bytes", "GPU memory bytes (peak)"), ("gpu_count", "GPUs")):
        g.add_argument(f"--{flag}", type=int, default=0, help=what)
    g.add_argument("--gpu_type", default="", help="GPU model, e.g. A10G")
    g.add_argument("--workload", default="", help="train | infer | other (GPU price factor "
                                                  "1.35 / 0.85 / 1.0)")
    m = p.add_argument_group("prices (decimal, whole units; stored as integer nano units)")
    for flag, what in (("price_cpu", "per CPU ms"), ("price_mem", "per GiB of memory"),
                       ("price_io", "per GiB written"), ("price_gpu", "per GPU ms"),
                       ("price_gpu_mem", "per GiB of GPU memory")):
        m.add_argument(f"--{flag}", type=_money(f"--{flag}"), default=0, help=what)


def _ids(p: Parser, *names: str, required: tuple[str, ...] = ()) -> None:
    helps = {"task": "task id (job-1)", "package": "package id (pkg://cheng/fs)",
             "author": "package author (node:alice): gets the royalty",
             "executor": "executor node id (node:exec-1)", "requester": "requester id (node:app-1)",
             "auditor": "auditor id", "reporter": "reporter id", "request": "request id (req-...)",
             "receipt": "receipt id (receipt-...)", "usage": "usage id (usage-...)",
             "result": "result CID", "status": "ok | bad | err", "note": "free text",
             "reason": "why (bad-output, under-metering, ...)",
             "evidence": "CID of the evidence"}
    for n in names:
        p.add_argument(f"--{n}", default="", required=n in required, help=helps.get(n, n))


def _epoch_flag(p: Parser) -> None:
    p.add_argument("--epoch", type=int, default=None,
                   help="settlement epoch (default: the ledger's current epoch)")


def _compat_flag(p: Parser) -> None:
    p.add_argument("--compat", action="store_true",
                   help="write the original's line: length id, float money, no hash chain")


_T = "cheng-storage"
_EXAMPLES = {
    "meter": f"{_T} meter --task:job-1 --package:pkg://cheng/fs --author:node:alice "
             "--executor:node:exec-1 --cpu_ms:1200 --mem_bytes:104857600 --price_cpu:0.000001 "
             "--price_mem:0.10 --royalty:0.12 --treasury:0.03 --epoch:1",
    "exec": f"{_T} exec --task:job-1 --requester:node:app-1 --code:<cid> --input:<cid>"
            "  # an open request\n"
            f"{_T} exec --peer:/ip4/127.0.0.1/tcp/4011/p2p/<id> --code:<cid> --input:<cid> "
            "--task:job-1 --wait --out:result",
    "executor": f"cheng-registry keygen --author:node:exec-1 --out:exec.key\n"
                f"cheng-registry register-key --package:pkg://cheng/exec-1 --priv:exec.key\n"
                f"{_T} executor --listen:/ip4/127.0.0.1/tcp/4011 --priv:exec.key --claim",
    "audit": f"{_T} audit --recompute --receipt:<receipt id> --auditor:node:auditor-1 "
             "--penalty:0.10\n"
             f"{_T} audit --recompute --receipt:<id> --replicas:3 --peer:<a> --peer:<b> --peer:<c>",
    "sample": f"{_T} sample --epoch:1 --base-rate:0.10 --high-risk-rate:1.0 --seed:round-1 --record",
    "fraud": f"{_T} fraud --task:job-1 --executor:node:exec-1 --reporter:node:auditor-1 "
             "--receipt:<receipt id> --reason:bad-output --severity:high --epoch:1",
}


def register(name: str, parser: Parser) -> None:
    """Add the flags of subcommand ``name``."""
    add_common_flags(parser, p2p=name in ("exec", "executor", "audit"))
    add_format_flag(parser)
    _register(name, parser)
    if parser.description:
        import textwrap

        parser.description = textwrap.fill(parser.description, 96)
    parser.epilog = (("examples:\n  " + _EXAMPLES[name].replace("\n", "\n  ") + "\n\n")
                     if name in _EXAMPLES else "") + \
        "Exit 0 ok, 1 a check failed, 2 bad usage or missing input. See docs/compute.md."


def _register(name: str, parser: Parser) -> None:
    add = _ADD_ARGUMENTS.get(name)
    if add is None:  # pragma: no cover
        raise RuntimeError(f"storage_compute does not implement {name}")
    add(parser)


def _add_meter(parser: Parser) -> None:
    parser.description = ("Record a usage (a 'compute' event) and its cost split: author "
                          "royalty, treasury, executor. Needs --cpu_ms > 0 or --gpu_ms > 0.")
    _ids(parser, "task", "package", "author", "executor", "request")
    _usage_flags(parser, maxima=False)
    parser.add_argument("--royalty", type=_rate("--royalty"), default=0, help="author share, 0-1")
    parser.add_argument("--treasury", type=_rate("--treasury"), default=0,
                        help="treasury share, 0-1")
    _epoch_flag(parser)
    _compat_flag(parser)


def _add_exec(parser: Parser) -> None:
    parser.description = (
        "Record an execution request. With --peer it is also sent to that executor, which "
        "fetches --code (a UnixFS directory holding cis.toml) and --input from this root, runs "
        "the DAG in its sandbox and answers with a signed receipt; --wait waits for it and "
        "--out writes the result directory. Without --executor and --peer the request is "
        "open: any capable executor node may claim it.")
    _ids(parser, "task", "package", "author", "requester", "executor")
    parser.add_argument("--input", default="", help="input CID (cid:// accepted)")
    parser.add_argument("--code", default="", help="code CID: a directory holding cis.toml")
    parser.add_argument("--args", default="", help="arguments CID")
    _usage_flags(parser, maxima=True)
    _epoch_flag(parser)
    parser.add_argument("--sig", default="", help="free-text signature field (compat)")
    parser.add_argument("--orderbook", default=None,
                        help="choose the executor from this orderbook (default: "
                             "<root>/orderbook.json when it exists; without one the request "
                             "is open)")
    parser.add_argument("--risk-window-epochs", type=int, default=3,
                        help="fraud-score window of the orderbook match (default 3)")
    parser.add_argument("--caps", default="", help="capabilities the executor needs (cpu,cuda)")
    parser.add_argument("--wait", action="store_true", help="wait for the receipt (needs --peer)")
    parser.add_argument("--out", default=None, help="write the result directory here (new path)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds to wait (default 300)")
    parser.add_argument("--registry", default=None,
                        help="registry.jsonl whose keys bind executor ids (default: only the "
                             "executor's libp2p identity is checked)")
    _compat_flag(parser)


def _add_receipt(parser: Parser) -> None:
    parser.description = ("Record an execution receipt, signed with the executor's key "
                          "(--priv). It binds the request and the usage found in the ledger.")
    _ids(parser, "request", "task", "executor", "status", "result", "usage",
         required=("request", "task", "executor", "status"))
    parser.add_argument("--error", default="", help="error text for a non-ok status")
    parser.add_argument("--proof", default="", help="proof CID")
    parser.add_argument("--priv", default=None, help="the executor's key file (signs)")
    parser.add_argument("--sig", default="", help="free-text signature (--compat only)")
    _epoch_flag(parser)
    _compat_flag(parser)


def _add_audit(parser: Parser) -> None:
    parser.description = (
        "Record an audit of a task's result. With --recompute --receipt:<id> the receipt's "
        "request is run again (locally, or on each --peer executor) and the result CIDs are "
        "compared: equal is ok; different records a failed audit with --penalty and a "
        "fraud_report naming both results. With --replicas:3 the majority decides.")
    _ids(parser, "task", "executor", "auditor", "status", "result", "note", "receipt")
    parser.add_argument("--penalty", type=_money("--penalty"), default=0,
                        help="penalty of a failed audit (whole units)")
    parser.add_argument("--recompute", action="store_true",
                        help="re-run the receipt's request and compare result CIDs")
    parser.add_argument("--replicas", type=int, default=1,
                        help="recompute this many times (on distinct --peer executors when "
                             "given); the majority result decides (default 1)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per recompute")
    _epoch_flag(parser)
    _compat_flag(parser)


def _add_sample(parser: Parser) -> None:
    parser.description = (
        "Select receipts to audit: high-risk receipts (non-ok, missing links, fraud-linked, an "
        "executor with bad history) at --high-risk-rate, the rest at --base-rate, decided by "
        "sha256(receipt_id|seed). The same ledger and seed give the same selection anywhere.")
    parser.add_argument("--epoch", type=int, default=-1, help="epoch filter (-1: all)")
    parser.add_argument("--base-rate", type=float, default=0.10, help="fraction, percent or bps")
    parser.add_argument("--high-risk-rate", type=float, default=1.0)
    parser.add_argument("--risk-window-epochs", type=int, default=3)
    parser.add_argument("--seed", default="", help="the sampling seed (a beacon value)")
    parser.add_argument("--auditor", default="system")
    parser.add_argument("--rate", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="write the selection JSON here")
    parser.add_argument("--record", action="store_true", help="append audit_sample events")


def _add_fraud(parser: Parser) -> None:
    parser.description = ("Report fraud by an executor. The --request or --receipt must exist "
                          "in the ledger and agree with --task and --executor.")
    _ids(parser, "task", "executor", "reporter", "request", "receipt", "reason", "evidence",
         required=("task", "executor", "reporter"))
    parser.add_argument("--severity", default="medium", help="low | medium | high")
    _epoch_flag(parser)
    _compat_flag(parser)


def _add_ratelimit(parser: Parser) -> None:
    parser.description = "Count a requester's requests and an executor's receipts (advisory)."
    _ids(parser, "requester", "executor")
    parser.add_argument("--max-requests", type=int, default=0)
    parser.add_argument("--max-receipts", type=int, default=0)
    parser.add_argument("--epoch", type=int, default=-1, help="epoch filter (-1: all)")


def _add_repute(parser: Parser) -> None:
    parser.description = "An executor's reputation from receipts, audits and fraud reports."
    _ids(parser, "executor", required=("executor",))


def _add_executor(parser: Parser) -> None:
    parser.description = (
        "Run an executor node: accept execution requests over libp2p, fetch code and input "
        "by CID (from the requester), run the DAG in the CIS sandbox, store out/ in this root, "
        "meter the run, record usage and a signed receipt, and answer with them. It also "
        "claims open requests of the ledger it can serve (--claim).")
    parser.add_argument("--priv", required=True, help="the executor's key file (its "
                        "author_id is the executor id; its key signs receipts and is the "
                        "node's libp2p identity)")
    parser.add_argument("--caps", default="cpu", help="capabilities offered (cpu,cuda)")
    parser.add_argument("--max", type=int, default=0, help="stop after this many requests")
    parser.add_argument("--max-input-bytes", type=int, default=1 << 30,
                        help="refuse requests whose code and input are larger (default 1 GiB)")
    parser.add_argument("--claim", action="store_true",
                        help="also claim open requests in the ledger and run them")
    parser.add_argument("--cheat", default="", help=argparse.SUPPRESS)  # tests: a cheater


_ADD_ARGUMENTS: dict[str, Callable[[Parser], None]] = {
    "meter": _add_meter,
    "exec": _add_exec,
    "receipt": _add_receipt,
    "audit": _add_audit,
    "sample": _add_sample,
    "fraud": _add_fraud,
    "ratelimit": _add_ratelimit,
    "repute": _add_repute,
    "executor": _add_executor,
}


# --- helpers ---------------------------------------------------------------------------------


def _strip_cid(text: str) -> str:
    for prefix in ("cid://", "cid:"):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def _epoch(args: argparse.Namespace, ledger: Path) -> int:
    if args.epoch is not None:
        if args.epoch < 0:
            raise UsageError(f"--epoch {args.epoch} is negative", how="give --epoch:<n >= 0>")
        return int(args.epoch)
    from cheng_build.ledger.log import latest_epoch

    return latest_epoch(ledger)


def _write(args: argparse.Namespace, ledger: Path, record: Any) -> dict[str, Any]:
    from cheng_build.ledger.log import Ledger

    if getattr(args, "compat", False):
        from cheng_build.compute.legacy import legacy_id

        record = record.replace(**{record.ID: legacy_id(record)})
        return Ledger(ledger, chain=False).append(record.to_compat_event())
    return Ledger(ledger).append(record.to_event())


def _report(args: argparse.Namespace, name: str, event: dict[str, Any], extra: str = "") -> int:
    if args.format == "json":
        print(json.dumps(event, ensure_ascii=False))
    else:
        from cheng_build.compute.records import parse_event

        rec = parse_event(event)
        print(f"{name} ok: {rec.id if rec else ''}{extra}")
    return 0


def _now() -> str:
    return str(int(time.time()))


# --- subcommands -----------------------------------------------------------------------------


def _meter(args: argparse.Namespace) -> int:
    from cheng_build.compute.limits import check_usage_figures
    from cheng_build.compute.metering import Billing, Measured, build_usage
    from cheng_build.ledger.pricing import Prices

    for flag in ("task", "package", "author", "executor"):
        if not getattr(args, flag):
            raise UsageError(f"missing --{flag}", how="run 'cheng-storage meter --help'")
    check_usage_figures(args.cpu_ms, args.mem_bytes, args.io_bytes, args.gpu_ms,
                        args.gpu_mem_bytes, args.gpu_count, what="usage")
    if args.cpu_ms <= 0 and args.gpu_ms <= 0:
        raise UsageError("missing --cpu_ms or --gpu_ms", why="a usage needs CPU or GPU time > 0")
    cfg = config_from_args(args)
    prices = Prices(args.price_cpu, args.price_mem, args.price_io, args.price_gpu,
                    args.price_gpu_mem, args.royalty, args.treasury)
    billing = Billing(args.package, args.author, args.executor, prices, args.workload or "other",
                      _epoch(args, cfg.ledger_path), cfg.mode.value)
    m = Measured(args.cpu_ms, args.mem_bytes, args.io_bytes, args.gpu_ms, args.gpu_mem_bytes,
                 args.gpu_count, args.gpu_type, "declared")
    usage = build_usage(m, args.task, billing, request_id=args.request)
    return _report(args, "meter", _write(args, cfg.ledger_path, usage))


def _request_from_args(args: argparse.Namespace, epoch: int, mode: str) -> Any:
    from cheng_build.compute.ids import new_id
    from cheng_build.compute.limits import check_usage_figures
    from cheng_build.compute.records import ExecRequest

    check_usage_figures(args.cpu_ms, args.mem_bytes, args.io_bytes, args.gpu_ms,
                        args.gpu_mem_bytes, args.gpu_count, what="request")
    for flag in ("task",):
        if not getattr(args, flag):
            raise UsageError(f"missing --{flag}", how="run 'cheng-storage exec --help'")
    return ExecRequest(
        request_id=new_id("req"), task_id=args.task, package_id=args.package,
        author_id=args.author, requester_id=args.requester, executor_id=args.executor,
        input_cid=_strip_cid(args.input) if not args.compat else args.input,
        code_cid=_strip_cid(args.code) if not args.compat else args.code, args_cid=args.args,
        max_cpu_ms=args.cpu_ms, max_mem_bytes=args.mem_bytes, max_io_bytes=args.io_bytes,
        max_gpu_ms=args.gpu_ms, max_gpu_mem_bytes=args.gpu_mem_bytes,
        max_gpu_count=args.gpu_count, gpu_type=args.gpu_type, workload_kind=args.workload,
        price_cpu_ms=args.price_cpu, price_mem_gb=args.price_mem, price_io_gb=args.price_io,
        price_gpu_ms=args.price_gpu, price_gpu_mem_gb=args.price_gpu_mem,
        selection_source="explicit" if args.executor else "", epoch=epoch, ts=_now(),
        signature=args.sig, caps=args.caps, timeout_s=args.timeout if args.peer else 0, mode=mode)


def _exec(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.out is not None and not args.wait:
        raise UsageError("--out needs --wait", how="add --wait to wait for the result")
    if args.wait and not cfg.peers:
        raise UsageError("--wait needs --peer:<executor multiaddr>",
                         how="start one with 'cheng-storage executor --listen:... --priv:...'")
    if args.out is not None and Path(args.out).exists():
        raise InputError(f"--out: {args.out} already exists", how="choose a new path")
    if not 0 < args.timeout <= 24 * 3600:
        raise UsageError("--timeout must be 1..86400 seconds")
    req = _request_from_args(args, _epoch(args, cfg.ledger_path), cfg.mode.value)
    book = Path(args.orderbook) if args.orderbook else cfg.root / "orderbook.json"
    if not req.executor_id and not cfg.peers and (args.orderbook or book.exists()):
        req = _orderbook_match(req, book, cfg.ledger_path, args)
    if not cfg.peers:
        return _report(args, "exec", _write(args, cfg.ledger_path, req),
                       "" if req.executor_id else " (open: any capable executor may claim it)")
    if len(cfg.peers) != 1:
        raise UsageError("exec sends to exactly one --peer")
    if not req.code_cid or not req.input_cid:
        raise UsageError("--code and --input are required with --peer",
                         how="store them first: cheng-storage put --file:<dir>")
    from cheng_build.compute.client import ExecClient

    client = ExecClient(cfg.root, cfg.ledger_path, registry=args.registry)
    outcome = client.submit(cfg.peers[0], req, wait=args.wait, timeout=args.timeout,
                            out=Path(args.out) if args.out else None)
    if args.format == "json":
        print(json.dumps(outcome.to_json(), ensure_ascii=False))
    else:
        print(f"exec ok: {req.request_id}")
        if outcome.receipt is not None:
            r = outcome.receipt
            print(f"receipt ok: {r.receipt_id} status={r.status} result={r.result_cid} "
                  f"executor={r.executor_id}")
            if outcome.usage is not None:
                u = outcome.usage
                print(f"usage: {u.usage_id} cpu_ms={u.cpu_ms} mem_bytes={u.mem_bytes} "
                      f"io_bytes={u.io_bytes} gpu_ms={u.gpu_ms} source={u.source}")
            if outcome.out is not None:
                print(f"result written: {outcome.out}")
    if outcome.receipt is not None and outcome.receipt.status != "ok":
        from cheng_build.core.errors import ChengError

        raise ChengError(f"request {req.request_id} failed on {outcome.receipt.executor_id}: "
                         f"{outcome.receipt.error or outcome.receipt.status}",
                         why=f"the signed receipt {outcome.receipt.receipt_id} says "
                             f"status={outcome.receipt.status}",
                         how="fix the DAG or its input and send a new request")
    return 0


def _orderbook_match(req: Any, book: Path, ledger: Path, args: argparse.Namespace) -> Any:
    from cheng_build.compute.ledgerio import events
    from cheng_build.compute.orderbook import fraud_scores, load_orderbook, match

    cards = load_orderbook(book)
    scores = fraud_scores(list(events(ledger)), args.epoch or 0, args.risk_window_epochs)
    m = match(cards, workload=req.workload_kind, max_cpu_ms=req.max_cpu_ms,
              max_gpu_ms=req.max_gpu_ms, max_io_bytes=req.max_io_bytes,
              now_ms=int(time.time() * 1000), scores=scores)
    return req.replace(executor_id=m.peer_id, selection_source="orderbook",
                       expected_cost_nano=m.expected_cost_nano, selected_fraud_score=m.fraud_score,
                       selected_bandwidth_out_bytes=m.bandwidth_out_bytes)


def _receipt(args: argparse.Namespace) -> int:
    from cheng_build.compute.ids import new_id
    from cheng_build.compute.ledgerio import ComputeIndex
    from cheng_build.compute.receipts import sign_receipt
    from cheng_build.compute.records import Receipt

    cfg = config_from_args(args)
    r = Receipt(receipt_id=new_id("receipt"), request_id=args.request, task_id=args.task,
                executor_id=args.executor, result_cid=_strip_cid(args.result),
                usage_id=args.usage, status=args.status, error=args.error, proof_cid=args.proof,
                epoch=_epoch(args, cfg.ledger_path), ts=_now(), signature=args.sig,
                mode=cfg.mode.value)
    if args.compat:
        return _report(args, "receipt", _write(args, cfg.ledger_path, r.replace(result_cid=args.result)))
    if not args.priv:
        raise UsageError("missing --priv", why="default-mode receipts are signed by the executor",
                         how="pass --priv:<executor key file> (or --compat for an unsigned line)")
    from cheng_build.trust.keys import load_key

    key = load_key(args.priv)
    if key.author_id and key.author_id != args.executor:
        raise UsageError(f"--priv is the key of {key.author_id}, not of {args.executor}")
    idx = ComputeIndex.load(cfg.ledger_path)
    req = idx.request(args.request)
    if req.task_id != args.task:
        raise InputError(f"--task {args.task} is not the task of {args.request} ({req.task_id})")
    r = r.replace(request_digest=req.digest())
    if args.usage:
        u = idx.usages.get(args.usage)
        if u is None:
            raise InputError(f"usage {args.usage} not found in ledger")
        r = r.replace(usage_digest=u.digest())
    return _report(args, "receipt", _write(args, cfg.ledger_path, sign_receipt(r, key)))


def _audit(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.recompute:
        if not args.receipt:
            raise UsageError("--recompute needs --receipt:<receipt id>")
        if not 1 <= args.replicas <= 15:
            raise UsageError("--replicas must be 1..15")
        from cheng_build.compute.audit import recompute_audit

        outcome = recompute_audit(cfg.root, cfg.ledger_path, args.receipt,
                                  auditor=args.auditor or "system", peers=list(cfg.peers),
                                  replicas=args.replicas, penalty=args.penalty,
                                  epoch=args.epoch, timeout=args.timeout)
        if args.format == "json":
            print(json.dumps(outcome.to_json(), ensure_ascii=False))
        else:
            print(f"audit ok: {outcome.audit.audit_id} status={outcome.audit.status} "
                  f"claimed={outcome.audit.result_cid} recomputed={outcome.audit.expected_cid}")
            if outcome.fraud is not None:
                print(f"fraud ok: {outcome.fraud.report_id} severity=high "
                      f"(penalty {outcome.audit.penalty} nano units)")
        if outcome.audit.status != "ok":
            from cheng_build.core.errors import ChengError

            raise ChengError(f"receipt {args.receipt} of {outcome.audit.executor_id} "
                             f"{'failed its audit' if outcome.audit.status == 'bad' else 'is inconclusive'}",
                             why="\n".join(outcome.reasons) or None,
                             how=None if outcome.audit.status == "bad" else
                             "recompute with more --replicas on distinct --peer executors")
        return 0
    for flag in ("task", "executor", "auditor", "status"):
        if not getattr(args, flag):
            raise UsageError(f"missing --{flag}", how="run 'cheng-storage audit --help'")
    from cheng_build.compute.ids import new_id
    from cheng_build.compute.records import Audit

    a = Audit(audit_id=new_id("audit"), task_id=args.task, executor_id=args.executor,
              auditor_id=args.auditor, result_cid=args.result, status=args.status,
              penalty=args.penalty, epoch=_epoch(args, cfg.ledger_path), note=args.note, ts=_now(),
              receipt_id=args.receipt)
    if args.receipt:
        from cheng_build.compute.ledgerio import ComputeIndex

        rec = ComputeIndex.load(cfg.ledger_path).receipt(args.receipt)
        if rec.task_id != args.task or rec.executor_id != args.executor:
            raise InputError(f"receipt {args.receipt} is not task {args.task} of {args.executor}",
                             why=f"it is task {rec.task_id} of {rec.executor_id}")
        a = a.replace(request_id=rec.request_id)
    return _report(args, "audit", _write(args, cfg.ledger_path, a))


def _sample(args: argparse.Namespace) -> int:
    if args.rate is not None:
        raise UsageError("--rate has been removed, use --base-rate and --high-risk-rate")
    from cheng_build.compute.ids import new_id
    from cheng_build.compute.ledgerio import events
    from cheng_build.compute.sampling import SampleParams, sample
    from cheng_build.core.atomic import atomic_write_text
    from cheng_build.ledger.log import Ledger

    cfg = config_from_args(args)
    params = SampleParams(args.epoch, args.base_rate, args.high_risk_rate,
                          args.risk_window_epochs, args.seed, args.auditor)
    result = sample(events(cfg.ledger_path), params, ts=_now(), new_id=lambda: new_id("sample"))
    text = json.dumps(result.to_json(), separators=(",", ":"), ensure_ascii=False)
    if args.out:
        atomic_write_text(args.out, text)
    else:
        print(text)
    if args.record and result.samples:
        Ledger(cfg.ledger_path).append_many([s.to_event() for s in result.samples])
    return 0


def _fraud(args: argparse.Namespace) -> int:
    from cheng_build.compute.ids import new_id
    from cheng_build.compute.ledgerio import SEVERITY_WEIGHT, ComputeIndex, check_fraud_target
    from cheng_build.compute.records import FraudReport

    if args.severity not in SEVERITY_WEIGHT:
        raise UsageError("invalid --severity (expected low|medium|high)")
    cfg = config_from_args(args)
    idx = ComputeIndex.load(cfg.ledger_path)
    request_id = check_fraud_target(idx, task=args.task, executor=args.executor,
                                    request_id=args.request, receipt_id=args.receipt)
    f = FraudReport(report_id=new_id("fraud"), task_id=args.task, request_id=request_id,
                    receipt_id=args.receipt, executor_id=args.executor, reporter_id=args.reporter,
                    reason=args.reason, evidence_cid=args.evidence, severity=args.severity,
                    epoch=_epoch(args, cfg.ledger_path), ts=_now())
    return _report(args, "fraud", _write(args, cfg.ledger_path, f),
                   f" severity_weight={SEVERITY_WEIGHT[args.severity]}")


def _ratelimit(args: argparse.Namespace) -> int:
    from cheng_build.compute.ledgerio import events
    from cheng_build.compute.standing import ratelimit

    if not args.requester and not args.executor:
        raise UsageError("missing --requester or --executor")
    cfg = config_from_args(args)
    rl = ratelimit(events(cfg.ledger_path), requester=args.requester, executor=args.executor,
                   max_requests=args.max_requests, max_receipts=args.max_receipts,
                   epoch=args.epoch)
    print(json.dumps(rl.to_json(), separators=(",", ":")) if args.format == "json" else
          "\n".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                    for k, v in rl.to_json().items()))
    return 0


def _repute(args: argparse.Namespace) -> int:
    from cheng_build.compute.ledgerio import events
    from cheng_build.compute.standing import repute

    cfg = config_from_args(args)
    rep = repute(events(cfg.ledger_path), args.executor)
    print(json.dumps(rep.to_json(), separators=(",", ":")) if args.format == "json" else
          "\n".join(f"{k}: {v}" for k, v in rep.to_json().items()))
    return 0


def _executor(args: argparse.Namespace) -> int:
    from cheng_build.compute.node import ExecutorConfig, run_executor
    from cheng_build.trust.keys import load_key

    cfg = config_from_args(args)
    if not cfg.listen:
        raise UsageError("missing --listen", how="e.g. --listen:/ip4/127.0.0.1/tcp/0")
    key = load_key(args.priv)
    if not key.author_id:
        raise UsageError("the --priv key has no author_id (the executor id)",
                         how="cheng-registry keygen --author:node:exec-1 --out:exec.key")
    caps = tuple(sorted({c.strip() for c in args.caps.split(",") if c.strip()}))
    if args.max < 0:
        raise UsageError("--max must be >= 0")
    if args.max_input_bytes <= 0:
        raise UsageError("--max-input-bytes must be > 0")
    from cheng_build.compute.limits import Limits

    def ready(addrs: list[str]) -> None:
        for a in addrs:
            print(f"executor listening: {a}", flush=True)

    served = run_executor(ExecutorConfig(root=cfg.root, ledger=cfg.ledger_path, key=key,
                                         listen=cfg.listen, caps=caps, max_requests=args.max,
                                         claim=args.claim, cheat=args.cheat, mode=cfg.mode.value,
                                         limits=Limits(max_input_bytes=args.max_input_bytes)),
                          on_ready=ready)
    print(f"executor done: {served} requests", file=sys.stderr)
    return 0


def run(name: str, args: argparse.Namespace) -> int:
    """Do ``name``; return the exit code."""
    handler = {"meter": _meter, "exec": _exec, "receipt": _receipt, "audit": _audit,
               "sample": _sample, "fraud": _fraud, "ratelimit": _ratelimit, "repute": _repute,
               "executor": _executor}[name]
    return int(handler(args))
