"""cheng.meta.toml: the emitter writes TOML that parses back to the same values, deterministically."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cheng_build.build.meta_toml import dumps

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
scalar = st.one_of(text, st.integers(-(2**63), 2**63 - 1), st.booleans(),
                   st.floats(allow_nan=False, allow_infinity=False))
value = st.one_of(scalar, st.lists(text, max_size=4))
table = st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), value, max_size=6)


@given(table, table, st.one_of(st.none(), table), st.lists(table, max_size=3))
def test_roundtrip(pkg: dict[str, Any], build: dict[str, Any], lock: dict[str, Any] | None,
                   deps: list[dict[str, Any]]) -> None:
    pkg.pop("build", None), pkg.pop("lock", None), pkg.pop("dependencies", None)
    doc = tomllib.loads(dumps(pkg, build, lock, deps))
    assert {k: v for k, v in doc.items() if k not in ("build", "lock", "dependencies")} == pkg
    assert doc["build"] == build
    assert doc.get("lock") == lock
    assert doc.get("dependencies", []) == deps


def test_field_order_is_fixed() -> None:
    out = dumps({"created_ts": "1", "package_id": "pkg://cheng/a", "channel": "stable"},
                {"flags": ["--release"], "source": "a.cheng"}, {"sha256": "x", "path": "l"}, [])
    assert out == ('package_id = "pkg://cheng/a"\nchannel = "stable"\ncreated_ts = "1"\n\n'
                   '[build]\nsource = "a.cheng"\nflags = ["--release"]\n\n[lock]\npath = "l"\nsha256 = "x"\n')


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(ValueError):
        dumps({}, {"source": "a\udcff"}, None, [])
