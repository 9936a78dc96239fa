"""DSSE envelopes (Dead Simple Signing Envelope, v1.0) signed with the project's Ed25519 keys.

The format (secure-systems-lab/dsse ``envelope.md``), as JSON::

    {"payloadType": "<media type>",
     "payload": "<standard base64 of the payload bytes>",
     "signatures": [{"keyid": "<who>", "sig": "<standard base64 of the signature>"}]}

What is signed is never the JSON but the pre-authentication encoding of type and body::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with LEN the decimal byte length. That binds the payload type, so an in-toto statement cannot be
replayed as some other document signed by the same key. ``keyid`` is our ``ed25519:<base64>``
public key: the verifier learns which key to look up in the registry without a second mapping,
and any DSSE implementation treats ``keyid`` as an opaque hint (the spec says so).

Parsing is strict (unknown top-level or signature keys, non-canonical base64, oversize inputs are
refused) because this is data from outside that decides what a user trusts.
"""

from __future__ import annotations

import base64
import binascii
import json

from cheng_build.core.errors import IntegrityError, SignatureError
from cheng_build.core.record import dataclass
from cheng_build.trust.keys import ED25519_PREFIX, KeyPair, Verifier

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
# An attestation lists one artifact and its inputs; a megabyte is far beyond any honest one.
MAX_ENVELOPE_BYTES = 4 << 20
MAX_SIGNATURES = 16


class EnvelopeError(IntegrityError):
    """A DSSE envelope is malformed."""


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature of an envelope: the signer's public key (``keyid``) and the raw bytes."""

    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed envelope; ``payload`` is the decoded bytes."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def pae(self) -> bytes:
        """The bytes every signature covers."""
        return pae(self.payload_type, self.payload)

    def to_json(self) -> bytes:
        """The envelope as compact JSON (the ``.intoto.jsonl`` line, without the newline)."""
        return json.dumps({
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signatures": [{"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                           for s in self.signatures],
        }, separators=(",", ":")).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign(payload_type: str, payload: bytes, key: KeyPair) -> Envelope:
    """An envelope of ``payload`` with one signature by ``key`` (Ed25519 is deterministic: the
    same payload and key give the same bytes)."""
    sig = base64.b64decode(key.sign(pae(payload_type, payload))[len(ED25519_PREFIX):])
    return Envelope(payload_type, payload, (Signature(key.pub_key, sig),))


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError(f"envelope {what} is not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"envelope {what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != value:
        # One byte string, one encoding: no malleable padding bits.
        raise EnvelopeError(f"envelope {what} is not canonical base64")
    return raw


def parse(data: bytes) -> Envelope:
    """Parse one envelope (JSON object; a ``.intoto.jsonl`` file's single line).

    Raises:
        EnvelopeError: not a well-formed DSSE envelope.
    """
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope is {len(data)} bytes, more than {MAX_ENVELOPE_BYTES}")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError("envelope is not JSON", why=str(exc)) from None
    if not isinstance(obj, dict):
        raise EnvelopeError("envelope is not a JSON object")
    extra = set(obj) - {"payloadType", "payload", "signatures"}
    if extra:
        raise EnvelopeError(f"envelope has unknown keys: {', '.join(sorted(extra))}")
    ptype = obj.get("payloadType")
    if not isinstance(ptype, str) or not ptype:
        raise EnvelopeError("envelope payloadType is missing")
    payload = _b64(obj.get("payload"), "payload")
    sigs = obj.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise EnvelopeError("envelope has no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise EnvelopeError(f"envelope has {len(sigs)} signatures, more than {MAX_SIGNATURES}")
    out: list[Signature] = []
    for i, s in enumerate(sigs):
        if not isinstance(s, dict) or set(s) - {"keyid", "sig"}:
            raise EnvelopeError(f"envelope signature {i} is not {{keyid, sig}}")
        keyid = s.get("keyid", "")
        if not isinstance(keyid, str):
            raise EnvelopeError(f"envelope signature {i} keyid is not a string")
        out.append(Signature(keyid, _b64(s.get("sig"), f"signature {i}")))
    return Envelope(ptype, payload, tuple(out))


def verify(env: Envelope, pub_key: str) -> None:
    """Check that ``pub_key`` (``ed25519:<base64>``) signed ``env``.

    Raises:
        SignatureError: no signature by that key verifies.
    """
    v = Verifier()
    pub = v.public(pub_key)
    message = env.pae()
    for s in env.signatures:
        if s.keyid == pub_key and len(s.sig) == 64 and v.check(pub, message, s.sig):
            return
    raise SignatureError("attestation signature does not verify",
                         why="the statement was changed after signing, or another key signed it")


__all__ = ["IN_TOTO_PAYLOAD_TYPE", "Envelope", "EnvelopeError", "Signature", "pae", "parse", "sign",
           "verify"]
