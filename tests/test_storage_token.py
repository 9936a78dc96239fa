"""Lease tokens: v2 issue/verify, every attack, v1 compat and its documented weaknesses, parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_storage import Keys
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.storage.token import (
    LeaseToken,
    TokenError,
    check_content,
    check_token,
    issue,
    issue_v1,
    parse_token,
    registry_lookup,
    token_json,
    v1_public_key,
)
from cheng_build.trust.keys import KeyPair

NOW = 1_800_000_000
CID = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


def _issue(key: KeyPair, **kw: object) -> LeaseToken:
    args: dict[str, object] = dict(package_id="pkg://cheng/demo", author_id="node:alice",
                                   provider_id="node:store-1", nbytes=1 << 20, duration_days=30,
                                   replicas=1, price_per_gb_month=250_000_000,
                                   royalty_rate=120_000_000, treasury_rate=30_000_000, now=NOW,
                                   cid=CID)
    args.update(kw)
    return issue(key, **args)  # type: ignore[arg-type]


def _check(tok: LeaseToken, keys: Keys, *, now: int = NOW + 10, used: set[str] | None = None,
           compat: bool = False) -> str:
    return check_token(tok, now=now, key_registered=registry_lookup(keys.registry),
                       used=lambda i: i in (used or set()), compat=compat)


@pytest.fixture()
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


def test_v2_round_trip_and_accept(keys: Keys) -> None:
    tok = _issue(keys.alice)
    again = parse_token(token_json(tok).encode())
    assert again == tok and tok.issuer_role == "author"
    assert _check(again, keys) == tok.lease_id
    check_content(again, size=5, cid=CID)
    prov = _issue(keys.store1)
    assert prov.issuer_role == "provider" and _check(prov, keys) == prov.lease_id
    # two tokens with identical fields still name distinct leases (the nonce)
    assert _issue(keys.alice).lease_id != tok.lease_id


@pytest.mark.parametrize("field,value", [
    ("price_per_gb_month", 1), ("royalty_rate", 0), ("treasury_rate", 0), ("bytes", 1 << 30),
    ("expires_ts", str(NOW + 10**8)), ("cid", ""), ("provider_id", "node:mallory"),
    ("issuer_role", "provider"), ("nonce", "0" * 32), ("duration_days", 3650),
])
def test_edited_field_fails(keys: Keys, field: str, value: object) -> None:
    d = _issue(keys.alice).to_dict()
    d[field] = value
    tok = parse_token(json.dumps(d).encode())
    with pytest.raises(TokenError, match=r"does not verify|does not match"):
        _check(tok, keys)


def test_expired_replayed_wrong_cid_too_big(keys: Keys) -> None:
    tok = _issue(keys.alice, expires_ts=NOW + 60)
    with pytest.raises(TokenError, match="expired"):
        _check(tok, keys, now=NOW + 60)
    with pytest.raises(TokenError, match="already used"):
        _check(tok, keys, used={tok.lease_id})
    with pytest.raises(TokenError, match="is for"):
        check_content(tok, size=5, cid="bafkreiejt3fioeno5st2phz4c3pucc65zfvgm3s3xxlx56bl7sua4bnosu")
    with pytest.raises(TokenError, match="bytes insufficient"):
        check_content(tok, size=(1 << 20) + 1, cid=CID)


def test_foreign_and_unregistered_keys(keys: Keys) -> None:
    # mallory signs as the author with her own (registered, but not alice's) key
    forged = _issue(KeyPair(author_id="node:alice", seed=keys.mallory.seed, public=keys.mallory.public))
    with pytest.raises(TokenError, match="not registered to node:alice"):
        _check(forged, keys)
    # a fresh key that certifies itself for the provider
    fresh = KeyPair.generate("node:store-1")
    with pytest.raises(TokenError, match="not registered to node:store-1"):
        _check(_issue(fresh), keys)
    # a key that belongs to neither party cannot issue at all
    with pytest.raises(TokenError, match="neither"):
        _issue(keys.mallory)


@pytest.mark.parametrize("cut", [0, 1, 10, 100, -1])
def test_truncated_token(keys: Keys, cut: int) -> None:
    text = token_json(_issue(keys.alice)).encode()
    with pytest.raises(TokenError):
        parse_token(text[:cut] if cut >= 0 else text[:-3])


def test_v1_compat_and_its_weaknesses(keys: Keys) -> None:
    v1 = issue_v1(keys.alice, package_id="pkg://demo/text", author_id="node:alice",
                  provider_id="node:store-1", nbytes=1048576, duration_days=30, replicas=1,
                  price_per_gb_month=0.25, royalty_rate=0.12, treasury_rate=0.03, now=1773912345)
    assert v1["lease_id"] == "lease-bafkreig2y3tugx4co7wrvalve26aw47kly6cnei736x6bxb4ws6whnknrm"
    assert str(v1["pub_key"]).startswith("uCAESI")  # libp2p protobuf Ed25519 key, as §1.3 predicts
    assert v1_public_key(str(v1["pub_key"])) == keys.alice.public
    tok = parse_token(json.dumps(v1).encode())
    assert tok.version == 1 and tok.price_per_gb_month == 250_000_000
    with pytest.raises(TokenError, match="v1 lease token refused"):
        _check(tok, keys)
    assert _check(tok, keys, compat=True) == v1["lease_id"]
    # weakness 2 (documented): prices are not signed, an edited price still verifies in compat
    edited = dict(v1, price_per_gb_month=0.0)
    assert _check(parse_token(json.dumps(edited).encode()), keys, compat=True)
    # ... but a signed field does not; and replay is refused even in compat
    with pytest.raises(TokenError, match="verify failed"):
        _check(parse_token(json.dumps(dict(v1, bytes=1 << 30)).encode()), keys, compat=True)
    with pytest.raises(TokenError, match="already used"):
        _check(tok, keys, compat=True, used={str(v1["lease_id"])})
    with pytest.raises(TokenError, match="missing start_ts"):
        parse_token(json.dumps({k: v for k, v in v1.items() if k != "start_ts"}).encode())


# --- property tests ---------------------------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3),
                     max_leaves=10)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_parse_token_bytes_raise_only_token_error(data: bytes) -> None:
    try:
        parse_token(data)
    except TokenError:
        pass


@given(st.dictionaries(st.sampled_from(["type", "version", "lease_id", "bytes", "start_ts", "cid",
                                        "nonce", "pub_key", "signature", "duration_days", "x"]),
                       _json, max_size=8))
@settings(max_examples=300)
def test_parse_token_objects_raise_only_token_error(obj: dict[str, object]) -> None:
    obj.setdefault("type", "lease_token")
    try:
        parse_token(json.dumps(obj).encode())
    except TokenError:
        pass


_KEY = KeyPair.from_seed("node:alice", bytes(range(32)))


@given(st.sampled_from(["price_per_gb_month", "royalty_rate", "treasury_rate", "bytes",
                        "duration_days", "replicas"]), st.integers(0, 10**9))
@settings(max_examples=100, deadline=None)
def test_any_edit_of_a_signed_number_is_caught(field: str, value: int) -> None:
    tok = _issue(_KEY)
    d = tok.to_dict()
    if d[field] == value:
        return
    d[field] = value
    try:
        edited = parse_token(json.dumps(d).encode())
    except TokenError:
        return  # out of range for the field: refused while parsing
    with pytest.raises(TokenError):
        check_token(edited, now=NOW, key_registered=None, used=lambda _: False)


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.one_of(st.text(max_size=20), st.integers()),
                       max_size=10))
@settings(max_examples=300)
def test_fast_canonical_equals_json_dumps(d: dict[str, object]) -> None:
    from cheng_build.ledger.ids import canonical_json
    from cheng_build.storage.token import _canon

    try:
        want = canonical_json(d)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            _canon(d, ())
        return
    assert _canon(d, ()) == want


def test_token_signed_bytes_equal_the_generic_form() -> None:
    from cheng_build.storage.token import signed_bytes, token_signed_bytes

    tok = _issue(_KEY, package_id="pkg://cheng/demo", author_id="node:alice")
    assert token_signed_bytes(tok) == signed_bytes(tok.to_dict())
    odd = parse_token(json.dumps(dict(tok.to_dict(), provider_id='n\\"ö\u2028\x01')).encode())
    assert token_signed_bytes(odd) == signed_bytes(odd.to_dict())
