"""Every parser of untrusted input in the registry area: garbage gives a ChengError, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build.core.errors import ChengError
from cheng_build.pkg.snapshot import parse_source_manifest
from cheng_build.trust.config import load_config
from cheng_build.trust.keys import parse_keyfile
from cheng_build.trust.registry_ops import verify_proof

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=6),
    max_leaves=15)


@settings(deadline=None)  # shared CI machines: timing is not what these test
@given(st.one_of(st.text(max_size=200), JSONISH.map(json.dumps)))
def test_keyfile_garbage(text: str) -> None:
    try:
        parse_keyfile(text, origin="k.json")
    except ChengError as exc:
        assert exc.what


PROOF_KEYS = st.fixed_dictionaries(
    {"format": st.sampled_from(["cheng-registry-inclusion/1", "x"]),
     "line": st.one_of(st.integers(-2, 5), st.text(max_size=3)),
     "size": st.one_of(st.integers(-2, 5), st.none()),
     "leaf": st.text(max_size=20), "path": st.lists(st.text(alphabet="0123456789abcdefg", max_size=64),
                                                    max_size=3),
     "checkpoint": st.one_of(st.text(max_size=30), JSONISH.map(json.dumps))})


@settings(deadline=None)  # shared CI machines: timing is not what these test
@given(st.one_of(JSONISH, PROOF_KEYS))
def test_proof_garbage(doc: object) -> None:
    with pytest.raises(ChengError):
        verify_proof(doc)


@settings(deadline=None)  # shared CI machines: timing is not what these test
@given(st.one_of(st.binary(max_size=100), JSONISH.map(lambda v: json.dumps(v).encode())))
def test_source_manifest_garbage(raw: bytes) -> None:
    try:
        doc = parse_source_manifest(raw)
    except ChengError:
        return
    assert isinstance(doc["files"], list)


ENV_KEYS = ["PKG_MODE", "PKG_PEERS", "PKG_HTTP_FALLBACK", "PKG_REQUIRE_SIGNATURE", "PKG_LEVEL",
            "PKG_CHECKPOINT_TTL", "PKG_ALLOW"]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(env=st.dictionaries(st.sampled_from(ENV_KEYS), st.text(max_size=20), max_size=4),
       toml=st.text(max_size=80))
def test_config_garbage(tmp_path: Path, env: dict[str, str], toml: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(toml, encoding="utf-8")
    try:
        cfg = load_config(env=env, config_path=f)
    except ChengError as exc:
        assert exc.what
        return
    assert cfg.rows()


@settings(deadline=None)
@given(value=JSONISH, pad=st.sampled_from(["", " ", "\t", " x", "}", "]"]),
       text=st.text(max_size=30))
def test_fast_json_equals_json_loads(value: object, pad: str, text: str) -> None:
    from cheng_build.trust.registry_entry import _fast_json

    for doc in (json.dumps(value) + pad, pad + json.dumps(value), text):
        try:
            want: object = json.loads(doc)
        except json.JSONDecodeError:
            with pytest.raises(json.JSONDecodeError):
                _fast_json(doc)
            continue
        # Compared as JSON text: NaN (which both accept) is not equal to itself.
        assert json.dumps(_fast_json(doc)) == json.dumps(want)
