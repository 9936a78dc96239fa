"""``cheng-rwad-bridge export|apply|verify-contract``: thin wrappers over ``settle.rwad``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cheng_build.cli.args import Parser
from cheng_build.cli.input_checks import input_file, output_file
from cheng_build.cli.storage_common import add_common_flags, config_from_args
from cheng_build.core.errors import EXIT_OK, UsageError

_B = "cheng-rwad-bridge"
_HELP = {
    "export": (
        "Settle --epoch of the ledger (as 'cheng-storage settle --format:json' does) and wrap it "
        "in a batch for RWAD. v1 is the original envelope byte for byte: settlement_sha256 is the "
        "sha256 of the settlement bytes it embeds. v2 adds the ledger's hash-chain head and event "
        "counts, embeds the settlement as canonical JSON (RFC 8785) and is signed with --priv "
        "(Ed25519). A batch holds only ids, CIDs, counts, totals and hashes.",
        f"{_B} export --epoch:1 --root:build/cheng_storage --batch-id:cheng-epoch-1 \\\n"
        "      --out:build/cheng_storage/rwad-batch-epoch-1.json\n"
        f"{_B} export --epoch:1 --schema:cheng-rwad-settlement/v2 --priv:node.key --out:batch.json"),
    "apply": (
        "Check RWAD's result file: its schema, the request schema, the batch id, the status and "
        "totals; with --batch also that the batch is intact (sha; v2 signature) and that the "
        "result echoes its batch id, sha and epoch. Then write the ack (cheng-rwad-ack/v1). "
        "Any mismatch: one line naming both values, exit 1, no ack written. Empty --require-* "
        "values turn a check off.",
        f"{_B} apply --result:rwad-result-epoch-1.json --batch:rwad-batch-epoch-1.json \\\n"
        "      --batch-id:cheng-epoch-1 --require-status:finalized --out:rwad-ack-epoch-1.json"),
    "verify-contract": (
        "Write a fixture batch, run the RWAD tool on it (--batchFile --budget:3.0 --stateOut "
        "--out), apply its result with --require-status:finalized and check result and ack: "
        "the original's verify_rwad_interface_contract. Prints 'verify contract ok'.",
        f"{_B} verify-contract --rwad-tool:standin            # the stand-in shipped with us\n"
        f"{_B} verify-contract --rwad-root:~/RWAD-blockchain  # tools/rwad_cheng_points_settle.sh\n"
        f"{_B} verify-contract --rwad-tool:'bash /opt/rwad/settle.sh'"),
}


def register(name: str, parser: Parser) -> None:
    text, examples = _HELP[name]
    parser.description = text
    parser.epilog = "examples:\n  " + examples.replace("\n", "\n  ")
    if name == "export":
        from cheng_build.settle.rwad.schemas import BATCH_SCHEMAS, BATCH_V1

        add_common_flags(parser)
        parser.add_argument("--epoch", type=int, default=-1, help="epoch to settle (-1: all)")
        parser.add_argument("--batch-id", dest="batch_id",
                            help="batch id (default cheng-epoch-<n>, or cheng-epoch-all)")
        parser.add_argument("--schema", default=BATCH_V1, choices=list(BATCH_SCHEMAS),
                            help=f"batch schema (default {BATCH_V1})")
        parser.add_argument("--top", type=int, default=0,
                            help="reconcile/preview entries in the settlement (default 0)")
        parser.add_argument("--compat", action="store_true",
                            help="settle with the original's float money and table order")
        parser.add_argument("--priv", help="the exporting node's key (file or env:VAR); v2 only")
        parser.add_argument("--out", help="write the batch here (atomically) instead of stdout")
    elif name == "apply":
        from cheng_build.settle.rwad.schemas import RESULT_V1

        parser.add_argument("--result", required=True, help="RWAD's result file")
        parser.add_argument("--batch", help="the batch the result answers (checked too)")
        parser.add_argument("--batch-id", dest="batch_id", default="",
                            help="the batch id the result must name")
        parser.add_argument("--require-status", dest="require_status", default="",
                            help="the status the result must have (e.g. finalized)")
        parser.add_argument("--require-result-schema", dest="require_result_schema",
                            default=RESULT_V1, help=f"default {RESULT_V1}")
        parser.add_argument("--require-request-schema", dest="require_request_schema",
                            default=None,
                            help="default: the --batch's schema, else cheng-rwad-settlement/v1")
        parser.add_argument("--require-signer", dest="require_signer", default=None,
                            help="v2 batches: the exporting node's public key (ed25519:... or "
                                 "its key file) that must have signed the batch")
        parser.add_argument("--out", help="write the ack here (atomically) instead of stdout")
    else:
        parser.add_argument("--rwad-tool", dest="rwad_tool",
                            help="the RWAD tool's command line ('standin' for ours)")
        parser.add_argument("--rwad-root", dest="rwad_root",
                            help="an RWAD checkout (default $RWAD_CHAIN_ROOT); runs "
                                 "<root>/tools/rwad_cheng_points_settle.sh")
        parser.add_argument("--root", default="build/cheng_rwad_contract_verify",
                            help="where the fixture, result and ack go")
        parser.add_argument("--batch-id", dest="batch_id", default="cheng-epoch-9")
        parser.add_argument("--epoch", type=int, default=9)


def _emit(out: str | None, data: bytes, what: str) -> None:
    from cheng_build.core.atomic import atomic_write_bytes

    if out:
        atomic_write_bytes(out, data)
        print(f"{what} ok: {out}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def _export(args: argparse.Namespace) -> int:
    from cheng_build.cli.storage_settle import settle_from_args, warnings
    from cheng_build.settle.rwad import export
    from cheng_build.settle.rwad.schemas import BATCH_V2

    if args.out:
        output_file(args.out, "--out")
    key = None
    if args.schema == BATCH_V2:
        if not args.priv:
            raise UsageError("a v2 batch is signed: --priv is missing",
                             how="pass --priv:<key file> (cheng-registry keygen writes one) or "
                                 "--priv:env:VAR")
        from cheng_build.trust.keys import load_key

        key = load_key(args.priv)
    elif args.priv:
        raise UsageError("--priv signs v2 batches only",
                         how="add --schema:cheng-rwad-settlement/v2, or drop --priv")
    batch_id = args.batch_id or export.default_batch_id(args.epoch)
    if not batch_id:
        raise UsageError("--batch-id is empty")
    args.format = "json"
    s = settle_from_args(args)
    for line in warnings(s):
        print(f"export: warning: {line}", file=sys.stderr)
    if key is not None:
        data = export.envelope_v2(s, batch_id=batch_id, signer=key)
    else:
        ledger = str(config_from_args(args).ledger_path.absolute())
        from cheng_build.settle.render import to_json

        data = export.envelope_v1(to_json(export.chain_safe(s.doc)), batch_id=batch_id,
                                  epoch=args.epoch,
                                  ledger_path=ledger)
    _emit(args.out, data, "export")
    return EXIT_OK


def _read(path: str, flag: str) -> bytes:
    checked = input_file(path, flag)
    assert checked is not None
    size = checked.stat().st_size
    if size > 256 << 20:
        raise UsageError(f"{flag}: {path} is {size} bytes", why="a batch or result is far smaller")
    return checked.read_bytes()


def _apply(args: argparse.Namespace) -> int:
    from cheng_build.settle.rwad.apply import ApplyRequest, apply_result

    if args.out:
        output_file(args.out, "--out")
    result = _read(args.result, "--result")
    batch = _read(args.batch, "--batch") if args.batch else None
    signer = None
    if args.require_signer:
        from cheng_build.trust.keys import load_public_key

        signer = load_public_key(args.require_signer)
    ack = apply_result(result, batch, ApplyRequest(
        require_signer=signer,
        result_path=args.result, batch_id=args.batch_id, require_status=args.require_status,
        require_result_schema=args.require_result_schema,
        require_request_schema=args.require_request_schema))
    _emit(args.out, ack, "apply")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from cheng_build.settle.rwad.contract import tool_command, verify_contract

    command = tool_command(args.rwad_tool, args.rwad_root)
    run = verify_contract(command, Path(args.root), batch_id=args.batch_id, epoch=args.epoch)
    print(f"batch: {run.batch}\nresult: {run.result}\nack: {run.ack}")
    print("verify contract ok")
    return EXIT_OK


def run(name: str, args: argparse.Namespace) -> int:
    return {"export": _export, "apply": _apply, "verify-contract": _verify}[name](args)
