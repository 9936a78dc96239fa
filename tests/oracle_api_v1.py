"""The API extraction of cheng-build before the C scanner (issue 19), kept verbatim as an oracle.

``cheng_build.pkg.api`` now reads logical lines from C (``_native.chengtok.api_lines``) and runs a
rewritten declaration pass; these are the functions it replaced, unchanged, so the property tests
in test_cheng_scan.py can show the symbol tables stay identical. ``_logical_lines`` (the lexer)
stays in ``cheng_build.pkg.api`` as ``reference_lines``' implementation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cheng_build.pkg.api import (
    _ANNOTATION,
    _DECL,
    _IDENT,
    _TOKEN,
    Symbol,
    _Line,
    _logical_lines,
    is_exported,
)


def _normalise(sig: str) -> str:
    """Whitespace-insensitive form of a signature: one space after , ; : and none inside ()[]."""
    s = " ".join(sig.split())
    s = re.sub(r"\s*;\s*", ", ", s)
    s = re.sub(r"\s*,\s*", ", ", s)
    s = re.sub(r"\s*(?<![:=<>!])\s*:\s*(?!=)", ": ", s)
    s = re.sub(r"([(\[{])\s+", r"\1", s)
    s = re.sub(r"\s+([)\]}])", r"\1", s)
    s = re.sub(r"\s*=\s*(?![=>])", " = ", s)
    s = re.sub(r"([<>!=:]) = ", r"\1= ", s)
    return s.strip()


def _body_eq(text: str) -> int:
    """Index of the ``=`` that ends a declaration head at bracket depth 0, or -1."""
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            m = _TOKEN.match(text, i)
            i = m.end() if m and m.end() > i else i + 1
            continue
        if c == "`":
            j = text.find("`", i + 1)
            i = n if j < 0 else j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "=" and depth == 0:
            prev = text[i - 1] if i else ""
            nxt = text[i + 1] if i + 1 < n else ""
            if not (prev and prev in "=<>!:") and not (nxt and nxt in "=>"):
                return i
        i += 1
    return -1


def _split_name(text: str) -> tuple[str, str] | None:
    """(name, rest) of a declaration entry, the name an identifier or a backtick operator."""
    if text.startswith("`"):
        j = text.find("`", 1)
        if j < 0:
            return None
        return text[1:j], text[j + 1:]
    m = _IDENT.match(text)
    if m is None:
        return None
    return m.group(), text[m.end():]


def _entry(kind: str, text: str, body: list[str]) -> tuple[str, str] | None:
    split = _split_name(text)
    if split is None:
        return None
    name, rest = split
    if kind in ("fn", "iterator", "template", "macro"):
        eq = _body_eq(rest)
        head = rest if eq < 0 else rest[:eq]
        return name, _normalise(head)
    if kind == "type":
        head = _normalise(rest)
        if body:
            # Field, variant and enum lines, each normalised, in braces after the head.
            head = f"{head} {{{'; '.join(_normalise(b) for b in body)}}}"
        return name, head
    # const: the declared type and the value, continuation lines included.
    return name, _normalise(" ".join([rest, *body]))


def _decls(lines: list[_Line]) -> Iterable[tuple[str, str, str, int]]:
    """Yield (kind, name, signature, lineno) for every top-level declaration."""
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        i += 1
        if line.indent != 0:
            continue
        text = line.text
        while True:
            m = _ANNOTATION.match(text)
            if m is None or not m.group():
                break
            text = text[m.end():]
        m = _DECL.match(text)
        if m is None:
            continue
        kind = m.group("kw")
        rest = text[m.end():]
        # The indented lines that follow belong to this declaration.
        body_start = i
        while i < n and lines[i].indent > 0:
            i += 1
        body = lines[body_start:i]
        if rest:
            got = _entry(kind, rest, [b.text for b in body] if kind != "fn" else [])
            if got:
                yield kind, got[0], got[1], line.lineno
            continue
        # Block form: entries at the block's first indentation, deeper lines continue them.
        if not body:
            continue
        entry_indent = body[0].indent
        j = 0
        while j < len(body):
            head = body[j]
            j += 1
            cont: list[str] = []
            while j < len(body) and body[j].indent > entry_indent:
                cont.append(body[j].text)
                j += 1
            if head.indent != entry_indent:
                continue
            etext = head.text
            while True:
                am = _ANNOTATION.match(etext)
                if am is None or not am.group():
                    break
                etext = etext[am.end():]
            if kind == "fn":
                etext = re.sub(r"^(?:async\s+)?(?:fn\s+)?", "", etext)
            got = _entry(kind, etext, cont if kind in ("type", "const") else [])
            if got:
                yield kind, got[0], got[1], head.lineno


def extract_module(source: str, module: str) -> list[Symbol]:
    """The symbols of one module as the pre-C code found them."""
    return [Symbol(kind, name, sig, module)
            for kind, name, sig, _ in _decls(_logical_lines(source)) if is_exported(name)]
