"""Property tests for the small parsers and resolvers added for issue 13."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cli.pkg_cas import _printable
from cheng_build.cli.sizes import _UNITS, parse_size
from cheng_build.core import contain
from cheng_build.core.errors import UsageError


@given(st.integers(min_value=0, max_value=1 << 50), st.sampled_from(sorted(_UNITS)))
def test_sizes_parse_to_the_number_times_the_unit(n: int, unit: str) -> None:
    assert parse_size(f"{n}{unit}", "--max-bytes") == n * _UNITS[unit]
    assert parse_size(f" {n} {unit.upper()} ", "--max-bytes") == n * _UNITS[unit]


@given(st.text(max_size=12))
def test_size_parser_refuses_or_parses_never_crashes(text: str) -> None:
    try:
        assert parse_size(text, "--max-bytes") >= 0
    except UsageError as exc:
        assert exc.what.startswith("--max-bytes: ")


@given(st.text())
def test_ls_names_are_one_printable_line_and_decode_back(name: str) -> None:
    out = _printable(name)
    assert out.isprintable()  # no newline, no control character, no escape sequence
    assert out.encode("latin-1", "backslashreplace").decode("unicode_escape") == name


NAMES = st.sampled_from(["a", "b", "c"])
TARGETS = st.lists(st.sampled_from(["..", ".", "a", "b", "c", "l"]), min_size=1, max_size=6)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(NAMES, max_size=3), st.booleans(), TARGETS), max_size=8))
def test_kernel_resolution_equals_realpath(entries: list[tuple[list[str], bool, list[str]]]) -> None:
    """Differential: the O_PATH resolution used on chengc's hot path against os.path.realpath,
    on random trees of folders and relative links (chains, loops, climbs above the root)."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "r" / "pkg"
        root.mkdir(parents=True)
        made: list[Path] = [root]
        for parts, is_link, target in entries:
            p = root.joinpath(*parts) if parts else root
            try:
                if is_link:
                    p.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink("/".join(target), p / "l" if p.is_dir() else p)
                    made.append(p / "l" if p.is_dir() else p)
                else:
                    p.mkdir(parents=True, exist_ok=True)
                    (p / "f").write_text("x")
                    made += [p, p / "f"]
            except OSError:
                continue
        real_root = contain.real_root(root)
        assert real_root == os.path.realpath(root)
        for p in made:
            try:
                expected = os.path.realpath(p, strict=True)
            except OSError:
                continue  # dangling or a loop: both fall back to realpath's reading
            assert contain._resolved(p) == expected
            inside = expected == real_root or expected.startswith(real_root + os.sep)
            assert (contain.outside(real_root, p) is None) == inside


def test_outside_names_where_a_chain_leads(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "d").mkdir(parents=True)
    os.symlink("..", root / "d" / "up")
    os.symlink("../d/up/../x", root / "d" / "leak")  # as text: d/x, inside
    (tmp_path / "x").write_text("secret")
    assert contain.outside(contain.real_root(root), root / "d" / "leak") == str(tmp_path / "x")
    assert contain.outside(contain.real_root(root), root / "d" / "up") is None


@pytest.mark.parametrize("bad", ["", "4 GiB x", "-1", "1.5GiB", "GiB"])
def test_bad_sizes_say_how(bad: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_size(bad, "--max-bytes")
    assert "4GiB" in (exc.value.how or "")
