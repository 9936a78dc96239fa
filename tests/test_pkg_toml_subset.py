"""pkg.toml_subset against tomllib: whatever it reads it reads exactly as tomllib does (types
too), it reads the documents of its subset, and anything else it leaves to tomllib."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.pkg.formats import parse_text
from cheng_build.pkg.toml_subset import loads

REPO = Path(__file__).resolve().parent.parent


def _same(a: Any, b: Any) -> bool:
    """Equal with equal types all the way down (``True == 1`` in Python, not in TOML)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _agrees(text: str) -> dict[str, Any] | None:
    got = loads(text)
    if got is not None:
        assert _same(got, tomllib.loads(text)), text
    return got


_bare = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=6)
_plain = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'),
                 max_size=12)
_values = st.one_of(
    _plain.map(lambda s: f'"{s}"'),
    st.integers(-(10**18) + 1, 10**18 - 1).map(str),
    st.sampled_from(["true", "false", "+7", "-0", "+0"]),
)
_ws = st.sampled_from(["", " ", "\t", "  "])
_comment = st.one_of(st.just(""), _plain.map(lambda s: f"#{s}".replace("\r", "")))


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A document of the subset with distinct names (so tomllib must accept it)."""
    lines: list[str] = []
    names: set[str] = set()

    def pairs() -> None:
        keys = draw(st.lists(_bare, max_size=4, unique=True))
        for key in keys:
            lines.append(f"{draw(_ws)}{key}{draw(_ws)}={draw(_ws)}{draw(_values)}{draw(_ws)}"
                         f"{draw(_comment)}")
            if draw(st.booleans()):
                lines.append(draw(st.sampled_from(["", "# note", "   ", "\t# x"])))

    pairs()
    names.update(k.strip() for k in [ln.split("=")[0] for ln in lines if "=" in ln])
    for _ in range(draw(st.integers(0, 3))):
        name = draw(_bare.filter(lambda n: n not in names))
        if draw(st.booleans()):
            names.add(name)
            lines.append(f"[{draw(_ws)}{name}{draw(_ws)}]{draw(_ws)}{draw(_comment)}")
            pairs()
        else:
            for _ in range(draw(st.integers(1, 3))):
                lines.append(f"[[{name}]]{draw(_comment)}")
                pairs()
            names.add(name)
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(lines) + draw(st.sampled_from(["", end]))


@settings(max_examples=400, deadline=None)
@given(documents())
def test_reads_its_subset_as_tomllib_does(text: str) -> None:
    assert _agrees(text) is not None, text


@settings(max_examples=600, deadline=None)
@given(documents(), st.integers(0, 400), st.sampled_from(
    [*'"\\\'#=[]. \t\r\n\x00\x7f\x0c0-_+eE.:xé', "true", "[[", "]]", '"""', "'''", "1_0", "1.5",
     "1979-05-27", "{a=1}", "[1]", "a.b", "inf"]),
    st.booleans())
def test_any_edit_is_read_as_tomllib_does_or_left_to_it(text: str, where: int, piece: str,
                                                         insert: bool) -> None:
    where %= len(text) + 1
    edited = text[:where] + piece + text[where + (0 if insert else 1):]
    try:
        tomllib.loads(edited)
        valid = True
    except tomllib.TOMLDecodeError:
        valid = False
    got = _agrees(edited)
    assert got is None or valid


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='ab=" #[]\n\t\r01-+.\\tfrue', max_size=40))
def test_arbitrary_text(text: str) -> None:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assert loads(text) is None
        return
    _agrees(text)


@pytest.mark.parametrize("text", [
    'a = 1\na = 2', '[t]\n[t]', 'a = 1\n[a]', '[[t]]\n[t]', '[t]\n[[t]]', 'a = 01', 'a = 1_0',
    'a = "x\\"y"', "a = 'lit'", 'a = """m"""', 'a.b = 1', '"a" = 1', 'a = [1]', 'a = {b = 1}',
    'a = 1.5', 'a = 1979-05-27', 'a = "x" b', '[a.b]', 'a = "\x01"', 'a = 1\rb = 2', '[]',
    'a = 1234567890123456789', 'a = tru', 'a =', '= 1',
])
def test_outside_the_subset_is_left_to_tomllib(text: str) -> None:
    assert loads(text) is None


def test_the_example_manifests_take_the_fast_path() -> None:
    found = sorted(REPO.glob("examples/**/cheng-package.toml"))
    assert found
    for path in found:
        text = path.read_text(encoding="utf-8")
        assert _agrees(text) is not None, path
        assert _same(parse_text(text, "toml"), tomllib.loads(text))


def test_publish_reads_a_simple_manifest_without_tomllib(tmp_path: Path) -> None:
    (tmp_path / "cheng-package.toml").write_text(
        '# lib\npackage_id = "pkg://cheng/x"\nversion = "1.0.0"\n\n[[dependencies]]\n'
        'package_id = "pkg://cheng/fs"\nchannel = "stable"\n', encoding="utf-8")
    code = (
        "import sys\n"
        "from cheng_build.pkg.manifest import load_manifest\n"
        f"m = load_manifest({str(tmp_path / 'cheng-package.toml')!r})\n"
        "assert m.package_id == 'pkg://cheng/x' and m.version == '1.0.0', m\n"
        "assert 'tomllib' not in sys.modules\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == 0, p.stderr
