"""Property tests for the governance line parsers (issue 20) and their helpers."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.trust import canonical
from cheng_build.trust.gov_lines import GOV_TYPES, is_tag_name, semver_key
from cheng_build.trust.keys import KeyPair, Verifier
from cheng_build.trust.registry_entry import (
    EntryType,
    RegistryFormatError,
    SigStatus,
    parse_line,
    signature_status,
)

KEY = KeyPair.generate("node:prop")
PREV = "sha256:" + "ab" * 32
CID = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
PKG = st.from_regex(r"pkg://[a-z][a-z0-9]{0,8}/[a-z][a-z0-9-]{0,8}", fullmatch=True)
TAG = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", fullmatch=True)
TEXT = st.text(min_size=1, max_size=40)
CHANNEL = st.sampled_from(["edge", "stable", "lts"])


def _valid(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    base = {"package_id": PKG, "cid": st.just(CID)}
    if kind == "tag":
        return st.fixed_dictionaries({**base, "tag": TAG})
    if kind == "promote":
        return st.fixed_dictionaries({**base, "channel": CHANNEL})
    if kind in ("quarantine", "release"):
        return st.fixed_dictionaries({**base, "reason": TEXT}, optional={"source": TEXT})
    if kind == "appeal":
        return st.fixed_dictionaries({**base, "report_cid": st.just(CID)})
    if kind == "decision":
        return st.one_of(
            st.fixed_dictionaries({**base, "outcome": st.just("restore"), "reason": TEXT,
                                   "originality_score": st.floats(0.0, 1.0)}),
            st.fixed_dictionaries({**base, "outcome": st.just("confirm"), "reason": TEXT}))
    return st.one_of(
        st.fixed_dictionaries({"op": st.just("grant"), "maintainer_key": st.just(KEY.pub_key),
                               "maintainer_id": TEXT,
                               "channels": st.lists(CHANNEL, min_size=1, max_size=3),
                               "packages": st.lists(PKG, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"op": st.just("remove"), "maintainer_key": st.just(KEY.pub_key),
                               "maintainer_id": TEXT}))


def _line(kind: str, fields: dict[str, Any]) -> bytes:
    body = {"type": kind, "seq": 5, "prev": PREV, **fields, "created_ts": "1",
            "pub_key": KEY.pub_key}
    body["signature"] = KEY.sign(canonical.gov_payload(body))
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(GOV_TYPES).flatmap(lambda k: st.tuples(st.just(k), _valid(k))))
def test_valid_lines_parse_and_their_signatures_verify(case: tuple[str, dict[str, Any]]) -> None:
    kind, fields = case
    raw = _line(kind, fields)
    e = parse_line(raw, 5)
    assert e.type is EntryType(kind) and e.raw == raw
    assert {k: e.data[k] for k in fields} == fields
    assert signature_status(e, Verifier()) == (SigStatus.VALID, "")
    # Any change to a signed field breaks the signature (the type included: no replay as
    # another kind of line).
    other = next(t for t in GOV_TYPES if t != kind)
    tampered = json.loads(raw)
    tampered["type"] = other
    try:
        e2 = parse_line(json.dumps(tampered).encode(), 5)
    except RegistryFormatError:
        return
    assert signature_status(e2, Verifier())[0] is SigStatus.INVALID


ODD = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.floats(allow_nan=True),
                st.text(max_size=6), st.lists(st.one_of(st.text(max_size=4), st.integers()),
                                              max_size=3),
                st.sampled_from(["", "pkg://", "pkg://a/b", "edge", "restore", "grant", "-x",
                                 "v1.0.0", "ed25519:", "x" * 2000]))
FIELDS = ["package_id", "cid", "tag", "channel", "reason", "source", "report_cid", "outcome",
          "originality_score", "op", "maintainer_key", "maintainer_id", "channels", "packages",
          "seq", "prev", "pub_key", "signature"]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(GOV_TYPES).flatmap(lambda k: st.tuples(st.just(k), _valid(k))),
       st.dictionaries(st.sampled_from(FIELDS), st.one_of(ODD, st.just("<drop>")), max_size=3))
def test_malformed_lines_are_refused_with_a_line_number(case: tuple[str, dict[str, Any]],
                                                        changes: dict[str, Any]) -> None:
    """Whatever is changed, parse_line accepts or raises RegistryFormatError naming line 5."""
    kind, fields = case
    d = json.loads(_line(kind, fields))
    for k, v in changes.items():
        if v == "<drop>":
            d.pop(k, None)
        else:
            d[k] = v
    try:
        raw = json.dumps(d).encode()
    except ValueError:
        return
    try:
        e = parse_line(raw, 5)
    except RegistryFormatError as exc:
        assert exc.line == 5 and exc.what.startswith("line 5: ")
        return
    # Accepted: then the shape rules hold.
    assert e.type is EntryType(kind)
    if kind != "maintainer":
        assert isinstance(e.data["package_id"], str) and e.data["package_id"].startswith("pkg://")
    if kind == "tag":
        assert is_tag_name(e.data["tag"])
    if kind == "decision" and e.data["outcome"] == "restore":
        assert 0.0 <= float(e.data["originality_score"]) <= 1.0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789abcXYZ._+-/ ", max_size=24))
def test_tag_names_agree_with_the_manifest_parser(name: str) -> None:
    """A manifest's tag and a tag line accept the same names (differential)."""
    from cheng_build.pkg.formats import DocumentError
    from cheng_build.pkg.manifest import _check_tag

    try:
        _check_tag({"tag": name}, "dependencies[0]")
        manifest_ok = True
    except DocumentError:
        manifest_ok = False
    assert manifest_ok == is_tag_name(name)


SEMVER = st.builds(
    lambda a, b, c, pre, build: f"{a}.{b}.{c}" + (f"-{pre}" if pre else "")
    + (f"+{build}" if build else ""),
    st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
    st.one_of(st.none(), st.lists(st.one_of(st.from_regex(r"[1-9][0-9]?|0", fullmatch=True),
                                            st.from_regex(r"[a-z][a-z0-9-]{0,3}",
                                                          fullmatch=True)),
                                  min_size=1, max_size=3).map(".".join)),
    st.one_of(st.none(), st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True)))


@settings(max_examples=400, deadline=None)
@given(SEMVER, SEMVER)
def test_semver_key_orders_as_pkg_semver(a: str, b: str) -> None:
    """The trust layer's SemVer precedence equals pkg.semver's (the oracle)."""
    from cheng_build.pkg.semver import parse_version

    va, vb = parse_version(a), parse_version(b)
    ka, kb = semver_key(a), semver_key(b)
    assert ka is not None and kb is not None
    assert (ka < kb) == (va < vb) and (ka == kb) == va.same_precedence(vb)


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "x"])
def test_semver_key_refuses_non_semver(text: str) -> None:
    assert semver_key(text) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=3), min_size=1, max_size=30))
def test_graph_draws_every_snapshot_once(parent_picks: list[list[int]]) -> None:
    """Any DAG (parents always earlier): one '*' row per snapshot, no lane lost."""
    from cheng_build.pkg.version_graph import Node, draw

    nodes = []
    for i, picks in enumerate(parent_picks):
        parents = list(dict.fromkeys(f"c{p % i}" for p in picks)) if i else []
        nodes.append(Node(f"c{i}", i + 1, "edge", i, None, parents))
    rows = draw(list(reversed(nodes)))
    stars = [r for r in rows if "*" in r.split("  ")[0]]
    assert len(stars) == len(nodes)
    for n, row in zip(reversed(nodes), stars, strict=True):
        assert row.split("  ", 1)[1].startswith(n.cid + "  ")
        assert row.split("  ")[0].count("*") == 1
    assert all(re.fullmatch(r"[*|/\\ ]*", r.split("  ")[0]) for r in rows)


def test_graph_of_a_diamond_is_drawn_as_git_does() -> None:
    from cheng_build.pkg.version_graph import Node, draw

    ns = [Node("root", 1, "edge", 1, "1.0.0", []), Node("main", 2, "stable", 2, "1.1.0", ["root"]),
          Node("side", 3, "edge", 3, "1.1.1", ["root"]),
          Node("merge", 4, "edge", 4, "1.2.0", ["main", "side"], heads=["edge"])]
    ns[0].tags.append("v1.0.0")
    assert draw(list(reversed(ns))) == [
        "*  merge  edge@4  1.2.0  (head: edge)",
        "|\\",
        "| *  side  edge@3  1.1.1",
        "* |  main  stable@2  1.1.0",
        "|/",
        "*  root  edge@1  1.0.0  (tag: v1.0.0)"]
