"""The import parser and the resolver: the existing compiler's rules, exactly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers_chengc import write_tree
from hypothesis import given
from hypothesis import strategies as st

from cheng_build.build.errors import ImportCycleError, ImportPathError, UnresolvedImportError
from cheng_build.build.imports import (
    FileRole,
    ImportKind,
    classify,
    parse_imports,
    search_roots,
    split_roots,
    walk,
)
from cheng_build.build.inputs import StatCache

seg = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s != "as")
mod = st.lists(seg, min_size=1, max_size=4).map(lambda s: "cheng/" + "/".join(s))


def facts() -> StatCache:
    return StatCache(None)


# --- parsing ------------------------------------------------------------------------------------


def test_parse_forms() -> None:
    src = "\n".join([
        "import std/os",
        "import cheng/util/strings as s  # why",
        "  import cheng/net/[tcp, udp/v4] // grouped",
        "from cheng/fmt/print import Println, Sprintf",
        "import cheng/a/b, cheng/c/d as dd",
        'let s = "import cheng/not/this"',
        "# import cheng/commented/out",
        "importer(x)",
    ])
    got = [(s.line, s.path) for s in parse_imports(src)]
    assert got == [(1, "std/os"), (2, "cheng/util/strings"), (3, "cheng/net/tcp"), (3, "cheng/net/udp/v4"),
                   (4, "cheng/fmt/print"), (5, "cheng/a/b"), (5, "cheng/c/d")]


@given(st.lists(st.tuples(mod, st.booleans(), st.sampled_from(["", "  ", "\t"])), max_size=8))
def test_parse_roundtrip(items: list[tuple[str, bool, str]]) -> None:
    text = "\n".join(f"{ind}import {m}{' as x' if alias else ''}" for m, alias, ind in items)
    assert [s.path for s in parse_imports(text)] == [m for m, _, _ in items]


@given(st.text(max_size=200))
def test_parse_never_crashes_on_text_without_brackets(text: str) -> None:
    text = text.replace("[", "").replace("]", "")
    for s in parse_imports(text):
        assert s.line >= 1


@pytest.mark.parametrize("bad", ["cheng/../x", "cheng//x", "cheng/./x", "cheng/a b", "foo/bar", "cheng"])
def test_classify_refuses(bad: str) -> None:
    with pytest.raises(ImportPathError):
        classify(bad)


def test_classify_kinds() -> None:
    assert classify("std/os") == (ImportKind.TOOLCHAIN, "std", "os")
    assert classify("cheng/net/tcp/conn") == (ImportKind.PACKAGE, "net", "tcp/conn")
    assert classify("cheng/net") == (ImportKind.PACKAGE, "net", "net")


# --- roots --------------------------------------------------------------------------------------


def test_split_roots_rules() -> None:
    assert split_roots("/a:/b") == ["/a", "/b"]
    assert split_roots("/a,/b;/c") == ["/a", "/b", "/c"]
    assert split_roots("C:/x,/y") == ["C:/x", "/y"]  # a comma makes ':' part of the path
    assert split_roots("") == []


@given(st.lists(st.from_regex(r"/[a-z0-9_/.-]{1,12}", fullmatch=True), max_size=5),
       st.sampled_from([",", ";", ":"]))
def test_split_roots_roundtrip(parts: list[str], sep: str) -> None:
    assert split_roots(sep.join(parts)) == [p.strip() for p in parts if p.strip()]


def test_search_roots_order_and_default(tmp_path: Path) -> None:
    env = {"PKG_ROOT": "/r0", "PKG_ROOTS": "/r1,/r2", "HOME": str(tmp_path)}
    assert search_roots(env, ["/r3"]) == [Path("/r0"), Path("/r1"), Path("/r2"), Path("/r3")]
    assert search_roots({"HOME": str(tmp_path)}) == [tmp_path / ".cheng-packages"]


# --- resolution ---------------------------------------------------------------------------------


def _entry(tmp: Path, *imports: str) -> Path:
    p = tmp / "main.cheng"
    p.write_text("".join(f"import {i}\n" for i in imports))
    return p


def test_rule_order_within_a_root(tmp_path: Path) -> None:
    r = tmp_path / "r"
    # All three package-dir forms and all three inner forms exist: the first in order must win.
    write_tree(r, {
        "cheng-package.toml": 'package_id = "pkg://cheng/pk"\n',
        "src/m.cheng": "1", "cheng/m.cheng": "2", "m.cheng": "3",
        "cheng-pk/src/m.cheng": "4", "pk/src/m.cheng": "5",
    })
    g = walk(_entry(tmp_path, "cheng/pk/m"), [r], facts())
    mods = [f for f in g.files if f.role is FileRole.MODULE]
    assert [f.source for f in mods] == [r / "src/m.cheng"]
    (r / "src/m.cheng").unlink()
    g = walk(_entry(tmp_path, "cheng/pk/m"), [r], facts())
    assert [f.source for f in g.files if f.role is FileRole.MODULE] == [r / "cheng/m.cheng"]
    (r / "cheng-package.toml").write_text('package_id = "pkg://cheng/other"\n')
    g = walk(_entry(tmp_path, "cheng/pk/m"), [r], facts())
    assert [f.source for f in g.files if f.role is FileRole.MODULE] == [r / "cheng-pk/src/m.cheng"]
    (r / "cheng-pk/src/m.cheng").unlink()
    g = walk(_entry(tmp_path, "cheng/pk/m"), [r], facts())
    assert [f.source for f in g.files if f.role is FileRole.MODULE] == [r / "pk/src/m.cheng"]


def test_earlier_root_wins_and_staged_roots_renumber(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_tree(a, {"unused/x.cheng": ""})
    write_tree(b, {"cheng-x/src/m.cheng": "import cheng/y/n\n"})
    write_tree(c, {"cheng-x/src/m.cheng": "shadowed", "y/n.cheng": ""})
    g = walk(_entry(tmp_path, "cheng/x/m"), [a, b, c], facts())
    assert g.roots == (b, c)
    assert g.pkg_roots_value == "pkgroots/0,pkgroots/1"
    staged = {f.staged: f.source for f in g.files}
    assert staged == {"main.cheng": tmp_path / "main.cheng",
                      "pkgroots/0/cheng-x/src/m.cheng": b / "cheng-x/src/m.cheng",
                      "pkgroots/1/y/n.cheng": c / "y/n.cheng"}


def test_unresolved_lists_every_path(tmp_path: Path) -> None:
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    r1.mkdir()
    write_tree(r2, {"cheng-package.toml": 'package_id = "pkg://cheng/nope"\n'})
    with pytest.raises(UnresolvedImportError) as ei:
        walk(_entry(tmp_path, "cheng/nope/deep/mod"), [r1, r2], facts())
    text = "\n".join(ei.value.lines("chengc"))
    assert text.startswith("chengc: unresolved import cheng/nope/deep/mod")
    for root in (r1, r2):
        for d in ("cheng-nope/", "nope/"):
            for inner in ("src/", "cheng/", ""):
                assert os.fspath(root / f"{d}{inner}deep/mod.cheng") in text
    # r2's own manifest names the package, so the root itself was searched too.
    assert os.fspath(r2 / "src/deep/mod.cheng") in text
    assert f"{r1 / 'cheng-package.toml'} (absent)" in text
    assert "main.cheng:1" in text


def test_cycle_is_reported_with_its_chain(tmp_path: Path) -> None:
    r = tmp_path / "r"
    write_tree(r, {"a/src/x.cheng": "import cheng/a/y\n", "a/src/y.cheng": "import cheng/a/x\n"})
    with pytest.raises(ImportCycleError) as ei:
        walk(_entry(tmp_path, "cheng/a/x"), [r], facts())
    assert "x.cheng -> " in (ei.value.why or "")
    assert (ei.value.why or "").count("x.cheng") == 2


def test_diamond_is_not_a_cycle_and_toolchain_imports_are_recorded(tmp_path: Path) -> None:
    r = tmp_path / "r"
    write_tree(r, {"a/src/l.cheng": "import cheng/a/base\nimport std/os\n",
                   "a/src/r.cheng": "import cheng/a/base\n", "a/src/base.cheng": "import std/strings\n"})
    g = walk(_entry(tmp_path, "cheng/a/l", "cheng/a/r"), [r], facts())
    assert len(g.files) == 4
    assert g.toolchain_imports == ("std/os", "std/strings")


def test_bad_import_names_its_line(tmp_path: Path) -> None:
    e = tmp_path / "main.cheng"
    e.write_text("import std/os\nimport cheng/../etc/passwd\n")
    with pytest.raises(ImportPathError) as ei:
        walk(e, [tmp_path], facts())
    assert "main.cheng:2" in ei.value.what


def test_staged_tree_resolves_like_the_original(tmp_path: Path) -> None:
    """Resolving again inside the staged tree picks the same files (the staging invariant)."""
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    write_tree(r1, {"cheng-package.toml": 'package_id = "pkg://cheng/p"\n',
                    "src/a.cheng": "import cheng/q/b\n",
                    "cheng-q/cheng/unused.cheng": ""})
    write_tree(r2, {"q/b.cheng": "import cheng/p/c\n", "cheng-p/src/c.cheng": "",
                    "cheng-p/cheng-package.toml": ""})
    # cheng/p/c: r1 is pkg p but has no c -> falls through to r2/cheng-p/src/c.cheng
    g = walk(_entry(tmp_path, "cheng/p/a"), [r1, r2], facts())
    stage = tmp_path / "stage"
    for f in g.files:
        (stage / f.staged).parent.mkdir(parents=True, exist_ok=True)
        (stage / f.staged).write_bytes(f.source.read_bytes())
    g2 = walk(stage / "main.cheng", [stage / r for r in g.staged_roots], facts())
    assert [f.staged for f in g2.files] == [f.staged for f in g.files]
    assert [f.sha256 for f in g2.files] == [f.sha256 for f in g.files]
