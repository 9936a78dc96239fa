"""Lock, manifest and meta documents: the seed's A1.10 shapes, round-trips, comment-keeping rewrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build.core.record import replace
from cheng_build.pkg.formats import DocumentError, dump_text, parse_text
from cheng_build.pkg.lock import Lock, LockedDep, dump_lock, load_lock, lock_text, parse_lock
from cheng_build.pkg.manifest import (
    Dependency,
    Manifest,
    dump_manifest,
    load_manifest,
    manifest_to_dict,
    parse_manifest,
)
from cheng_build.pkg.meta import Meta, meta_text

CID = "bafybeibx62obrkybp46hx3ivh53q4rnptgkunpgtwiib5lfelfgt2ekihm"
DEP = LockedDep("pkg://cheng/libp2p", "edge", 12, CID, "tar", "node:alice", "ed25519:AAAA",
                "ed25519:BBBB")
LOCK = Lock("pkg://cheng/app-demo", "1730000000", (DEP,))

A1_10_TOML = f"""package_id = "pkg://cheng/app-demo"
created_ts = "1730000000"

[[dependencies]]
package_id = "pkg://cheng/libp2p"
channel = "edge"
epoch = 12
cid = "{CID}"
format = "tar"
author_id = "node:alice"
pub_key = "ed25519:AAAA"
signature = "ed25519:BBBB"
"""

A1_10_YAML = f"""package_id: "pkg://cheng/app-demo"
created_ts: "1730000000"
dependencies:
  - package_id: "pkg://cheng/libp2p"
    channel: "edge"
    epoch: 12
    cid: "{CID}"
    format: "tar"
    author_id: "node:alice"
    pub_key: "ed25519:AAAA"
    signature: "ed25519:BBBB"
"""


def test_lock_text_is_the_seed_sample_in_all_formats() -> None:
    assert lock_text(LOCK, "toml") == A1_10_TOML
    assert lock_text(LOCK, "yaml") == A1_10_YAML
    doc = json.loads(lock_text(LOCK, "json"))
    assert list(doc) == ["package_id", "created_ts", "dependencies"]
    assert list(doc["dependencies"][0]) == ["package_id", "channel", "epoch", "cid", "format",
                                            "author_id", "pub_key", "signature"]
    assert lock_text(LOCK, "json").startswith('{\n  "package_id": "pkg://cheng/app-demo",\n')


def test_meta_text_has_a1_10_order() -> None:
    meta = Meta("pkg://cheng/app-demo", "stable", 3, CID, "tar", "node:alice", "ed25519:K",
                "ed25519:S", "1730000000", (DEP,))
    text = meta_text(meta, "toml")
    keys = [line.split(" = ")[0] for line in text.split("\n\n")[0].splitlines()]
    assert keys == ["package_id", "channel", "epoch", "cid", "format", "author_id", "pub_key",
                    "signature", "created_ts"]
    assert "\n[[dependencies]]\npackage_id = \"pkg://cheng/libp2p\"" in text
    for fmt in ("toml", "yaml", "json"):
        assert parse_text(meta_text(meta, fmt), fmt) == meta.to_dict()


def test_v2_written_only_when_a_v2_field_is_used() -> None:
    assert "lock_version" not in lock_text(LOCK)
    v2 = Lock(LOCK.package_id, "1", (LockedDep(**{**_fields(DEP), "source_mode": "p2p",
                                                   "source_addrs": ("/ip4/1.2.3.4/tcp/4001",)}),))
    text = lock_text(v2)
    assert text.startswith("lock_version = 2\n")
    assert parse_lock(parse_text(text, "toml")) == v2


def _fields(dep: LockedDep) -> dict[str, object]:
    return {k: getattr(dep, k) for k in dep.__slots__}


def test_rewrite_keeps_comments_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "cheng.lock.toml"
    user = A1_10_TOML.replace('package_id = "pkg://cheng/app-demo"',
                              '# our app: keep me\npackage_id = "pkg://cheng/app-demo"  # id')
    user = user.replace("epoch = 12", "epoch = 12   # pinned after the 1.2 release")
    path.write_text(user)
    newer = Lock(LOCK.package_id, "1730000000", (LockedDep(**{**_fields(DEP), "epoch": 13}),))
    dump_lock(newer, path)
    text = path.read_text()
    assert "# our app: keep me" in text and "# id" in text
    assert "epoch = 13   # pinned after the 1.2 release" in text
    assert load_lock(path) == newer


def test_unchanged_lock_keeps_created_ts(tmp_path: Path) -> None:
    path = tmp_path / "cheng.lock.toml"
    dump_lock(LOCK, path)
    dump_lock(Lock(LOCK.package_id, "1999999999", LOCK.dependencies), path)
    assert load_lock(path).created_ts == "1730000000"


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_cid = st.from_regex(r"\Ab[a-z2-7]{40,60}\Z")
_dep = st.builds(
    LockedDep,
    package_id=st.from_regex(r"\Apkg://cheng/[a-z][a-z0-9-]{0,15}\Z"),
    channel=st.sampled_from(["edge", "stable", "lts"]),
    epoch=st.integers(0, 2**62),
    cid=_cid,
    format=st.sampled_from(["tar", "source", "dag"]),
    author_id=_text.filter(bool),
    pub_key=st.from_regex(r"\Aed25519:[A-Za-z0-9+/]{4,44}=?\Z"),
    signature=st.from_regex(r"\Aed25519:[A-Za-z0-9+/]{4,88}=?\Z"),
    ast_simhash64=st.none() | st.from_regex(r"\A[0-9a-f]{16}\Z"),
    originality_score=st.none() | st.floats(0, 1),
    parent=st.none() | _cid,
    head=st.none() | _cid,
    source_mode=st.none() | st.sampled_from(["local", "p2p", "http", "auto"]),
    source_addrs=st.lists(st.from_regex(r"\A/ip4/[0-9.]{7,15}/tcp/[0-9]{1,5}\Z"),
                          max_size=3).map(tuple),
)
_lock = st.builds(Lock, package_id=st.just("pkg://cheng/app"),
                  created_ts=st.none() | st.integers(0, 2**40).map(str),
                  dependencies=st.lists(_dep, max_size=4).map(tuple))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_lock, st.sampled_from(["toml", "yaml", "json"]))
def test_every_lock_round_trips(lock: Lock, fmt: str) -> None:
    assert parse_lock(parse_text(lock_text(lock, fmt), fmt)) == lock


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.from_regex(r"\A[a-z_]{1,10}\Z"),
                       st.one_of(_text, st.integers(-2**63, 2**63 - 1), st.booleans(),
                                 st.lists(_text, max_size=3)), max_size=6),
       st.sampled_from(["toml", "yaml", "json"]))
def test_documents_round_trip(data: dict[str, object], fmt: str) -> None:
    assert parse_text(dump_text(data, fmt), fmt) == data


@pytest.mark.parametrize("fmt,text", [
    ("json", '{"a": 1, "a": 2}'),
    ("yaml", "a: 1\na: 2\n"),
    ("toml", "a = 1\na = 2\n"),
])
def test_duplicate_keys_are_refused(fmt: str, text: str) -> None:
    with pytest.raises(DocumentError, match=r"(?i)duplicate|defin|overwrite"):
        parse_text(text, fmt)


_pid = st.from_regex(r"\Apkg://cheng/[a-z][a-z0-9-]{0,12}\Z")
_manifest = st.builds(
    lambda pid, version, deps, over: parse_manifest({
        "package_id": pid, **({"version": version} if version else {}),
        "dependencies": [{"package_id": p, "channel": c, **({"path": pa} if pa else {})}
                         for p, (c, pa) in deps.items() if p != pid],
        **({"overrides": over} if over else {})}),
    _pid, st.none() | st.builds(lambda a, b, c: f"{a}.{b}.{c}", *(st.integers(0, 99),) * 3),
    st.dictionaries(_pid, st.tuples(st.sampled_from(["edge", "stable", "lts"]),
                                    st.none() | st.just("../local")), max_size=4),
    st.dictionaries(_pid, st.sampled_from(["edge", "stable", "lts"]) | st.fixed_dictionaries(
        {"path": st.just("../o")}), max_size=2))


@settings(max_examples=60, deadline=None)
@given(_manifest, st.sampled_from(["toml", "yaml", "json"]))
def test_every_manifest_round_trips(manifest: Manifest, fmt: str) -> None:
    assert parse_manifest(parse_text(dump_text(manifest_to_dict(manifest), fmt), fmt)) == manifest


def test_manifest_rewrite_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "cheng-package.toml"
    path.write_text('# my package\npackage_id = "pkg://cheng/app"  # the id\n'
                    'module_prefix = "app"\n\n[[dependencies]]\n# we need fs\n'
                    'package_id = "pkg://cheng/fs"\nchannel = "stable"\n')
    m = load_manifest(path)
    dump_manifest(replace(m, dependencies=(Dependency("pkg://cheng/fs", "edge"),)), path)
    text = path.read_text()
    assert "# my package" in text and "# the id" in text and "# we need fs" in text
    assert 'module_prefix = "app"' in text and 'channel = "edge"' in text
