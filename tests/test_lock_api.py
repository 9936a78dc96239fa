"""Public-API extraction from Cheng sources and the SemVer release gate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.pkg.api import (
    api_digest,
    api_from_json,
    api_to_json,
    extract_api,
    extract_api_from_dir,
    is_exported,
)
from cheng_build.pkg.semver import (
    Bump,
    Version,
    VersionError,
    check_release,
    classify_bump,
    parse_version,
)

SRC = '''module demo
import std/os

# fn Commented(): int32 = 0
fn Add(a: int32,
       b: int32 = 2): int32 =
    return a + b

fn helper(x: int32): int32 = x

@importc("puts") fn Puts(s: cstring): int32

async fn Fetch[T](url: str; n: int32): T where T == int32 =
    let s = """
fn Inside(): int32 = 0
"""
    return 1

iterator Items(xs: T[]): T =
    for x in xs:
        yield x

type
    Pair =
        a: int32
        b: int32
    hidden = int32
    Option[T] = Some(value: T) | None

type Color = enum
    red
    green

const
    Max = 10
    min = 1

const Name: str = "a # not a comment"

template `$`(x: Pair): str = "p"
macro Gen(n: int32): untyped = n
fn
    Sub(a: int32, b: int32): int32 = a - b
    async Wait(): int32 = 0
'''


def test_extracts_exported_top_level_declarations() -> None:
    table = extract_api({"src/demo.cheng": SRC, "tests/t.cheng": "fn Test(): int32 = 0\n"})
    got = {k: (s.kind, s.signature) for k, s in table.items()}
    assert got == {
        "demo.Add": ("fn", "(a: int32, b: int32 = 2): int32"),
        "demo.Puts": ("fn", "(s: cstring): int32"),
        "demo.Fetch": ("fn", "[T](url: str, n: int32): T where T == int32"),
        "demo.Items": ("iterator", "(xs: T[]): T"),
        "demo.Pair": ("type", "= {a: int32; b: int32}"),
        "demo.Option": ("type", "[T] = Some(value: T) | None"),
        "demo.Color": ("type", "= enum {red; green}"),
        "demo.Max": ("const", "= 10"),
        "demo.Name": ("const", ': str = "a # not a comment"'),
        "demo.Gen": ("macro", "(n: int32): untyped"),
        "demo.Sub": ("fn", "(a: int32, b: int32): int32"),
        "demo.Wait": ("fn", "(): int32"),
    }


def test_export_rule_is_ascii_capital_first() -> None:
    assert is_exported("Foo") and is_exported("X1")
    assert not is_exported("foo") and not is_exported("_Foo") and not is_exported("$")
    assert not is_exported("Ärger")  # non-ASCII capitals do not export


def test_whitespace_does_not_change_signatures() -> None:
    a = extract_api({"src/m.cheng": "fn F(a: int32,b:int32):int32 = a\n"})
    b = extract_api({"src/m.cheng": "fn F( a : int32 ;\n      b: int32 ) : int32 =\n    a\n"})
    assert a == b


def test_overloads_get_distinct_keys() -> None:
    table = extract_api({"src/m.cheng": "fn F(a: int32): int32 = a\nfn F(a: str): int32 = 0\n"})
    assert sorted(table) == ["m.F(a: int32)", "m.F(a: str)"]


def test_table_json_round_trip_and_digest() -> None:
    table = extract_api({"src/demo.cheng": SRC, "src/net/tcp.cheng": "fn Dial(): int32 = 0\n"})
    assert "net/tcp.Dial" in table
    assert api_from_json(api_to_json(table)) == table
    assert api_digest(table).startswith("sha256:") and len(api_digest(table)) == 71
    assert api_digest(table) == api_digest(api_from_json(api_to_json(table)))


def test_from_dir_uses_src_only(tmp_path: Path) -> None:
    root = tmp_path
    (root / "src" / "a").mkdir(parents=True)
    (root / "src" / "a" / "b.cheng").write_text("fn B(): int32 = 0\n")
    (root / "examples").mkdir()
    (root / "examples" / "e.cheng").write_text("fn E(): int32 = 0\n")
    assert list(extract_api_from_dir(root)) == ["a/b.B"]


def _api(src: str) -> dict[str, object]:
    return dict(extract_api({"src/m.cheng": src}))


OLD = "fn Keep(a: int32): int32 = a\nfn Gone(): int32 = 0\ntype T =\n    x: int32\n"


def test_patch_and_minor_may_not_break() -> None:
    new = "fn Keep(a: int64): int32 = a\ntype T =\n    x: int32\n    y: int32\nfn Added(): int32 = 1\n"
    reasons = check_release(_api(OLD), _api(new), "1.4.2", "1.4.3")
    assert reasons == [
        "added fn m.Added in a patch release (adding needs a minor release): (): int32",
        "removed fn m.Gone: (): int32",
        "changed m.Keep: fn (a: int32): int32 -> fn (a: int64): int32",
        "changed m.T: type = {x: int32} -> type = {x: int32; y: int32}",
    ]
    minor = check_release(_api(OLD), _api(OLD + "fn Added(): int32 = 1\n"), "1.4.2", "1.5.0")
    assert minor == []
    assert check_release(_api(OLD), _api(new), "1.4.2", "2.0.0") == []


def test_version_must_move_forward_and_zero_major_is_cargo_style() -> None:
    assert check_release({}, {}, "1.0.0", "1.0.0")[0].startswith("version 1.0.0 does not follow")
    assert check_release({}, {}, "1.0.0", "1.0.0-rc.1")
    assert classify_bump(parse_version("0.3.1"), parse_version("0.4.0")) is Bump.MAJOR
    assert classify_bump(parse_version("0.3.1"), parse_version("0.3.2")) is Bump.PATCH
    assert check_release(_api(OLD), {}, "0.3.1", "0.3.2")  # a 0.y.z patch still may not break
    assert check_release(_api(OLD), {}, "1.4.0-rc.1", "1.4.0") == []  # pre-releases are exempt
    assert check_release(_api(OLD), {}, "1.4.0", "1.4.1-rc.1") == []


@pytest.mark.parametrize("bad", ["1", "1.0", "01.0.0", "1.0.0-", "1.0.0-01", "v1.0.0", "", "1.0.0+"])
def test_invalid_versions(bad: str) -> None:
    with pytest.raises(VersionError):
        parse_version(bad)


_ident = st.from_regex(r"\A(0|[1-9][0-9]{0,3}|[0-9]*[A-Za-z-][0-9A-Za-z-]{0,5})\Z")
_version = st.builds(Version, st.integers(0, 50), st.integers(0, 50), st.integers(0, 50),
                     st.lists(_ident, max_size=3).map(tuple))


@settings(max_examples=150, deadline=None)
@given(_version, _version)
def test_semver_parse_and_order(a: Version, b: Version) -> None:
    assert parse_version(str(a)) == a
    assert (a < b) == (not (a >= b))
    if a.pre == () and b.pre != () and a.major == b.major and a.minor == b.minor \
            and a.patch == b.patch:
        assert b < a  # a pre-release sorts before its release


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_extraction_never_crashes(text: str) -> None:
    for sym in extract_api({"src/x.cheng": text}).values():
        assert is_exported(sym.name)
