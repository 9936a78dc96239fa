"""Canonical signed bytes: the fast encoder equals its json.dumps definition; normalisation."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.trust import canonical

TEXT = st.text(max_size=40)
FIELDS = st.fixed_dictionaries(
    {"package_id": TEXT, "author_id": TEXT, "channel": TEXT, "cid": TEXT},
    optional={"epoch": st.integers(min_value=0, max_value=2**63), "format": TEXT,
              "ast_simhash64": st.integers(min_value=0, max_value=2**64 - 1),
              "originality_score": st.floats(min_value=0.0, max_value=1.0),
              "pub_key": TEXT, "signature": TEXT, "seq": st.integers(), "created_ts": TEXT})


@settings(deadline=None)  # shared CI machines: timing is not what these test
@given(FIELDS)
def test_publish_payload_equals_json_definition(fields: dict[str, object]) -> None:
    norm = canonical.normalize_publish_fields(fields)
    oracle = canonical.PUBLISH_DOMAIN + json.dumps(
        norm, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert canonical.publish_payload(fields) == oracle
    # Only the lock-carried fields are covered.
    assert b'"seq"' not in canonical.publish_payload({**fields, "seq": 5, "package_id": "x"})


@settings(deadline=None)  # shared CI machines: timing is not what these test
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_simhash_forms_normalise_alike(n: int) -> None:
    want = f"{n:016x}"
    assert canonical.simhash_hex(n) == want
    assert canonical.simhash_hex(f"{n:x}") == want
    assert canonical.simhash_hex(f"0x{n:X}") == want


@pytest.mark.parametrize("bad", [True, -1, 2**64, "xyz", "", "0x", 1.5, "1" * 17])
def test_simhash_rejects(bad: object) -> None:
    with pytest.raises(canonical.CanonicalError):
        canonical.simhash_hex(bad)


@pytest.mark.parametrize("fields", [{"epoch": -1}, {"epoch": True}, {"epoch": "3"},
                                    {"originality_score": 1.5}, {"originality_score": float("nan")},
                                    {"package_id": 3}])
def test_payload_rejects_bad_types(fields: dict[str, object]) -> None:
    with pytest.raises(canonical.CanonicalError):
        canonical.publish_payload(fields)


def test_domains_differ() -> None:
    body = {"a": 1}
    assert len({canonical.key_payload(body), canonical.checkpoint_payload(body),
                canonical.publish_payload({})}) == 3


FULL = st.fixed_dictionaries(
    {"package_id": TEXT, "author_id": TEXT, "channel": TEXT, "cid": TEXT, "format": TEXT,
     "epoch": st.integers(min_value=0, max_value=2**64),
     "ast_simhash64": st.integers(min_value=0, max_value=2**64 - 1).map(lambda n: f"{n:016x}"),
     "originality_score": st.floats(min_value=0.0, max_value=1.0)})


@settings(deadline=None)  # shared CI machines: timing is not what these test
@given(FULL)
def test_fast_path_equals_json_definition(fields: dict[str, object]) -> None:
    oracle = canonical.PUBLISH_DOMAIN + json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert canonical.publish_payload(fields) == oracle
