"""``apply``: check RWAD's result against what was asked and exported, then write the ack.

The original pulled each field with grep, *first occurrence anywhere in the file*, so a nested
``"status":"pending"`` inside some object could answer for the top-level status. We parse JSON
and read top-level keys only. Checks, in the original's order (reference §1.10), each failing
with one line that names both values:

1. ``schema_version``, ``request_schema``, ``batch_id``, ``settlement_sha256`` present (strings);
2. result schema, request schema, batch id (``--batch-id``), status (``--require-status``);
3. ``totals`` is an object;
4. with ``--batch``: the batch is a well-formed v1 (its sha rechecked on the exact settlement
   substring) or v2 (sha over the JCS settlement, Ed25519 signature) batch, of the requested
   schema, whose batch id, sha and epoch the result echoes.

Then the ack (``cheng-rwad-ack/v1``, one compact line) is returned; the CLI writes it atomically.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cheng_build.core.errors import SignatureError
from cheng_build.settle.errors import BridgeError
from cheng_build.settle.rwad import jcs
from cheng_build.settle.rwad.export import split_v1
from cheng_build.settle.rwad.schemas import ACK_V1, BATCH_V1, BATCH_V2, RESULT_V1, SIGN_DOMAIN_V2
from cheng_build.trust.keys import verify_signature

_REQUIRED = ("schema_version", "request_schema", "batch_id", "settlement_sha256")


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse ``data`` as one JSON object.

    Raises:
        BridgeError: not UTF-8 JSON, or not an object.
    """
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise BridgeError(f"{what} is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise BridgeError(f"{what} is not JSON",
                          why=str(exc).splitlines()[0] if str(exc) else None) from None
    if type(obj) is not dict:
        raise BridgeError(f"{what} is not a JSON object", why=f"it holds a {type(obj).__name__}")
    return obj


def _str(obj: dict[str, Any], key: str, what: str) -> str:
    v = obj.get(key)
    if v is None:
        raise BridgeError(f"missing {key}" if what == "result" else f"{what}: missing {key}")
    if type(v) is not str:
        raise BridgeError(f"{what} {key} is not a string", why=f"got {json.dumps(v)[:60]}")
    return v


def _int(obj: dict[str, Any], key: str, what: str, default: int = 0) -> int:
    v = obj.get(key, default)
    if type(v) is not int:
        raise BridgeError(f"{what} {key} is not an integer", why=f"got {json.dumps(v)[:60]}")
    return int(v)


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch whose integrity was checked."""

    schema: str
    batch_id: str
    settlement_sha256: str
    epoch: int


def check_batch(data: bytes, *, signer: str | None = None) -> Batch:
    """Check a batch file's own integrity (sha; v2 signature, by ``signer`` when given).

    A v2 batch names its own key, so its signature alone proves only that nothing changed since
    *someone* signed it; ``signer`` (an ``ed25519:`` public key) pins who.

    Raises:
        BridgeError: not a batch, an unknown schema, a sha that does not match its settlement.
        SignatureError: a v2 signature that does not verify.
    """
    env = parse_json_object(data, "batch file")
    if not all(type(env.get(k)) is str for k in ("schema_version", "batch_id", "settlement_sha256")):
        raise BridgeError("invalid batch file payload",
                          why="a batch has string schema_version, batch_id and settlement_sha256")
    schema = env["schema_version"]
    sha = env["settlement_sha256"]
    if schema == BATCH_V1:
        part = split_v1(data)
        if part is None:
            raise BridgeError("invalid batch file payload",
                              why="a v1 batch ends with its settlement object and '}'")
        actual = hashlib.sha256(part).hexdigest()
    elif schema == BATCH_V2:
        signer_obj: Any
        settlement = env.get("settlement")
        signature = env.get("signature")
        signer_obj = env.get("signer")
        if (type(settlement) is not dict or type(signature) is not str
                or type(signer_obj) is not dict):
            raise BridgeError("invalid batch file payload",
                              why="a v2 batch has a settlement object, a signer and a signature")
        unsigned = {k: v for k, v in env.items() if k != "signature"}
        try:
            message = SIGN_DOMAIN_V2 + jcs.canonical(unsigned)
        except (TypeError, ValueError) as exc:
            raise BridgeError("invalid batch file payload", why=str(exc)) from None
        if signer is not None and signer_obj.get("pub_key") != signer:
            raise BridgeError(f"batch signer mismatch: got={signer_obj.get('pub_key')} "
                              f"expect={signer}",
                              why="the batch was signed by another node's key")
        verify_signature(str(signer_obj.get("pub_key")), message, signature,
                         what="batch signature")
        actual = hashlib.sha256(jcs.canonical(settlement)).hexdigest()
    else:
        raise BridgeError(f"unknown batch schema {schema}", why=f"known: {BATCH_V1}, {BATCH_V2}")
    if actual != sha:
        raise BridgeError(f"batch settlement_sha256 does not match its settlement: "
                          f"recorded={sha} actual={actual}",
                          why="the settlement was edited after export")
    return Batch(schema, env["batch_id"], sha, _int(env, "epoch", "batch", -1))


@dataclass(frozen=True, slots=True)
class ApplyRequest:
    """What ``apply`` was asked to hold the result to (an empty string disables a check)."""

    result_path: str
    batch_id: str = ""
    require_status: str = ""
    require_result_schema: str = RESULT_V1
    require_request_schema: str | None = None  # None: the batch's schema, else v1
    require_signer: str | None = None  # v2: the exporting node's ed25519: public key


def apply_result(result: bytes, batch: bytes | None, req: ApplyRequest) -> bytes:
    """Check ``result`` (and ``batch``) and return the ack line.

    Raises:
        BridgeError: the first check that fails, naming both values.
        SignatureError: a v2 batch whose signature does not verify.
    """
    res = parse_json_object(result, "result file")
    values = {k: _str(res, k, "result") for k in _REQUIRED}
    want_request = req.require_request_schema
    if want_request is None:  # the schema the batch was exported in, else the original's v1
        peek = parse_json_object(batch, "batch file") if batch is not None else {}
        schema = peek.get("schema_version")
        want_request = schema if type(schema) is str else BATCH_V1
    if req.require_result_schema and values["schema_version"] != req.require_result_schema:
        raise BridgeError(f"result schema mismatch: got={values['schema_version']} "
                          f"expect={req.require_result_schema}")
    if want_request and values["request_schema"] != want_request:
        raise BridgeError(f"request schema mismatch: got={values['request_schema']} "
                          f"expect={want_request}")
    if req.batch_id and values["batch_id"] != req.batch_id:
        raise BridgeError(f"batch id mismatch: got={values['batch_id']} expect={req.batch_id}")
    status = res.get("status")
    if type(status) is not str and status is not None:
        raise BridgeError("result status is not a string", why=f"got {json.dumps(status)[:60]}")
    if req.require_status and status != req.require_status:
        raise BridgeError(f"status mismatch: got={status if status is not None else '(missing)'} "
                          f"expect={req.require_status}",
                          how="RWAD has not finalized this batch yet; apply again when it has"
                          if status == "pending" else None)
    totals = res.get("totals")
    if type(totals) is not dict:
        raise BridgeError("missing totals")
    epoch = _int(res, "epoch", "result")
    if batch is not None:
        checked = check_batch(batch, signer=req.require_signer)
        if want_request and checked.schema != want_request:
            raise BridgeError(f"batch schema mismatch: got={checked.schema} expect={want_request}")
        if values["batch_id"] != checked.batch_id:
            raise BridgeError(f"batch id mismatch between result and batch: "
                              f"result={values['batch_id']} batch={checked.batch_id}")
        if values["settlement_sha256"] != checked.settlement_sha256:
            raise BridgeError(f"settlement_sha256 mismatch between result and batch: "
                              f"result={values['settlement_sha256']} "
                              f"batch={checked.settlement_sha256}")
        if "epoch" in res and epoch != checked.epoch:
            raise BridgeError(f"epoch mismatch between result and batch: result={epoch} "
                              f"batch={checked.epoch}")
    ack = {"ok": True, "schema_version": ACK_V1, "applied_from": values["schema_version"],
           "request_schema": values["request_schema"], "batch_id": values["batch_id"],
           "status": status if status is not None else "", "epoch": epoch,
           "settlement_sha256": values["settlement_sha256"], "totals": totals,
           "result_file": req.result_path}
    return json.dumps(ack, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


__all__ = ["ApplyRequest", "Batch", "SignatureError", "apply_result", "check_batch",
           "parse_json_object"]
