"""Signing and checking receipts: the executor's Ed25519 signature binds request, usage, result.

A default-mode receipt carries ``pub_key`` and ``signature`` (``ed25519:<base64>``, the project's
keys, :mod:`cheng_build.trust.keys`) over::

    b"cheng.compute.receipt.v1\\n" + canonical JSON of every receipt field but ``signature``

where the fields include ``request_digest`` and ``usage_digest`` (``sha256:<hex>`` of the request's
and the usage's canonical events, :meth:`Record.digest`). So the signature covers the request
(code, input, limits, prices), the measured usage and ``result_cid``; changing any of them, or
presenting the receipt for another request, breaks a check. The original's receipts carry a free
text ``signature`` that nothing verifies; they are read, and :func:`check_receipt` reports them
as unsigned.
"""

from __future__ import annotations

from cheng_build.compute.identity import KeyBook
from cheng_build.compute.records import ExecRequest, Receipt, Usage
from cheng_build.core.errors import IntegrityError, SignatureError
from cheng_build.trust.canonical import canonical_json
from cheng_build.trust.keys import ED25519_PREFIX, KeyPair, Verifier

RECEIPT_DOMAIN = b"cheng.compute.receipt.v1\n"


class ReceiptMismatchError(IntegrityError):
    """A receipt does not belong to the request or usage it is presented with."""


def receipt_payload(r: Receipt) -> bytes:
    """The bytes a receipt's signature covers."""
    ev = r.to_event()
    ev.pop("signature", None)
    ev["pub_key"] = r.pub_key
    return RECEIPT_DOMAIN + canonical_json(ev)


def sign_receipt(r: Receipt, key: KeyPair) -> Receipt:
    """``r`` with ``pub_key`` and ``signature`` set by ``key``."""
    r = r.replace(pub_key=key.pub_key, signature="")
    return r.replace(signature=key.sign(receipt_payload(r)))


def check_receipt(r: Receipt, *, request: ExecRequest | None = None, usage: Usage | None = None,
                  keys: KeyBook | None = None, verifier: Verifier | None = None) -> None:
    """Check a receipt's signature, that its key is the executor's, and what it binds.

    Args:
        r: the receipt.
        request: when given, the receipt must be for it (id, task, digest).
        usage: when given, the receipt must bind it (id, digest, executor).
        keys: when given, ``r.pub_key`` must be registered to ``r.executor_id``.
        verifier: a reused :class:`Verifier` (hot loops).

    Raises:
        SignatureError: unsigned (the original's free text), malformed or not verifying.
        UnregisteredKeyError: the key is not the executor's.
        ReceiptMismatchError: the receipt is for another request or usage.
    """
    if not r.signature.startswith(ED25519_PREFIX) or not r.pub_key:
        raise SignatureError(f"receipt {r.receipt_id} is not signed",
                             why="its signature is not an ed25519 signature (the original "
                                 "tooling's receipts carry free text that nothing verifies)")
    (verifier or Verifier()).verify(r.pub_key, receipt_payload(r), r.signature,
                                    what=f"signature of receipt {r.receipt_id}")
    if keys is not None:
        keys.check(r.executor_id, r.pub_key)
    if request is not None:
        if r.request_id != request.request_id:
            raise ReceiptMismatchError(
                f"receipt {r.receipt_id} is for request {r.request_id}, not {request.request_id}")
        if r.request_digest != request.digest():
            raise ReceiptMismatchError(
                f"receipt {r.receipt_id} was signed for a different {request.request_id}",
                why="the request's fields (code, input, limits or prices) differ from what the "
                    "executor signed")
        if request.executor_id and request.executor_id != r.executor_id:
            raise ReceiptMismatchError(
                f"receipt {r.receipt_id} is from {r.executor_id}, the request names "
                f"{request.executor_id}")
    if usage is not None:
        if r.usage_id != usage.usage_id or r.usage_digest != usage.digest():
            raise ReceiptMismatchError(f"receipt {r.receipt_id} does not bind usage {usage.usage_id}",
                                       why="the usage was changed after the executor signed")
        if usage.executor_id != r.executor_id:
            raise ReceiptMismatchError(f"usage {usage.usage_id} is by {usage.executor_id}, the "
                                       f"receipt by {r.executor_id}")
