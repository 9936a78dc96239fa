"""Signed receipts: every field bound, the key must be the executor's registered key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheng_build.compute.identity import KeyBook, UnregisteredKeyError
from cheng_build.compute.receipts import ReceiptMismatchError, check_receipt, sign_receipt
from cheng_build.compute.records import ExecRequest, Receipt, Usage
from cheng_build.core.errors import SignatureError
from cheng_build.trust.keys import KeyPair

KEY = KeyPair.generate("node:exec-1")
REQ = ExecRequest(request_id="req-1", task_id="job-1", code_cid="bafy-code", input_cid="bafy-in",
                  max_cpu_ms=100, price_cpu_ms=1000)
USAGE = Usage(usage_id="usage-1", task_id="job-1", executor_id="node:exec-1", cpu_ms=40, total=40000)


def _receipt(**kw: object) -> Receipt:
    r = Receipt(receipt_id="receipt-1", request_id="req-1", task_id="job-1",
                executor_id="node:exec-1", result_cid="bafy-out", usage_id="usage-1", status="ok",
                epoch=1, ts="1", request_digest=REQ.digest(), usage_digest=USAGE.digest())
    return sign_receipt(r.replace(**kw), KEY)


def _book() -> KeyBook:
    b = KeyBook()
    b.add("node:exec-1", KEY.pub_key)
    return b


def test_good_receipt_passes() -> None:
    check_receipt(_receipt(), request=REQ, usage=USAGE, keys=_book())


@pytest.mark.parametrize("field", ["result_cid", "status", "usage_id", "request_id", "epoch",
                                   "executor_id", "error", "request_digest", "usage_digest"])
def test_any_edited_field_breaks_the_signature(field: str) -> None:
    r = _receipt()
    value = 7 if field == "epoch" else "edited"
    with pytest.raises(SignatureError):
        check_receipt(r.replace(**{field: value}))


def test_unsigned_original_receipt_is_reported() -> None:
    with pytest.raises(SignatureError, match="not signed"):
        check_receipt(Receipt(receipt_id="receipt-9", signature="free text"))


def test_key_not_registered_to_the_executor() -> None:
    other = KeyPair.generate("node:exec-1")
    r = sign_receipt(_receipt().replace(signature=""), other)
    check_receipt(r)  # the signature itself is fine...
    with pytest.raises(UnregisteredKeyError):
        check_receipt(r, keys=_book())  # ...but the key is not node:exec-1's


def test_receipt_for_another_request_or_usage() -> None:
    r = _receipt()
    with pytest.raises(ReceiptMismatchError):
        check_receipt(r, request=REQ.replace(request_id="req-2"))
    with pytest.raises(ReceiptMismatchError, match="different"):
        check_receipt(r, request=REQ.replace(max_cpu_ms=99999))
    with pytest.raises(ReceiptMismatchError):
        check_receipt(r, usage=USAGE.replace(cpu_ms=1))
    with pytest.raises(ReceiptMismatchError):
        check_receipt(r, request=REQ.replace(executor_id="node:other"))


def test_keybook_from_a_real_registry(tmp_path: Path) -> None:
    from cheng_build.trust.registry_ops import register_namespace

    reg = tmp_path / "registry.jsonl"
    register_namespace(reg, KEY, "pkg://cheng/exec-1")
    book = KeyBook.from_registry(reg)
    check_receipt(_receipt(), keys=book)
    with pytest.raises(UnregisteredKeyError, match="not registered to node:nobody"):
        book.check("node:nobody", KEY.pub_key)
