"""Domain-separated canonical bytes: exactly what an Ed25519 signature of ours covers.

Encoding (version 1), the same for every kind of signed record::

    <domain tag> "\\n" <canonical JSON>

- canonical JSON = a JSON object with keys sorted by code point, separators ``,`` and ``:`` with
  no spaces, strings as UTF-8 (not ``\\u``-escaped unless JSON requires it), integers in decimal,
  floats in Python's shortest round-trip ``repr`` (``1.0``, ``0.25``), no ``NaN``/``Infinity``.
  It equals ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``; a
  property test holds the fast encoder below to that oracle.
- domain tags keep a signature made for one purpose from being replayed as another:
  ``cheng.registry.publish.v1`` (a package snapshot), ``cheng.registry.key.v1`` (a key rotation or
  revocation), ``cheng.registry.checkpoint.v1`` (an operator's signed head), ``cheng.registry.gov.v1`` (a
  governance line: tag, maintainer, promote, quarantine, release, appeal, decision — its
  ``type`` is part of the signed body).

A publish signature covers exactly the fields a lock also carries (``package_id, author_id,
channel, epoch, cid, format, ast_simhash64, originality_score``, each only where present), so a
lock entry's signature can be checked on its own, without the registry. Values are normalised
first so a lock written as TOML (where a 64-bit unsigned integer does not fit) checks the same:
``ast_simhash64`` is always 16 lowercase hex digits, ``originality_score`` a float, ``epoch`` an int.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from json.encoder import encode_basestring  # C-accelerated

from cheng_build.core.errors import IntegrityError
from cheng_build.core.lazyre import lazy

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

PUBLISH_DOMAIN = b"cheng.registry.publish.v1\n"
KEY_DOMAIN = b"cheng.registry.key.v1\n"
CHECKPOINT_DOMAIN = b"cheng.registry.checkpoint.v1\n"
GOV_DOMAIN = b"cheng.registry.gov.v1\n"

# The signed set of a publish line, sorted (the canonical order).
PUBLISH_SIGNED_FIELDS: tuple[str, ...] = tuple(sorted((
    "package_id", "author_id", "channel", "epoch", "cid", "format",
    "ast_simhash64", "originality_score",
)))
_PUBLISH_KEY_PREFIX = {k: (encode_basestring(k) + ":").encode() for k in PUBLISH_SIGNED_FIELDS}


_CANON_HEX16 = re.compile(r"[0-9a-f]{16}")
is_canonical_simhash = _CANON_HEX16.fullmatch  # 16 lowercase hex digits: the form we write
_ANY_HEX = lazy(globals(), "_ANY_HEX", r"(?:0[xX])?([0-9a-fA-F]{1,16})")


_PUBLISH_DOMAIN_TEXT = PUBLISH_DOMAIN.decode()


class CanonicalError(IntegrityError):
    """A value cannot be put in canonical form (wrong type, out of range)."""


def simhash_hex(value: object) -> str:
    """Normalise an ``ast_simhash64`` (int or hex string, with or without ``0x``) to 16 hex digits.

    Raises:
        CanonicalError: not a 64-bit unsigned value.
    """
    if type(value) is str:
        if _CANON_HEX16.fullmatch(value):
            return value  # the form we write: nothing to do (the common case, once per line)
        m = _ANY_HEX.fullmatch(value)
        if m is None:
            raise CanonicalError(f"ast_simhash64 {value[:40]!r} is not 1-16 hex digits")
        n = int(m.group(1), 16)
    elif isinstance(value, bool):
        raise CanonicalError("ast_simhash64 must be a 64-bit value, not a boolean")
    elif isinstance(value, int):
        n = value
    else:
        raise CanonicalError(f"ast_simhash64 must be a hex string or integer, got {type(value).__name__}")
    if not 0 <= n < 1 << 64:
        raise CanonicalError(f"ast_simhash64 {value!r} does not fit in 64 bits")
    return f"{n:016x}"


def check_score(value: object) -> float:
    """Validate an ``originality_score`` (a number within 0.0-1.0) and return it as a float.

    Raises:
        CanonicalError: not such a number.
    """
    return _score(value)


def _score(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CanonicalError(f"originality_score must be a number, got {type(value).__name__}")
    f = float(value)
    if not (math.isfinite(f) and 0.0 <= f <= 1.0):
        raise CanonicalError(f"originality_score {value!r} is not within 0.0-1.0")
    return f


def _epoch(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CanonicalError(f"epoch must be an integer, got {type(value).__name__}")
    if value < 0:
        raise CanonicalError(f"epoch {value} is negative")
    return value


def normalize_publish_fields(fields: Mapping[str, object]) -> dict[str, object]:
    """Pick the signed fields of a publish record (those present and not None), normalised.

    Raises:
        CanonicalError: a field has the wrong type or range.
    """
    out: dict[str, object] = {}
    for key in PUBLISH_SIGNED_FIELDS:
        value = fields.get(key)
        if value is None:
            continue
        if key == "ast_simhash64":
            out[key] = simhash_hex(value)
        elif key == "originality_score":
            out[key] = _score(value)
        elif key == "epoch":
            out[key] = _epoch(value)
        elif isinstance(value, str):
            out[key] = value
        else:
            raise CanonicalError(f"{key} must be a string, got {type(value).__name__}")
    return out


def publish_payload(fields: Mapping[str, object]) -> bytes:
    """The bytes a publish signature covers: domain tag + canonical JSON of the signed fields.

    Built by hand because it runs once per registry line on every verify and ``json.dumps`` with
    ``sort_keys`` is several times slower; ``tests/test_registry_canonical.py`` checks it equals
    the ``json.dumps`` definition above for arbitrary values.

    Raises:
        CanonicalError: a signed field has the wrong type or range.
    """
    # Fast path: a line as ``publish`` writes it (all eight fields, already in normal form) is
    # one format operation; anything else takes the general loop below.
    try:
        sh, score, epoch = fields["ast_simhash64"], fields["originality_score"], fields["epoch"]
        if (type(sh) is str and type(score) is float and type(epoch) is int and epoch >= 0
                and 0.0 <= score <= 1.0 and _CANON_HEX16.fullmatch(sh)):
            f: Any = fields  # a non-string value raises TypeError: the slow path decides
            return publish_payload_normal(sh, f["author_id"], f["channel"], f["cid"], epoch,
                                          f["format"], score, f["package_id"])
    except (KeyError, TypeError):
        pass
    parts: list[bytes] = []
    for key in PUBLISH_SIGNED_FIELDS:
        value = fields.get(key)
        if value is None:
            continue
        if key == "ast_simhash64":
            enc = '"' + simhash_hex(value) + '"'
        elif key == "originality_score":
            enc = repr(_score(value))
        elif key == "epoch":
            enc = str(_epoch(value))
        elif isinstance(value, str):
            enc = encode_basestring(value)
        else:
            raise CanonicalError(f"{key} must be a string, got {type(value).__name__}")
        parts.append(_PUBLISH_KEY_PREFIX[key] + enc.encode("utf-8", "surrogatepass"))
    return PUBLISH_DOMAIN + b"{" + b",".join(parts) + b"}"


def publish_payload_normal(simhash: str, author_id: str, channel: str, cid: str, epoch: int,
                           fmt: str, score: float, package_id: str) -> bytes:
    """:func:`publish_payload` of all eight fields, already in normal form.

    For callers that checked the forms themselves (a registry line's parse does): ``simhash`` 16
    lowercase hex digits, ``score`` a float within 0.0-1.0, ``epoch`` a non-negative int, the
    rest strings. One f-string (one BUILD_STRING) is about twice as fast as %-formatting here.

    Raises:
        TypeError: a string field is not a string.
    """
    enc: Any = encode_basestring
    return (f'{_PUBLISH_DOMAIN_TEXT}{{"ast_simhash64":"{simhash}",'
            f'"author_id":{enc(author_id)},"channel":{enc(channel)},'
            f'"cid":{enc(cid)},"epoch":{epoch},"format":{enc(fmt)},'
            f'"originality_score":{score!r},"package_id":{enc(package_id)}}}'
            ).encode("utf-8", "surrogatepass")


def canonical_json(obj: Mapping[str, object]) -> bytes:
    """Canonical JSON bytes of a mapping (sorted keys, compact, UTF-8).

    Raises:
        CanonicalError: a value JSON cannot carry canonically (NaN, infinity, non-JSON types).
    """
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CanonicalError(f"cannot encode canonically: {exc}") from None
    return text.encode("utf-8", "surrogatepass")


def key_payload(fields: Mapping[str, object]) -> bytes:
    """The bytes a key rotation/revocation signature covers."""
    return KEY_DOMAIN + canonical_json(fields)


def checkpoint_payload(fields: Mapping[str, object]) -> bytes:
    """The bytes an operator's checkpoint signature covers."""
    return CHECKPOINT_DOMAIN + canonical_json(fields)


def gov_payload(fields: Mapping[str, object]) -> bytes:
    """The bytes a governance line's signature covers (every field but ``signature``)."""
    return GOV_DOMAIN + canonical_json(fields)
