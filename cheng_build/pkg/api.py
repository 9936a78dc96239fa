"""The public API of a Cheng package: a symbol table extracted from its sources.

SemVer is enforced on this table (:func:`cheng_build.pkg.semver.check_release`), so what counts
as public follows the language's own rule. The Cheng formal specification (section 1.4, "模块导出
与可见性") says: a symbol is exported when its identifier starts with an ASCII capital letter
(Go style); a lower-case or ``_`` start keeps it private to the module; there is no ``*`` export
marker. Operators written in backticks (``fn `$`(x: T): str``) start with a non-letter and are
therefore private by the same rule.

What we extract: top-level ``fn`` (also ``async fn``), ``iterator``, ``template``, ``macro``,
``type`` and ``const`` declarations, in their one-line and block forms (``type`` / ``fn`` /
``const`` alone on a line followed by indented entries). For each exported one we record its
kind and a normalised signature:

- routines: everything between the name and the ``=`` that starts the body (type parameters,
  parameters with defaults, return type, ``where`` clause);
- types: generic parameters and the whole right-hand side, including indented field, variant
  and enum lines (changing a field of a public type changes the type);
- consts: the declared type and the value (a changed constant is a changed API).

Modules are the ``.cheng`` files the compiler can import: under ``src/`` when the package has
one, else under ``cheng/``, else the package root (``tests/``, ``examples/`` and build output
are never modules). A symbol's key is ``<module>.<Name>``, with the module written as an import
path (``net/tcp.Dial``); overloaded routines get their parameter list appended to the key.

The logical lines and the declarations pass run in C (``native/src/chengtok.c``, ``chengapi.c``);
``_logical_lines`` and ``_decls`` are the same rules in Python, kept as the tests' reference
(``reference_lines``, ``python_extract_module``).

On-disk form (``api_to_json``): compact JSON, keys sorted,
``{"<key>": {"kind": "fn", "signature": "(a: int32): int32"}, ...}``; ``api_digest`` is
``sha256:<hex>`` of exactly those bytes and is what the registry's ``api`` field records.

(Over 400 lines on purpose: the declaration rules and the Python reference scanner that is the C
scanner's test oracle stay side by side, so the two cannot drift.)
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from cheng_build.core.errors import InputError
from cheng_build.core.lazyre import lazy
from cheng_build.core.record import dataclass

KINDS = ("fn", "iterator", "template", "macro", "type", "const")

# Source files larger than this are not Cheng modules anyone hand-wrote; refuse rather than
# spend seconds on them inside `publish`.
MAX_SOURCE_BYTES = 8 * 1024 * 1024

# Lexical pieces that matter for finding declarations: strings (triple-quoted first), character
# literals, comments, brackets, newlines and everything else in runs. The patterns of this module
# serve the Python reference scanner (the tests' oracle; the C scanner does the work), so they
# compile on first use (``core.lazyre``): a publish does not pay ~1 ms to compile them.
_TOKEN = lazy(globals(), "_TOKEN",
    r'(?P<str3>"""[\s\S]*?(?:"""|\Z))'
    r'|(?P<str>"(?:\\.|[^"\\\n])*"?)'
    r"|(?P<chr>'(?:\\.|[^'\\\n])*'?)"
    r"|(?P<comment>\#[^\n]*)"
    r"|(?P<open>[(\[{])"
    r"|(?P<close>[)\]}])"
    r"|(?P<nl>\n)"
    r"|(?P<tick>`[^`\n]*`?)"
    r"|(?P<other>[^\"'#()\[\]{}\n`]+)"
)
_IDENT = lazy(globals(), "_IDENT", r"[A-Za-z_][A-Za-z0-9_]*")
_DECL = lazy(globals(), "_DECL",
             r"^(?:(?P<async>async)\s+)?(?P<kw>fn|iterator|template|macro|type|const)\b\s*")
_DECL_FIRST = frozenset("afitmc")  # first letters of _DECL's alternatives (async fn iterator ...)
_ANNOTATION = lazy(globals(), "_ANNOTATION", r"^@[A-Za-z_][A-Za-z0-9_]*(?:\([^)]*\))?\s*")


class ApiError(InputError):
    """A source file could not be read as Cheng source (not UTF-8, too large)."""


@dataclass(frozen=True, slots=True)
class Symbol:
    """One exported declaration: ``kind`` (fn, type, ...), ``name``, normalised ``signature``."""

    kind: str
    name: str
    signature: str
    module: str


@dataclass(frozen=True, slots=True)
class _Line:
    indent: int
    text: str
    lineno: int


def _logical_lines(source: str) -> list[_Line]:
    """Split source into logical lines: comments dropped, bracketed spans joined onto one line."""
    out: list[_Line] = []
    parts: list[str] = []
    depth = 0
    start_line = 1
    lineno = 1
    at_line_start = True
    indent = 0
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup
        tok = m.group()
        if kind == "nl":
            lineno += 1
            if depth > 0:
                parts.append(" ")
                continue
            text = "".join(parts).strip()
            if text:
                out.append(_Line(indent, text, start_line))
            parts = []
            at_line_start = True
            indent = 0
            start_line = lineno
            continue
        if kind == "comment":
            continue
        if at_line_start:
            if kind == "other" and not tok.strip():
                indent = len(tok.replace("\t", "    "))
                continue
            if kind == "other":
                stripped = tok.lstrip(" \t")
                indent = len(tok[: len(tok) - len(stripped)].replace("\t", "    "))
                tok = stripped
            at_line_start = False
            start_line = lineno
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "str3":
            lineno += tok.count("\n")
            tok = tok.replace("\n", "\\n")
        parts.append(tok)
    text = "".join(parts).strip()
    if text:
        out.append(_Line(indent, text, start_line))
    return out


_SEMI = lazy(globals(), "_SEMI", r"\s*;\s*")
_COMMA = lazy(globals(), "_COMMA", r"\s*,\s*")
_COLON = lazy(globals(), "_COLON", r"\s*(?<![:=<>!])\s*:\s*(?!=)")
_OPEN_WS = lazy(globals(), "_OPEN_WS", r"([(\[{])\s+")
_WS_CLOSE = lazy(globals(), "_WS_CLOSE", r"\s+([)\]}])")
_EQ = lazy(globals(), "_EQ", r"\s*=\s*(?![=>])")
_OP_EQ = lazy(globals(), "_OP_EQ", r"([<>!=:]) = ")
# The characters _body_eq acts on; everything between them is skipped in one search.
_BODY_EQ_STOP = lazy(globals(), "_BODY_EQ_STOP", r"[\"'`()\[\]{}=]")


@lru_cache(maxsize=1 << 14)
def _normalise(sig: str) -> str:
    """Whitespace-insensitive form of a signature: one space after , ; : and none inside ()[].

    Each rewrite runs only when its character occurs (the result is the same; most signatures
    lack some of them, and publish normalises thousands). Cached: a pure function of its text,
    and 40% of a real package's calls repeat an earlier text (parameter lists, field lines).
    """
    s = " ".join(sig.split())
    if ";" in s:
        s = _SEMI.sub(", ", s)
    if "," in s:
        s = _COMMA.sub(", ", s)
    if ":" in s:
        s = _COLON.sub(": ", s)
    # The only blanks left are single spaces (split() above; the rewrites insert " "), so a
    # bracket next to a blank is one of these substrings; most signatures have none.
    if "( " in s or "[ " in s or "{ " in s:
        s = _OPEN_WS.sub(r"\1", s)
    if " )" in s or " ]" in s or " }" in s:
        s = _WS_CLOSE.sub(r"\1", s)
    if "=" in s:
        s = _EQ.sub(" = ", s)
        s = _OP_EQ.sub(r"\1= ", s)
    return s.strip()


def _body_eq(text: str) -> int:
    """Index of the ``=`` that ends a declaration head at bracket depth 0, or -1."""
    depth = 0
    n = len(text)
    search = _BODY_EQ_STOP.search
    m = search(text)
    while m is not None:
        i = m.start()
        c = text[i]
        if c in "\"'":
            t = _TOKEN.match(text, i)
            i = t.end() if t and t.end() > i else i + 1
        elif c == "`":
            j = text.find("`", i + 1)
            i = n if j < 0 else j + 1
        else:
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
            elif depth == 0:  # "="
                prev = text[i - 1] if i else ""
                nxt = text[i + 1] if i + 1 < n else ""
                if not (prev and prev in "=<>!:") and not (nxt and nxt in "=>"):
                    return i
            i += 1
        m = search(text, i)
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


def is_exported(name: str) -> bool:
    """The Cheng export rule: the identifier's first character is an ASCII capital letter."""
    return bool(name) and "A" <= name[0] <= "Z"


def _entry(kind: str, text: str, body: list[str]) -> tuple[str, str] | None:
    split = _split_name(text)
    if split is None:
        return None
    name, rest = split
    if not is_exported(name):
        return None  # callers keep exported symbols only: skip normalising the quarter that is not
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


def _decls(indents: list[int], text_of: Callable[[int], str]) -> Iterable[tuple[str, str, str, int]]:
    """Yield (kind, name, signature, line index) for every exported top-level declaration.

    ``indents[i]`` is logical line i's indentation and ``text_of(i)`` its text, read only for
    top-level lines and the bodies of declarations (most lines are never turned into str).
    """
    n = len(indents)
    i = 0
    while i < n:
        if indents[i] != 0:
            try:
                i = indents.index(0, i)  # the next top-level line (a scan in C)
            except ValueError:
                return
        lineno = i
        text = text_of(i)
        i += 1
        while text.startswith("@"):  # the only start _ANNOTATION matches: skip the call else
            m = _ANNOTATION.match(text)
            if m is None or not m.group():
                break
            text = text[m.end():]
        # _DECL's keywords all start with one of these letters; most top-level lines (imports,
        # lets, comments) do not, and need no regular expression call.
        m = _DECL.match(text) if text[:1] in _DECL_FIRST else None
        if m is None:
            continue
        kind = m.group("kw")
        rest = text[m.end():]
        # The indented lines that follow belong to this declaration.
        body_start = i
        try:
            i = indents.index(0, i)
        except ValueError:
            i = n
        if rest:
            body = [text_of(b) for b in range(body_start, i)] if kind != "fn" else []
            got = _entry(kind, rest, body)
            if got:
                yield kind, got[0], got[1], lineno
            continue
        # Block form: entries at the block's first indentation, deeper lines continue them.
        if body_start == i:
            continue
        entry_indent = indents[body_start]
        j = body_start
        while j < i:
            head = j
            j += 1
            cont: list[str] = []
            while j < i and indents[j] > entry_indent:
                cont.append(text_of(j))
                j += 1
            if indents[head] != entry_indent:
                continue
            etext = text_of(head)
            while etext.startswith("@"):
                am = _ANNOTATION.match(etext)
                if am is None or not am.group():
                    break
                etext = etext[am.end():]
            if kind == "fn":
                etext = re.sub(r"^(?:async\s+)?(?:fn\s+)?", "", etext)
            got = _entry(kind, etext, cont if kind in ("type", "const") else [])
            if got:
                yield kind, got[0], got[1], head


def module_name(relpath: str) -> str:
    """The import path of a source file: ``src/net/tcp.cheng`` -> ``net/tcp``."""
    p = relpath.replace(os.sep, "/").lstrip("./")
    for root in ("src/", "cheng/"):
        if p.startswith(root):
            p = p[len(root):]
            break
    return p[: -len(".cheng")] if p.endswith(".cheng") else p


def extract_module(source: str | bytes, module: str) -> list[Symbol]:
    """Every exported top-level declaration of one module, in source order.

    Lines and declarations both come from the C core (``_native.chengtok.api_decls``);
    :func:`python_extract_module` is the same rule in Python (the tests' oracle and the fallback
    when C cannot allocate).
    """
    return [Symbol(kind, name, sig, module) for kind, name, sig in module_decls(source)]


def module_decls(source: str | bytes) -> list[tuple[str, str, str]]:
    """(kind, name, signature) of every exported top-level declaration (see
    :func:`extract_module`)."""
    from cheng_build._native.chengtok import api_decls

    data = source if isinstance(source, bytes) else source.encode("utf-8", "surrogatepass")
    try:
        return api_decls(data)
    except MemoryError:
        return [(s.kind, s.name, s.signature) for s in python_extract_module(data, "")]


def python_extract_module(source: str | bytes, module: str) -> list[Symbol]:
    """:func:`extract_module` with the declarations pass in Python over the C scanner's lines."""
    from cheng_build._native.chengtok import api_lines

    data = source if isinstance(source, bytes) else source.encode("utf-8", "surrogatepass")
    lines = api_lines(data)
    return [Symbol(kind, name, sig, module)
            for kind, name, sig, _ in _decls(lines.indents, lines.text)]  # exported only


def reference_lines(source: str) -> tuple[list[int], list[str]]:
    """The logical lines by the pure-Python reference rule: (indents, texts). Tests only."""
    lines = _logical_lines(source)
    return [ln.indent for ln in lines], [ln.text for ln in lines]


def reference_extract_module(source: str, module: str) -> list[Symbol]:
    """:func:`extract_module` on the pure-Python reference lines (the tests' oracle)."""
    indents, texts = reference_lines(source)
    return [Symbol(kind, name, sig, module)
            for kind, name, sig, _ in _decls(indents, texts.__getitem__)]  # exported only


def _module_files(paths: Iterable[str]) -> list[str]:
    """The files the compiler could import, per the package-root rules in the module doc."""
    cheng = sorted(p.replace(os.sep, "/") for p in paths if p.endswith(".cheng"))
    for root in ("src/", "cheng/"):
        picked = [p for p in cheng if p.startswith(root)]
        if picked:
            return picked
    skip = ("tests/", "test/", "examples/", "build/", "chengcache/", ".")
    return [p for p in cheng if not p.startswith(skip)]


def checked_modules(files: Mapping[str, str | bytes]) -> list[tuple[str, str | bytes]]:
    """The modules of a package given its files (relative path -> content), in table order,
    each checked to be readable source.

    Raises:
        ApiError: a module is not valid UTF-8 or is too large (names the file).
    """
    out: list[tuple[str, str | bytes]] = []
    for rel in _module_files(files):
        raw = files[rel]
        if len(raw) > MAX_SOURCE_BYTES:
            raise ApiError(f"source file too large: {rel}",
                           why=f"{len(raw)} bytes, the limit is {MAX_SOURCE_BYTES}")
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ApiError(f"source file is not valid UTF-8: {rel}",
                               why=f"byte {exc.start}: {exc.reason}") from None
        out.append((rel, raw))
    return out


def table_of(modules: Iterable[tuple[str, Sequence[tuple[str, str, str]]]]) -> dict[str, Symbol]:
    """The symbol table of modules given as (relative path, its (kind, name, signature)
    declarations in source order), in table order (see :func:`checked_modules`)."""
    table: dict[str, Symbol] = {}
    for rel, decls in modules:
        module = module_name(rel)
        counts = Counter(name for _, name, _ in decls)
        for kind, name, sig in decls:  # tuples, not the Symbol's attributes: 5,000 a package
            s = _symbol(kind, name, sig, module)
            key = f"{module}.{name}"
            if counts[name] > 1 and kind in _OVERLOADABLE:
                # Overloads: the parameter list tells them apart.
                key = f"{key}{sig[: sig.find(')') + 1] if ')' in sig else sig}"
            if key in table and table[key] != s:
                key = f"{key}#{kind}"
            table[key] = s
    return table


_OVERLOADABLE = frozenset(("fn", "iterator", "template", "macro"))
_new, _set = object.__new__, object.__setattr__


def _symbol(kind: str, name: str, signature: str, module: str) -> Symbol:
    """``Symbol(kind, name, signature, module)``, its four slots set directly, as the record's
    ``__init__`` would set them: that generic ``__init__`` (core.record: arguments by position
    or name, defaults) costs twice as much, and a real package's table makes 5,000."""
    s = _new(Symbol)
    _set(s, "kind", kind)
    _set(s, "name", name)
    _set(s, "signature", signature)
    _set(s, "module", module)
    return s


def extract_api(files: Mapping[str, str | bytes]) -> dict[str, Symbol]:
    """The public symbol table of a package given its files (relative path -> content).

    Raises:
        ApiError: a module is not valid UTF-8 or is too large (names the file).
    """
    return table_of((rel, module_decls(raw)) for rel, raw in checked_modules(files))


def module_sources(root: str | os.PathLike[str],
                   read: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """The module files of a package tree on disk (relative path -> bytes), the input of
    :func:`extract_api`; ``read`` as for :func:`extract_api_from_dir`."""
    base = Path(root)
    files: dict[str, bytes] = {}
    rels = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and d not in ("build", "chengcache"))
        for fn in filenames:
            if fn.endswith(".cheng"):
                rels.append(os.path.relpath(os.path.join(dirpath, fn), base).replace(os.sep, "/"))
    for rel in _module_files(rels):
        known = read.get(rel) if read is not None else None
        files[rel] = known if known is not None else (base / rel).read_bytes()
    return files


def extract_api_from_dir(root: str | os.PathLike[str],
                         read: Mapping[str, bytes] | None = None) -> dict[str, Symbol]:
    """The public symbol table of a package tree on disk (see :func:`extract_api`).

    ``read``: files of the tree already read (relative path -> bytes), used instead of reading
    them again (publish reads the sources once for the fingerprint and the table).
    """
    return extract_api(module_sources(root, read))


def api_to_json(table: Mapping[str, Symbol]) -> str:
    """Canonical JSON of a symbol table (sorted keys, compact): the bytes ``api_digest`` hashes.

    The text of ``json.dumps({key: {"kind": ..., "signature": ...}}, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)``, written entry by entry with the same string
    encoder that call uses (``json.encoder.encode_basestring``): without building the nested
    dicts and sorting each one's two keys, half the time on a real package's 5,000 symbols.
    Keys are unique, so sorting the items sorts by key alone, as ``sort_keys`` does.
    """
    from json.encoder import encode_basestring as enc

    body = ",".join(f'{enc(k)}:{{"kind":{enc(s.kind)},"signature":{enc(s.signature)}}}'
                    for k, s in sorted(table.items()))
    return "{" + body + "}"


def api_from_json(text: str | bytes) -> dict[str, Symbol]:
    """Read a table written by :func:`api_to_json`.

    Raises:
        ApiError: the text is not such a table.
    """
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("API table is not valid JSON", why=str(exc)) from None
    if not isinstance(doc, dict):
        raise ApiError("API table must be a JSON object")
    table: dict[str, Symbol] = {}
    for key, val in doc.items():
        if not (isinstance(val, dict) and isinstance(val.get("kind"), str)
                and isinstance(val.get("signature"), str)):
            raise ApiError(f"API table entry {key!r} needs string 'kind' and 'signature'")
        module, _, name = key.split("(")[0].split("#")[0].rpartition(".")
        table[key] = Symbol(val["kind"], name, val["signature"], module)
    return table


def api_digest(table: Mapping[str, Symbol]) -> str:
    """``sha256:<hex>`` of :func:`api_to_json` — the registry's ``api`` field."""
    return api_digest_of_json(api_to_json(table).encode("utf-8"))


def api_digest_of_json(doc: bytes) -> str:
    """:func:`api_digest` of a table whose :func:`api_to_json` bytes are ``doc`` (publish stores
    those bytes too: one encoding serves both)."""
    from cheng_build.cas.cid import digest_of  # the store's SHA-256 (C when it has SHA-NI)

    return "sha256:" + digest_of(doc, "sha2-256").hex()


__all__ = ["KINDS", "ApiError", "Symbol", "api_digest", "api_digest_of_json", "api_from_json",
           "api_to_json", "checked_modules", "extract_api", "extract_api_from_dir", "extract_module",
           "is_exported", "module_decls", "module_name", "module_sources", "table_of"]
