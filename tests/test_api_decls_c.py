"""The declarations pass in C (native/src/chengapi.c, ``chengtok.api_decls``) against Python.

Oracles: ``api.python_extract_module`` (the same C logical lines, the declarations pass of
pkg/api.py in Python) and tests/oracle_api_v1.py (the whole extractor before any C). Sources are
declaration-shaped lines whose heads, bodies and entries are drawn from the characters every rule
of ``_normalise``, ``_body_eq``, ``_ANNOTATION`` and ``_DECL`` acts on, including the regular
expressions' backtracking cases (``a : =b``, ``x::y``, ``a == b``, a space before ``=>``) and
Unicode blanks and letters (classed for C by Python's tables).
"""

from __future__ import annotations

import oracle_api_v1
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build._native import chengtok
from cheng_build.pkg import api

SIG = [" ", "  ", "\t", "\u3000", "\xa0", "\x85", ",", ";", ":", "::", "=", "==", "=>", ":=", "<=",
       ">=", "!=", "!", "<", ">", "(", ")", "[", "]", "{", "}", "a", "int", "T", "é", "中",
       '"', '"x"', '"""', "'", "'c'", "`", "`+`", "\\", "\\\"", " = ", " : ", " ; ", " , "]
sigs = st.lists(st.sampled_from(SIG), max_size=24).map("".join)
KW = ["fn", "iterator", "template", "macro", "type", "const", "async fn", "async  fn",
      "async\u3000fn", "asyncfn", "fnx", "type\u00e9", "typeé", "const\xa0", "Fn", "async"]
NAMES = ["Add", "add", "_x", "X1", "`+`", "`Op`", "``", "`", "Ä", "A", "Dup", "9", ""]
ANNOT = ["", "@inline ", "@x(1) ", "@x(", "@ ", "@1 ", "@a@b ", "@p(a, b)\u3000", "@q()"]
INDENT = ["", " ", "  ", "    ", "\t", "\u3000", "        "]


@st.composite
def decl_line(draw: st.DrawFn) -> str:
    head = draw(st.sampled_from(ANNOT)) + draw(st.sampled_from(KW))
    if draw(st.booleans()):  # one-line form
        head += " " + draw(st.sampled_from(NAMES)) + draw(sigs)
    return draw(st.sampled_from(INDENT[:2])) + head


@st.composite
def entry_line(draw: st.DrawFn) -> str:
    pre = draw(st.sampled_from(["", "", "fn ", "async fn ", "fn\t", "async ", "@inline "]))
    return draw(st.sampled_from(INDENT)) + pre + draw(st.sampled_from(NAMES)) + draw(sigs)


lines = st.one_of(decl_line(), entry_line(), st.sampled_from(["", "# c", "import x", "let A = 1"]))
sources = st.lists(lines, max_size=30).map("\n".join)


def _pairs(syms: list[api.Symbol]) -> list[tuple[str, str, str]]:
    return [(s.kind, s.name, s.signature) for s in syms]


@settings(max_examples=1500, deadline=None)
@given(sources)
def test_c_decls_equal_python_decls(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    want = api.python_extract_module(data, "m")
    assert chengtok.api_decls(data) == _pairs(want)
    assert api.extract_module(text, "m") == want == oracle_api_v1.extract_module(text, "m")


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(["fn F", "iterator I", "type T", "const C", "type\n  T", "const\n  C",
                        "fn\n  F", "macro `M`"]), sigs, st.lists(sigs, max_size=3))
def test_c_normalise_equals_python(head: str, sig: str, body: list[str]) -> None:
    # A signature straight after the name, then indented body lines (fields, continued values).
    text = head + sig + "".join("\n    " + b for b in body)
    data = text.encode("utf-8")
    assert chengtok.api_decls(data) == _pairs(api.python_extract_module(data, "m"))


@pytest.mark.parametrize(("src", "want"), [
    ("fn Eq(a: int): bool = a == 1", [("fn", "Eq", "(a: int): bool")]),
    ("type T a : =b", [("type", "T", "a:= b")]),  # the regexes' backtracking, kept
    ("const C x::y", [("const", "C", "x: :y")]),
    ("type\n  P = object\n    x , y:float\n  q = 1", [("type", "P", "= object {x, y: float}")]),
    ("async fn Run[T](x: T) where T: Copy =\n  1", [("fn", "Run", "[T](x: T) where T: Copy")]),
    ("@x(1) macro `Op`(a) = a\nfn lower() = 1", [("macro", "Op", "(a)")]),
    ("", []),
])
def test_c_decls_vectors(src: str, want: list[tuple[str, str, str]]) -> None:
    data = src.encode("utf-8")
    assert chengtok.api_decls(data) == want == _pairs(api.python_extract_module(data, "m"))


def test_c_decls_one_type_with_many_expanding_fields() -> None:
    # One type whose 2000 field lines each expand ("a=b" -> "a = b", "; " between): the
    # signature is longer than the source. (C's refusal of too little room: test_chengapi.c.)
    text = "type T =\n" + "\n".join(" a=b" for _ in range(2000))
    data = text.encode()
    assert chengtok.api_decls(data) == _pairs(api.python_extract_module(data, "m"))
