"""SimHash originality of a package (the seed's section A4): Cheng tokens -> n-grams -> SimHash64.

Tokenizer. Cheng source is read as a stream of tokens:

- keywords are kept as themselves (the list below, from the language);
- identifiers (including backticked operator names) become ``ID``, numbers ``NUM``, strings
  (``"..."``, ``r"..."``, ``f"..."``, ``\"\"\"...\"\"\"``) ``STR``, character literals ``CHR``: so
  renaming things or changing constants moves the fingerprint little;
- ``#`` and ``//`` comments and blank lines vanish: re-commenting changes nothing;
- indentation-based blocks become ``INDENT`` / ``DEDENT`` tokens and line ends ``NL``, so the
  nesting structure counts;
- operators and brackets are kept as written;
- ``import std/...`` lines are dropped: using the standard library is not a resemblance.

Features are every unigram, bigram and trigram of that stream (file by file in path order, each
file opened by a ``FILE`` token); the native 64-bit SimHash kernel folds them into the fingerprint.
:func:`fingerprint` runs these rules in C (``native/src/chengtok.c``, docs/chunker.md section 6):
no token becomes a Python object. :func:`tokenize`, :func:`features` and
:func:`package_features` are the same rules in Python, kept as the reference the tests compare
the C against (``reference_fingerprint``); nothing else calls them.

Two packages whose fingerprints differ in at most :data:`COPY_DISTANCE` bits (>= 90% similar)
are a high-similarity pair; the later one is a copy of the earlier (see ``pkg.publish``).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType

from cheng_build.core.errors import ChengError
from cheng_build.core.lazyre import lazy
from cheng_build.core.record import dataclass
from cheng_build.pkg.api import MAX_SOURCE_BYTES  # one limit for every reader of sources

COPY_DISTANCE = 6  # bits out of 64: >= 90.6% of the fingerprint agrees

KEYWORDS = frozenset((
    "fn", "if", "as", "in", "of", "is", "let", "var", "mut", "for", "nil", "ref", "set", "str",
    "type", "elif", "else", "when", "case", "true", "enum", "const", "trait", "macro", "async",
    "while", "break", "yield", "defer", "await", "block", "where", "false", "tuple", "notin",
    "module", "return", "import", "concept", "iterator", "template", "continue",
))

# The Python reference tokenizer's one pattern (the tests' oracle: :func:`fingerprint` runs in C),
# compiled on first use (``core.lazyre``) so importing this module for a publish costs ~1 ms less.
_TOKEN = lazy(globals(), "_TOKEN",
    r"(?P<nl>(?:\r?\n[ \t\f]*)+)"
    r"|(?P<std>(?:import|from)[ \t]+std/[^\n]*)"
    r"|(?P<comment>\#[^\n]*|//[^\n]*)"
    r'|(?P<str3>[rRfF]?"""[\s\S]*?(?:"""|\Z))'
    r'|(?P<str>[rRfF]?"(?:\\.|[^"\\\n])*"?)'
    r"|(?P<chr>'(?:\\.|[^'\\\n])')"
    r"|(?P<num>(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+"
    r"|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)(?:'?[iIuUfF]\d*)?)"
    r"|(?P<tick>`[^`\n]*`)"
    r"|(?P<ident>[^\W\d]\w*)"
    r"|(?P<op>[=+\-*/<>@$~&%|!?^.:\\]+)"
    r"|(?P<punct>[()\[\]{},;])"
    r"|(?P<ws>[ \t\r\f\v]+)"
    r"|(?P<other>.)",
    re.DOTALL,
)
_SKIP = frozenset(("comment", "ws", "other", "std"))
_ABSTRACT = {"str3": "STR", "str": "STR", "chr": "CHR", "num": "NUM", "tick": "ID"}


class OriginalityError(ChengError):
    """The sources cannot be fingerprinted (the native SimHash kernel is missing)."""


def tokenize(source: str) -> list[str]:
    """The abstracted token stream of one Cheng source file (never raises on any text)."""
    out: list[str] = []
    indents = [0]
    line_start = True
    pending = 0
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup
        if kind == "nl":
            text = m.group()
            last = text[text.rfind("\n") + 1:]
            pending = len(last.expandtabs(8))
            if not line_start and out:
                out.append("NL")
            line_start = True
            continue
        if kind in _SKIP:
            continue
        if line_start:
            # Indentation of the first significant token of a line opens or closes blocks.
            if pending > indents[-1]:
                indents.append(pending)
                out.append("INDENT")
            else:
                while pending < indents[-1]:
                    indents.pop()
                    out.append("DEDENT")
            line_start = False
        if kind == "ident":
            word = m.group()
            out.append(word if word in KEYWORDS else "ID")
        elif kind in _ABSTRACT:
            out.append(_ABSTRACT[kind])
        else:
            out.append(m.group())
    return out


def features(tokens: list[str]) -> list[str]:
    """Unigrams, bigrams and trigrams of a token stream."""
    n = len(tokens)
    feats = list(tokens)
    feats.extend(f"{tokens[i]} {tokens[i + 1]}" for i in range(n - 1))
    feats.extend(f"{tokens[i]} {tokens[i + 1]} {tokens[i + 2]}" for i in range(n - 2))
    return feats


def package_features(files: Mapping[str, str | bytes]) -> list[str]:
    """Features of a package's sources (relative path -> content), files in path order.

    Files that are not UTF-8 text are skipped: they are not Cheng source.
    """
    stream: list[str] = []
    for rel in sorted(files):
        raw = files[rel]
        if isinstance(raw, bytes):
            if len(raw) > MAX_SOURCE_BYTES:
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
        else:
            text = raw
        stream.append("FILE")
        stream.extend(tokenize(text))
    return features(stream) if len(stream) > 1 else []


def simhash(feats: list[str]) -> int:
    """64-bit SimHash of features (native kernel).

    Raises:
        OriginalityError: the native library is not built.
    """
    try:
        from cheng_build import _native

        return int(_native.simhash64(feats))
    except (ImportError, AttributeError, OSError) as exc:
        raise OriginalityError("the native SimHash kernel is not available",
                               why=str(exc),
                               how="build it: bash scripts/dev-build.sh (or pip install .)") from None


def hamming(a: int, b: int) -> int:
    """Bits that differ between two fingerprints."""
    return (a ^ b).bit_count()


def source_files(root: str | os.PathLike[str]) -> dict[str, bytes]:
    """The files fingerprinted for a package tree: ``.cheng`` files when there are any, else
    every file (a one-file package published with ``--file`` is fingerprinted as itself).
    Hidden directories and build output are skipped."""
    base = Path(root)
    if base.is_file():
        return {base.name: base.read_bytes()}
    found: dict[str, bytes] = {}
    top = os.fspath(base)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and d not in ("build", "chengcache"))
        # Strings, not Path objects, and one lstat per file (a regular file, not a link): this
        # runs for every file of the package on each publish.
        rel_dir = os.path.relpath(dirpath, top).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for fn in filenames:
            path = os.path.join(dirpath, fn)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISREG(mode):
                with open(path, "rb") as fh:
                    found[prefix + fn] = fh.read()
    cheng = {k: v for k, v in found.items() if k.endswith(".cheng")}
    return cheng or found


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A package's SimHash and how many features made it."""

    simhash: int
    features: int

    @property
    def hex(self) -> str:
        """The 16-hex-digit form the registry records."""
        return f"{self.simhash:016x}"


def fingerprint(files: Mapping[str, str | bytes]) -> Fingerprint | None:
    """The package's fingerprint, or None when it has no tokens at all.

    The C scanner (``_native.chengtok``) tokenizes and hashes; :func:`tokenize`,
    :func:`features` and :func:`package_features` are the rule it follows, kept as the tests'
    oracle (``reference_fingerprint``).

    Raises:
        OriginalityError: the native kernel is missing.
    """
    stream = native_scanner().FingerprintStream()
    for rel in sorted(files):
        data = source_bytes(files[rel])
        if data is not None:
            stream.feed(data)
    fp, n = stream.result()
    return Fingerprint(fp, n) if n else None


def native_scanner() -> ModuleType:
    """The C scanner's binding (``cheng_build._native.chengtok``).

    Raises:
        OriginalityError: the native library is missing or stale.
    """
    try:
        from cheng_build._native import chengtok
    except (ImportError, AttributeError, OSError) as exc:
        raise OriginalityError("the native SimHash kernel is not available",
                               why=str(exc),
                               how="build it: bash scripts/dev-build.sh (or pip install .)") from None
    return chengtok


def source_bytes(raw: str | bytes) -> bytes | None:
    """The UTF-8 bytes of a file to fingerprint, or None for one that is skipped (not UTF-8
    text, or larger than :data:`MAX_SOURCE_BYTES`)."""
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_SOURCE_BYTES:
        return None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return raw


def reference_fingerprint(files: Mapping[str, str | bytes]) -> Fingerprint | None:
    """:func:`fingerprint` by the pure-Python reference tokenizer (the tests' oracle)."""
    feats = package_features(files)
    if not feats:
        return None
    return Fingerprint(simhash(feats), len(feats))


def closest(fp: int, published: Iterable[tuple[int, str, int]], package_id: str,
            distance: int = COPY_DISTANCE) -> tuple[int, str, int] | None:
    """The earliest published (line, package_id, simhash) of *another* package within
    ``distance`` bits of ``fp``; versions of the same package never compete."""
    for line, pkg, other in published:
        if pkg != package_id and hamming(fp, other) <= distance:
            return line, pkg, other
    return None
