"""The C Cheng scanner (native/src/chengtok.c) against the pure-Python rules it replaced.

Oracles: ``originality.reference_fingerprint`` (the regex tokenizer, n-grams, SimHash), the
regex lexer of ``api.reference_lines``, and tests/oracle_api_v1.py (the declaration pass as it was
before the C scanner). Texts are drawn from fragments that hit every rule's edges: prefixes of
strings, escapes at the end of input, CRLF, tabs and form feeds in indentation, numbers with
suffixes and exponents, non-ASCII letters, digits and blanks (whose classes Python's Unicode
tables decide: the C is given them per text).
"""

from __future__ import annotations

import sys

import oracle_api_v1
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build._native import chengtok
from cheng_build.pkg import api, originality

FRAGMENTS = [
    "fn", "Fn", "type", "const", "async", "iterator", "template", "macro", "import", "from",
    "import std/strutils", "from std/os import x", "import  std", "std/", "let", "var", "x", "Foo",
    "_a", "é", "中文", "Ⅻ", "٣", "²", "\u3000", "\xa0", "\x85", "\x1c", "\u2028", "\ud800",
    " ", "  ", "    ", "\t", "\f", "\v", "\r", "\n", "\r\n", "\n    ", "\n\t", "\n  \f ",
    '"', '"""', 'r"', 'f"""', "R", "'", "'a'", "'\\n'", "'\\'", "\\", "\\\n", "`", "`+`", "`x",
    "#", "# c", "//", "/", "0", "0x", "0x1F", "0b", "0b101", "0o7", "12_3", "1.5", "1.", "1e",
    "1e+5", "1E-", "'i32", "u8", "i", ".", ":", "=", "==", "=>", ":=", "<=", "!=", ";", ",",
    "(", ")", "[", "]", "{", "}", "@", "@inline", "@x(1)", "*", "-", "+", "$", "%", "|", "&",
    "?", "^", "~", "<", ">", "!", "a: int32", "): bool =", " where T", "= 1", "\n\n",
    # operator runs longer than the 8 bytes a token id holds (hashed one by one, not counted)
    "<<=>>=!==", "=========", "..<..<..<", "->->->->->",
]

texts = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)
# Declaration-shaped sources, so the API pass sees real heads, bodies and blocks.
LINES = [
    "fn Add(a: int32, b: int32): int32 = a + b", "fn add(x: int): int =", "    return x",
    "async fn Run[T](x: T) where T: Copy =", "type", "    Point = object", "        x, y: float",
    "    Color = enum", "        Red, Green", "type Pair[A, B] = (A, B)", "const",
    "    Limit: int = 10", "    Name = \"n\"  # why", "const Max* = 3", "iterator Items(s: Seq): T =",
    "template `$`(x: T): str = x", "macro M(body) = body", "@inline fn Fast() = nil",
    "fn Call(f: proc (a: int,", "         b: int)): int =", "    x = \"\"\"doc", "lines\"\"\"",
    "  fn Indented() = 1", "fn Dup(a: int) = 1", "fn Dup(a: str) = 2", "type T = object  # c",
    "fn Eq(a: int): bool = a == 1 and a <= 2", "\tfn Tab()=1", "fn Ws( a : int ; b : int ) : int",
]
sources = st.lists(st.one_of(st.sampled_from(LINES), texts), max_size=25).map("\n".join)


def _c_lines(text: str) -> tuple[list[int], list[str]]:
    got = chengtok.api_lines(text.encode("utf-8", "surrogatepass"))
    return got.indents, [got.text(i) for i in range(len(got.indents))]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(texts, sources), max_size=4))
def test_fingerprint_equals_reference(files: list[str]) -> None:
    pkg = {f"m{i}.cheng": t for i, t in enumerate(files)}
    assert originality.fingerprint(pkg) == originality.reference_fingerprint(pkg)


@settings(max_examples=400, deadline=None)
@given(st.one_of(texts, sources))
def test_api_lines_equal_reference(text: str) -> None:
    assert _c_lines(text) == api.reference_lines(text)


@settings(max_examples=400, deadline=None)
@given(sources)
def test_api_symbols_equal_pre_c_extractor(text: str) -> None:
    assert api.extract_module(text, "m") == oracle_api_v1.extract_module(text, "m")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([" ", "  ", "\t", ",", ";", ":", "=", "==", "=>", ":=", "<=", "(",
                                 ")", "[", "]", "{", "}", "a", "int", "\u3000", "\n", '"', "'",
                                 "`", "\\"]), max_size=30).map("".join))
def test_normalise_and_body_eq_unchanged(sig: str) -> None:
    assert api._normalise(sig) == oracle_api_v1._normalise(sig)
    assert api._body_eq(sig) == oracle_api_v1._body_eq(sig)


def test_every_unicode_blank_and_digit_is_classified_like_python() -> None:
    """Each character Python calls whitespace, and a sample of digits and letters from many
    scripts, at line starts, line ends and inside tokens."""
    blanks = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    others = ["٣", "७", "௫", "Ⅻ", "²", "ǅ", "ß", "ا", "中", "🙂", "\u200b", "\ufeff", "\U0001d7ce"]
    for ch in blanks + others:
        for text in (f"{ch}fn F{ch}x() = 1{ch}\n{ch}  type T = 1", f"x{ch}1 = {ch}9{ch}e{ch}",
                     f"\n{ch}\n  {ch}y\n", f"1{ch}2 '{ch}' `{ch}` \"{ch}\"{ch}"):
            assert _c_lines(text) == api.reference_lines(text), repr(text)
            pkg = {"a.cheng": text}
            assert originality.fingerprint(pkg) == originality.reference_fingerprint(pkg), repr(text)


def test_stream_spans_files_and_skips_what_reference_skips() -> None:
    files: dict[str, str | bytes] = {"b.cheng": "fn b() = 1\n", "a.cheng": b"fn a() = 2\n",
                                     "bin.cheng": b"\xff\xfe not utf-8",
                                     "big.cheng": b"x" * (originality.MAX_SOURCE_BYTES + 1)}
    fp = originality.fingerprint(files)
    assert fp is not None and fp == originality.reference_fingerprint(files)
    # n-grams run across the FILE boundary: two files are not the sum of their parts.
    assert fp.features == 3 * (1 + 7 + 1 + 7) - 3  # FILE fn ID ( ) = NUM NL, twice
    assert originality.fingerprint({"empty.cheng": ""}) is None
    assert originality.reference_fingerprint({"empty.cheng": ""}) is None


def test_stream_counts_tokens() -> None:
    s = chengtok.FingerprintStream()
    s.feed(b"fn f(x) = x  # comment\n")
    assert s.tokens == 1 + len(originality.tokenize("fn f(x) = x  # comment\n"))
    assert s.result() == (originality.simhash(originality.features(
        ["FILE", *originality.tokenize("fn f(x) = x  # comment\n")])), 3 * s.tokens - 3)


# The C stream counts n-grams of token ids and hashes each distinct one once (chengtok.c); the
# paths around that: operator runs with no id (longer than 8 bytes, or past the id table's 1,024
# entries), and an n-gram table that fills up and is folded into the sums. The reference sees
# one feature at a time, so any slip in the counting shows as a different fingerprint.
_OPS = "=+-*/<>@$~&%|!?^.:\\"


def _distinct_ops(n: int, length: int) -> list[str]:
    out = []
    for i in range(n):
        k, op = i, ""
        for _ in range(length):
            k, r = divmod(k, len(_OPS))
            op += _OPS[r]
        if "//" not in op:  # a comment, not an operator
            out.append(op)
    return out


def test_operator_runs_past_the_id_table_match_reference() -> None:
    ops = _distinct_ops(3000, 3)  # ~2,800 distinct runs: the id table holds 1,024
    text = "\n".join(f"x {op} y{op}(z)" + (" " + "<" * 12 if i % 7 == 0 else "")
                      for i, op in enumerate(ops))
    pkg = {"a.cheng": text, "b.cheng": text[::-1]}
    assert originality.fingerprint(pkg) == originality.reference_fingerprint(pkg)


def test_full_ngram_table_is_folded_and_matches_reference() -> None:
    """More distinct trigrams than the table's largest size (2**17 slots at 3/4 load)."""
    import random

    rnd = random.Random(19)
    ops = _distinct_ops(900, 2)
    words = [rnd.choice(ops) for _ in range(140_000)]
    text = " ".join(words)
    pkg = {"a.cheng": text}
    assert originality.fingerprint(pkg) == originality.reference_fingerprint(pkg)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*_distinct_ops(60, 2), "=========", "fn", "x", "\n", "\n  ", "("]),
                max_size=200).map(" ".join))
def test_id_and_no_id_tokens_interleaved_match_reference(text: str) -> None:
    pkg = {"m.cheng": text, "n.cheng": text}
    assert originality.fingerprint(pkg) == originality.reference_fingerprint(pkg)
