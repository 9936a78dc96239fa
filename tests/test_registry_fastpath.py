"""The verify fast paths agree with the full checks they shortcut (property tests)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.trust import canonical
from cheng_build.trust.config import Limits
from cheng_build.trust.registry_entry import (
    HOT_FIELDS,
    EntryType,
    RegistryEntry,
    RegistryFormatError,
    _checked_record,
    _fast_publish,
    _new_entry,
)

BASE: dict[str, Any] = {
    "type": "publish", "seq": 7, "prev": "sha256:" + "ab" * 32, "package_id": "pkg://cheng/p1",
    "author_id": "node:a1", "channel": "edge", "epoch": 3, "cid": "bafkreiexample",
    "format": "dag", "ast_simhash64": "0123456789abcdef", "originality_score": 1.0,
    "pub_key": "ed25519:" + "A" * 43 + "=", "signature": "ed25519:" + "B" * 86 + "==",
    "created_ts": "1700000000", "chunker": "fastcdc-65536-262144-1048576",
}
ODD = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
    st.sampled_from(["", "pkg://", "pkg://x/y", "edge", "lts", "tar", "bad", "0123456789ABCDEF",
                     "0x12", "0123456789abcdef", "ed25519:", "local:x"]),
    st.lists(st.text(max_size=3), max_size=2), st.text(max_size=8))
KEYS = [*BASE, "parent", "version", "api", "source_addrs", "similar_to"]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), st.one_of(ODD, st.just("<drop>")), max_size=4))
def test_fast_publish_accepts_only_what_the_full_checks_accept(changes: dict[str, Any]) -> None:
    d = dict(BASE)
    for k, v in changes.items():
        if v == "<drop>":
            d.pop(k, None)
        else:
            d[k] = v
    _check_agree(d)


ODD_VALUES: list[Any] = [
    "<drop>", None, True, False, -1, 0, 2, 1.5, -0.5, 0.5, float("nan"), "", "pkg://", "pkg://x/y",
    "edge", "lts", "tar", "bad", "0123456789ABCDEF", "0x12", "0123456789abcdef", "ed25519:",
    "local:x", [], ["a"], {}, "publish", "key"]


def _check_agree(d: dict[str, Any]) -> None:
    raw = json.dumps(d).encode()
    fast = _fast_publish(d, raw, 7)
    if fast is None:
        return
    slow = _checked_record(d, raw, 7, Limits())  # must not raise: the fast path accepted it
    assert fast == slow
    assert (fast.type, fast.ast_simhash64, dict(fast.data)) == (slow.type, slow.ast_simhash64,
                                                                dict(slow.data))
    # The verifier reads these instead of the dict: they must be the dict's values, and the
    # payload built from them the canonical one.
    assert fast.hot == tuple(d.get(k) for k in HOT_FIELDS)
    h = dict(zip(HOT_FIELDS, fast.hot, strict=True))
    if fast.ast_simhash64 is not None and h["originality_score"] is not None:
        assert canonical.publish_payload_normal(
            fast.ast_simhash64, h["author_id"], h["channel"], h["cid"], h["epoch"], h["format"],
            h["originality_score"], h["package_id"]) == canonical.publish_payload(d)


def test_fast_publish_agrees_on_every_single_field_change() -> None:
    for key in KEYS:
        for v in ODD_VALUES:
            d = dict(BASE)
            if v == "<drop>":
                d.pop(key, None)
            else:
                d[key] = v
            _check_agree(d)


def test_fast_publish_takes_the_usual_line_and_refuses_nothing_itself() -> None:
    raw = json.dumps(BASE).encode()
    assert _fast_publish(dict(BASE), raw, 7) is not None
    bad = dict(BASE, channel="nightly")
    assert _fast_publish(bad, raw, 7) is None  # left to the full checks, which explain
    try:
        _checked_record(bad, raw, 7, Limits())
    except RegistryFormatError as exc:
        assert "channel" in exc.what and exc.line == 7
    else:
        raise AssertionError("a bad channel was accepted")


def test_fast_constructor_builds_the_dataclass_value() -> None:
    args = (3, EntryType.PUBLISH, b"{}", {"a": 1}, "0123456789abcdef")
    a, b = _new_entry(*args), RegistryEntry(*args)
    assert a == b and a.data is b.data and a.ast_simhash64 == b.ast_simhash64
    try:
        a.line = 4  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("the entry is not frozen")
