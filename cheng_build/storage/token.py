"""Lease tokens: the v2 format we write (signed over everything) and the original's v1, read in compat.

v2 token (a JSON object; the file written by ``leasegen``, keys in this order)::

    type "lease_token", version 2, lease_id, package_id, author_id, provider_id, bytes,
    duration_days, replicas, price_per_gb_month, royalty_rate, treasury_rate, start_ts,
    cid, expires_ts, nonce, issuer_role, pub_key, signature

- money and rates are integer nano-units (``0.25`` -> ``250000000``), ``bytes``/``duration_days``/
  ``replicas`` positive integers, ``start_ts``/``expires_ts`` decimal unix seconds as strings (the
  original's type), ``cid`` the content it pays for (``""``: any content up to ``bytes``), ``nonce``
  32 lowercase hex digits, ``issuer_role`` ``author`` or ``provider`` (whose key signed it);
- ``lease_id`` = ``lease-`` + CIDv1(raw, sha2-256) of ``cheng.storage.lease-id.v2\n`` +
  ``pub_key`` + ``\n`` + ``nonce``: every token names a distinct lease (a fresh 128-bit nonce),
  and no issuer can name a lease in another key's id space;
- ``signature`` = Ed25519 (``ed25519:<base64>``, :mod:`cheng_build.trust.keys`) over
  ``b"cheng.storage.lease-token.v2\\n"`` + canonical JSON (keys sorted, no spaces, UTF-8) of **all**
  fields except ``signature`` itself: prices, rates, CID, expiry, nonce, role and key included.

A v2 token is accepted only if (:func:`check_token`, :func:`check_content`): it parses strictly; the
signature verifies; now < ``expires_ts``; the content matches ``cid`` (when set) and fits ``bytes``;
the key is registered in the registry to the issuer (``author``: the current key of namespace
``package_id`` owned by ``author_id``; ``provider``: the current key of some namespace owned by
``provider_id``); and its ``lease_id`` is not in the ledger yet (one use).

v1 token (the original's, reference §1.3): keys ``type, lease_id, package_id, author_id,
provider_id, bytes, duration_days, replicas, price_per_gb_month, royalty_rate, treasury_rate,
start_ts, pub_key, signature`` with float prices; the key is ``u`` + base64url of a libp2p
protobuf Ed25519 public key and the signature covers only
``lease_id|package_id|author_id|provider_id|int32(bytes)|duration_days|replicas|start_ts``.
Read only in compat mode, where its weaknesses remain: the key certifies itself (nothing ties it to
the author or provider), prices and rates can be edited freely, it never expires, it is not bound to
any content. We still refuse to use one twice.

(Over 400 lines on purpose: the v2 format and the v1 compat reader share field parsing, signing
bytes and checks, and the format is documented here in one place.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from json.encoder import encode_basestring  # C-accelerated
from pathlib import Path

from cheng_build.cas.cid import cid_text
from cheng_build.core.errors import InputError, IntegrityError, SignatureError
from cheng_build.ledger.ids import canonical_json, int32, legacy_lease_id
from cheng_build.ledger.money import NANO, MoneyError, to_nano
from cheng_build.trust.keys import KeyPair, Verifier

DOMAIN = b"cheng.storage.lease-token.v2\n"
MAX_TOKEN_BYTES = 64 * 1024
_NONCE = re.compile(r"[0-9a-f]{32}")
_TS = re.compile(r"0|[1-9][0-9]{0,11}")
_ID = re.compile(r"lease-b[a-z2-7]{20,100}")


class TokenError(IntegrityError):
    """A lease token is malformed, forged, expired, replayed or not for this write."""


class Role(StrEnum):
    """Whose key signed a v2 token."""

    AUTHOR = "author"
    PROVIDER = "provider"


@dataclass(frozen=True, slots=True)
class LeaseToken:
    """A parsed token of either version (v1 money converted to nano-units)."""

    version: int
    lease_id: str
    package_id: str
    author_id: str
    provider_id: str
    bytes: int
    duration_days: int
    replicas: int
    price_per_gb_month: int
    royalty_rate: int
    treasury_rate: int
    start_ts: str
    cid: str = ""
    expires_ts: str = ""
    nonce: str = ""
    issuer_role: str = ""
    pub_key: str = ""
    signature: str = ""

    def to_dict(self) -> dict[str, object]:
        """The v2 token object, keys in the written order."""
        d: dict[str, object] = {"type": "lease_token"}
        for name in _FIELDS:  # not dataclasses.asdict: it deep-copies, 10x slower on this path
            d[name] = getattr(self, name)
        return d


_FIELDS = tuple(f.name for f in fields(LeaseToken))
_V2_KEYS = ("type", *_FIELDS)
_SIGNED_OUT = ("signature",)


def _canon(token: Mapping[str, object], skip: tuple[str, ...]) -> bytes:
    """Canonical JSON of a token's fields minus ``skip``: the bytes of
    ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` (a property
    test holds them equal), built directly: a token holds only strings and integers, and this is
    on the path of every write (json.dumps with sort_keys costs as much as the Ed25519 check)."""
    parts = []
    for k in sorted(token):
        if k in skip:
            continue
        v = token[k]
        if type(v) is str:
            parts.append(f"{encode_basestring(k)}:{encode_basestring(v)}")
        elif type(v) is int:
            parts.append(f"{encode_basestring(k)}:{v}")
        else:
            return canonical_json({k2: v2 for k2, v2 in token.items() if k2 not in skip})
    return ("{" + ",".join(parts) + "}").encode("utf-8", "surrogateescape")


def signed_bytes(token: Mapping[str, object]) -> bytes:
    """What a v2 signature covers: the domain tag and every field but ``signature``."""
    return DOMAIN + _canon(token, _SIGNED_OUT)


_SIGNED_ORDER = tuple((k, encode_basestring(k) + ":") for k in sorted(_V2_KEYS) if k not in _SIGNED_OUT)


def token_signed_bytes(token: LeaseToken) -> bytes:
    """:func:`signed_bytes` of a parsed v2 token, read from its fields in the canonical order
    (the same bytes; a test holds them equal): the hot path of ``put --lease``."""
    parts = []
    for k, prefix in _SIGNED_ORDER:
        v = "lease_token" if k == "type" else getattr(token, k)
        parts.append(prefix + (encode_basestring(v) if type(v) is str else str(v)))
    return DOMAIN + ("{" + ",".join(parts) + "}").encode("utf-8", "surrogateescape")


ID_DOMAIN = b"cheng.storage.lease-id.v2\n"


def v2_lease_id(pub_key: str, nonce: str) -> str:
    """The lease id a v2 token must carry: ``lease-`` + CIDv1(raw, sha2-256) of
    ``b"cheng.storage.lease-id.v2\n" + pub_key + "\n" + nonce`` (see the module doc)."""
    digest = hashlib.sha256(ID_DOMAIN + f"{pub_key}\n{nonce}".encode()).digest()
    return "lease-" + cid_text(b"\x01\x55\x12\x20" + digest)


def issue(key: KeyPair, *, package_id: str, author_id: str, provider_id: str, nbytes: int,
          duration_days: int, replicas: int, price_per_gb_month: int, royalty_rate: int,
          treasury_rate: int, now: int, cid: str = "", expires_ts: int | None = None,
          nonce: str | None = None) -> LeaseToken:
    """Make and sign a v2 token with ``key`` (its ``author_id`` picks the issuer role).

    Raises:
        TokenError: the key belongs to neither the author nor the provider, or a field is invalid.
    """
    if key.author_id == author_id:
        role = Role.AUTHOR
    elif key.author_id == provider_id:
        role = Role.PROVIDER
    else:
        raise TokenError(f"key of {key.author_id!r} can sign for neither {author_id!r} nor {provider_id!r}",
                         how="sign with the author's or the provider's registered key")
    body: dict[str, object] = {
        "type": "lease_token", "version": 2, "lease_id": "", "package_id": package_id,
        "author_id": author_id, "provider_id": provider_id, "bytes": nbytes,
        "duration_days": duration_days, "replicas": replicas,
        "price_per_gb_month": price_per_gb_month, "royalty_rate": royalty_rate,
        "treasury_rate": treasury_rate, "start_ts": str(now), "cid": cid,
        "expires_ts": str(expires_ts if expires_ts is not None else now + duration_days * 86400),
        "nonce": nonce or secrets.token_hex(16), "issuer_role": role.value,
    }
    body["pub_key"] = key.pub_key
    body["lease_id"] = v2_lease_id(key.pub_key, str(body["nonce"]))
    body["signature"] = key.sign(signed_bytes(body))
    return _v2_from(body)


def token_json(token: LeaseToken) -> str:
    """A v2 token as compact JSON text (the file ``leasegen`` writes, newline-terminated)."""
    return json.dumps(token.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n"


# --- parsing ---------------------------------------------------------------------------------


def _str(d: Mapping[str, object], key: str, *, empty: bool = False) -> str:
    v = d.get(key)
    if not isinstance(v, str) or (not empty and not v):
        raise TokenError(f"token field {key} must be a{'' if empty else ' non-empty'} string",
                         why=f"got {v!r:.60}")
    if len(v) > 1024:
        raise TokenError(f"token field {key} is too long")
    if not v.isascii():
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise TokenError(f"token field {key} is not valid Unicode text") from None
    return v


def _int(d: Mapping[str, object], key: str, *, lo: int = 0, hi: int = 1 << 62) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise TokenError(f"token field {key} must be an integer in [{lo}, {hi}]", why=f"got {v!r:.60}")
    return v


def _v2_from(d: Mapping[str, object]) -> LeaseToken:
    extra = set(d) - set(_V2_KEYS)
    if extra:
        raise TokenError(f"unknown token field {sorted(extra)[0]!r}",
                         why="a v2 token holds exactly the signed fields")
    if d.get("version") != 2 or isinstance(d.get("version"), bool):
        raise TokenError("unsupported token version", why=f"got {d.get('version')!r:.20}")
    start = _str(d, "start_ts")
    expires = _str(d, "expires_ts")
    for name, ts in (("start_ts", start), ("expires_ts", expires)):
        if not _TS.fullmatch(ts):
            raise TokenError(f"token field {name} must be decimal unix seconds", why=f"got {ts!r:.30}")
    nonce = _str(d, "nonce")
    if not _NONCE.fullmatch(nonce):
        raise TokenError("token nonce must be 32 lowercase hex digits")
    role = _str(d, "issuer_role")
    if role not in (Role.AUTHOR.value, Role.PROVIDER.value):
        raise TokenError("token issuer_role must be author or provider", why=f"got {role!r:.30}")
    lease_id = _str(d, "lease_id")
    if not _ID.fullmatch(lease_id):
        raise TokenError("token lease_id is not lease-<CID>", why=f"got {lease_id!r:.80}")
    royalty = _int(d, "royalty_rate", hi=NANO)
    treasury = _int(d, "treasury_rate", hi=NANO)
    if royalty + treasury > NANO:
        raise TokenError("token royalty_rate + treasury_rate exceed 1")
    cid = _str(d, "cid", empty=True)
    return LeaseToken(
        version=2, lease_id=lease_id, package_id=_str(d, "package_id"),
        author_id=_str(d, "author_id"), provider_id=_str(d, "provider_id"),
        bytes=_int(d, "bytes", lo=1), duration_days=_int(d, "duration_days", lo=1, hi=1_000_000),
        replicas=_int(d, "replicas", lo=1, hi=1_000_000),
        price_per_gb_month=_int(d, "price_per_gb_month"), royalty_rate=royalty,
        treasury_rate=treasury, start_ts=start, cid=cid, expires_ts=expires, nonce=nonce,
        issuer_role=role, pub_key=_str(d, "pub_key"), signature=_str(d, "signature"),
    )


def _v1_number(d: Mapping[str, object], key: str) -> int:
    v = d.get(key, 0)
    try:
        return to_nano(v, what=f"token field {key}")
    except MoneyError as exc:
        raise TokenError(exc.what) from None


def _v1_from(d: Mapping[str, object]) -> LeaseToken:
    def num(key: str, default: int) -> int:
        v = d.get(key, default)
        if isinstance(v, float) and v.is_integer():
            v = int(v)  # the original's getIntField truncates a float
        if not isinstance(v, int) or isinstance(v, bool):
            raise TokenError(f"token field {key} must be an integer", why=f"got {v!r:.40}")
        return v

    days = num("duration_days", 30)
    replicas = num("replicas", 1)
    start = d.get("start_ts", "")
    if not isinstance(start, str) or not start:
        raise TokenError("lease: missing start_ts", why="a v1 token must carry its start time")
    return LeaseToken(
        version=1, lease_id=str(d.get("lease_id") or ""), package_id=str(d.get("package_id", "")),
        author_id=str(d.get("author_id", "")), provider_id=str(d.get("provider_id", "")),
        bytes=num("bytes", 0), duration_days=days if days > 0 else 30,
        replicas=replicas if replicas > 0 else 1,
        price_per_gb_month=_v1_number(d, "price_per_gb_month"),
        royalty_rate=_v1_number(d, "royalty_rate"), treasury_rate=_v1_number(d, "treasury_rate"),
        start_ts=start, pub_key=str(d.get("pub_key", "")), signature=str(d.get("signature", "")),
    )


def parse_token(data: bytes) -> LeaseToken:
    """Parse token bytes of either version (v1 has no ``version`` field).

    Raises:
        TokenError: not a JSON object, truncated, wrong types, unknown fields (v2).
    """
    if len(data) > MAX_TOKEN_BYTES:
        raise TokenError(f"token is larger than {MAX_TOKEN_BYTES} bytes")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TokenError("token is not valid JSON", why="the file is truncated or not a lease token",
                         how="write a fresh one with 'cheng-storage leasegen'") from None
    if not isinstance(obj, dict) or obj.get("type") != "lease_token":
        raise TokenError("not a lease token", why='a token is a JSON object with "type":"lease_token"')
    if "version" in obj:
        return _v2_from(obj)
    return _v1_from(obj)


def load_token(path: Path) -> LeaseToken:
    """Read and parse a token file.

    Raises:
        InputError: the file is missing or unreadable (``lease: token file missing``).
        TokenError: see :func:`parse_token`.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TOKEN_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"lease token file {path} not found",
                         how="write one with 'cheng-storage leasegen --out:<file>'") from None
    except OSError as exc:
        raise InputError(f"cannot read lease token {path}", why=str(exc)) from None
    return parse_token(data)


# --- verification ----------------------------------------------------------------------------

_verifier: Verifier | None = None


def _v() -> Verifier:
    global _verifier
    if _verifier is None:
        _verifier = Verifier()
    return _verifier


def verify_signature(token: LeaseToken) -> None:
    """Check a token's signature (v2: over all fields; v1: the original's payload).

    Raises:
        TokenError: the signature or key is malformed or does not verify.
    """
    if token.version == 2:
        try:
            _v().verify(token.pub_key, token_signed_bytes(token), token.signature,
                        what="lease token signature")
        except SignatureError as exc:
            raise TokenError(exc.what, why="a signed field (price, rate, bytes, CID, expiry, ids) "
                                           "was changed, or another key signed it") from None
        if token.lease_id != v2_lease_id(token.pub_key, token.nonce):
            raise TokenError("token lease_id does not match its fields")
        return
    pub = v1_public_key(token.pub_key)
    sig = _multibase_b64url(token.signature, what="signature")
    lease_id = token.lease_id or legacy_lease_id(token.package_id, token.author_id, token.provider_id,
                                                 token.bytes, token.duration_days, token.replicas,
                                                 token.start_ts)
    if len(sig) != 64 or not _v().check(pub, v1_payload(token, lease_id), sig):
        raise TokenError("lease: verify failed", why="the v1 signature does not match its fields")


def v1_payload(token: LeaseToken, lease_id: str) -> bytes:
    """The bytes a v1 token signs (§1.3 ``tokenPayload``)."""
    return "|".join([lease_id, token.package_id, token.author_id, token.provider_id,
                     str(int32(token.bytes)), str(token.duration_days), str(token.replicas),
                     token.start_ts]).encode("utf-8")


def _multibase_b64url(text: str, *, what: str) -> bytes:
    if not text.startswith("u"):
        raise TokenError(f"v1 {what} is not multibase base64url (u...)", why=f"got {text[:20]!r}")
    body = text[1:]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise TokenError(f"v1 {what} is not valid base64url") from None


_PB_ED25519_PUB = b"\x08\x01\x12\x20"
_PB_ED25519_PRIV = b"\x08\x01\x12\x40"


def v1_public_key(text: str) -> bytes:
    """The raw Ed25519 key inside a v1 ``pub_key`` (libp2p protobuf ``PublicKey``)."""
    raw = _multibase_b64url(text, what="pub_key")
    if len(raw) != 36 or not raw.startswith(_PB_ED25519_PUB):
        raise TokenError("v1 pub_key is not a libp2p Ed25519 public key",
                         why="expected protobuf {Type: Ed25519, Data: 32 bytes}")
    return raw[4:]


def v1_key_text(key: KeyPair) -> tuple[str, str]:
    """``(pub_key, priv_key)`` of ``key`` in the original's text form (libp2p protobuf, ``u``+b64url)."""
    def mb(b: bytes) -> str:
        return "u" + base64.urlsafe_b64encode(b).decode("ascii").rstrip("=")

    return mb(_PB_ED25519_PUB + key.public), mb(_PB_ED25519_PRIV + key.seed + key.public)


def issue_v1(key: KeyPair, *, package_id: str, author_id: str, provider_id: str, nbytes: int,
             duration_days: int, replicas: int, price_per_gb_month: float, royalty_rate: float,
             treasury_rate: float, now: int) -> dict[str, object]:
    """A token exactly as the original's ``leasegen`` wrote it (for compat tests and old peers)."""
    from nacl.signing import SigningKey

    start = str(now)
    lease_id = legacy_lease_id(package_id, author_id, provider_id, nbytes, duration_days, replicas, start)
    pub, _ = v1_key_text(key)
    tmp = LeaseToken(1, lease_id, package_id, author_id, provider_id, nbytes, duration_days, replicas,
                     0, 0, 0, start)
    sig = SigningKey(key.seed).sign(v1_payload(tmp, lease_id)).signature
    return {"type": "lease_token", "lease_id": lease_id, "package_id": package_id,
            "author_id": author_id, "provider_id": provider_id, "bytes": nbytes,
            "duration_days": duration_days, "replicas": replicas,
            "price_per_gb_month": price_per_gb_month, "royalty_rate": royalty_rate,
            "treasury_rate": treasury_rate, "start_ts": start, "pub_key": pub,
            "signature": "u" + base64.urlsafe_b64encode(sig).decode("ascii").rstrip("=")}


KeyLookup = Callable[[str, str, str, str], str | None]
"""``(role, identity, package_id, pub_key) -> None`` if the key is registered to it, else why not."""


def check_token(token: LeaseToken, *, now: int, key_registered: KeyLookup | None,
                used: Callable[[str], bool], compat: bool = False) -> str:
    """The checks of a token on its own (before any content is hashed); returns its lease id.

    Args:
        now: unix seconds.
        key_registered: the registry binding check (v2); ``None`` skips it (never in the CLI).
        used: whether a lease id is already consumed (in the ledger or a lease record).
        compat: accept v1 tokens.

    Raises:
        TokenError: the first failed check, naming it.
    """
    if token.version == 1 and not compat:
        raise TokenError("v1 lease token refused",
                         why="v1 tokens certify their own key and sign neither prices, expiry nor "
                             "content",
                         how="issue a v2 token with 'cheng-storage leasegen', or pass --compat to "
                             "accept the original's tokens")
    verify_signature(token)
    if token.version == 2:
        if now >= int(token.expires_ts):
            raise TokenError(f"lease token expired at {token.expires_ts}", why=f"now is {now}",
                             how="ask the issuer for a fresh token")
        if key_registered is not None:
            identity = token.author_id if token.issuer_role == Role.AUTHOR else token.provider_id
            why_not = key_registered(token.issuer_role, identity, token.package_id, token.pub_key)
            if why_not is not None:
                raise TokenError(f"lease token key is not registered to {identity}", why=why_not,
                                 how="sign with the key the registry holds for that identity")
    lease_id = token.lease_id or legacy_lease_id(token.package_id, token.author_id, token.provider_id,
                                                 token.bytes, token.duration_days, token.replicas,
                                                 token.start_ts)
    if used(lease_id):
        raise TokenError(f"lease token already used: {lease_id}",
                         why="each lease id pays for one write; this one is recorded already",
                         how="ask the issuer for a new token")
    return lease_id


def check_content(token: LeaseToken, *, size: int, cid: str | None) -> None:
    """The content checks: ``0 < size <= bytes``, and (v2, bound) the CID; ``cid=None`` skips it.

    Raises:
        TokenError: ``lease: bytes insufficient`` or a wrong CID.
    """
    if size > token.bytes:
        raise TokenError("lease: bytes insufficient",
                         why=f"the content has {size} bytes, the lease pays for {token.bytes}")
    if size <= 0:
        raise TokenError("lease: nothing to store", why="the content is empty")
    if cid is not None and token.version == 2 and token.cid and token.cid != cid:
        raise TokenError(f"lease token is for {token.cid}, not {cid}",
                         why="a v2 token pays for exactly one content CID")


def registry_lookup(registry: Path) -> KeyLookup:
    """A :data:`KeyLookup` over the registry log at ``registry`` (replayed once, lazily).

    author role: ``pub_key`` must be the current key of namespace ``package_id`` and the namespace
    owned by the author. provider role: the current key of some namespace the provider owns.
    Revoked keys are refused either way. (The replay checks the log's chain and ownership rules;
    ``cheng-registry verify`` checks its signatures.)
    """
    cache: list[tuple[dict[str, tuple[str, str | None]], dict[str, int]]] = []

    def owners() -> tuple[dict[str, tuple[str, str | None]], dict[str, int]]:
        if not cache:
            if not registry.exists():
                cache.append(({}, {}))
            else:
                from cheng_build.trust.registry_log import RegistryLog

                st = RegistryLog.load(registry).replay()
                cache.append(({p: (o.author_id, o.pub_key) for p, o in st.owners.items()},
                              dict(st.revoked)))
        return cache[0]

    def lookup(role: str, identity: str, package_id: str, pub_key: str) -> str | None:
        own, revoked = owners()
        if pub_key in revoked:
            return f"the key was revoked at registry line {revoked[pub_key]}"
        if role == Role.AUTHOR:
            entry = own.get(package_id)
            if entry is None:
                return f"{package_id} is not registered in {registry}"
            if entry[0] != identity:
                return f"{package_id} is owned by {entry[0]}, not {identity}"
            if entry[1] != pub_key:
                return f"the registry holds another key for {package_id} than the one that signed"
            return None
        if any(a == identity and k == pub_key for a, k in own.values()):
            return None
        return f"no namespace in {registry} is owned by {identity} with this key"

    return lookup
