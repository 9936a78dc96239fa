"""The Cheng source scanner of the C core (``native/include/cb_chengtok.h``, docs/chunker.md §6).

Two kernels read a source file's UTF-8 bytes in C:

- :class:`FingerprintStream`: the fingerprint tokenizer of ``pkg/originality.py``, whose tokens
  (and their unigrams, bigrams and trigrams, across files) go straight into the SimHash sums: no
  token ever becomes a Python object;
- :func:`api_lines`: the logical lines ``pkg/api.py`` reads declarations from;
- :func:`api_decls`: those lines and the declarations pass after them (``native/src/chengapi.c``):
  the exported declarations of one module, only they become Python objects.

The reference rules are Python regular expressions, which classify non-ASCII characters by the
interpreter's Unicode tables (``\\w``, ``\\d``, ``str.isspace``). :func:`unicode_classes` hands C
the classes of exactly the non-ASCII characters a text holds, so C and Python agree on any text
without C carrying its own Unicode tables.
"""

from __future__ import annotations

import re
from array import array
from functools import lru_cache

from cheng_build._native._loader import ffi, lib
from cheng_build.core.record import dataclass

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

_WORD = re.compile(r"\w")
_DIGIT = re.compile(r"\d")
_NON_ASCII = re.compile(rb"[\xc0-\xff][\x80-\xbf]*")

UC_WORD, UC_DIGIT, UC_SPACE = 1, 2, 4  # the CB_UC_* bits of cb_chengtok.h


@lru_cache(maxsize=64)
def unicode_classes(data: bytes) -> array[int]:
    """Sorted ``(code point << 3) | class bits`` of the non-ASCII characters of UTF-8 ``data``.

    Cached: publish hands the same bytes object to both scanners (do not modify the result).
    """
    if data.isascii():
        return array("I")
    chars = {m.decode("utf-8", "surrogatepass") for m in set(_NON_ASCII.findall(data))}
    out = array("I")
    for ch in sorted(chars):
        cls = ((UC_WORD if _WORD.match(ch) else 0) | (UC_DIGIT if _DIGIT.match(ch) else 0)
               | (UC_SPACE if ch.isspace() else 0))
        out.append((ord(ch) << 3) | cls)
    return out


def _view(data: bytes, classes: array[int]) -> tuple[Any, Any]:
    buf = ffi.from_buffer("uint8_t[]", data)
    cls = ffi.from_buffer("uint32_t[]", classes) if len(classes) else ffi.NULL
    return buf, cls


class FingerprintStream:
    """A package's token stream, file by file, folded into SimHash sums in C."""

    def __init__(self) -> None:
        raw = lib.cb_ctok_new()
        if raw == ffi.NULL:
            raise MemoryError("cb_ctok_new")
        self._s = ffi.gc(raw, lib.cb_ctok_free)

    def feed(self, data: bytes, classes: array[int] | None = None) -> None:
        """Append one file (UTF-8 ``data``; ``classes`` from :func:`unicode_classes`)."""
        cls = unicode_classes(data) if classes is None else classes
        buf, cptr = _view(data, cls)
        if lib.cb_ctok_feed(self._s, buf, len(data), cptr, len(cls)) != 0:
            raise MemoryError("cb_ctok_feed")

    @property
    def tokens(self) -> int:
        """Tokens in the stream so far (FILE tokens included)."""
        return int(lib.cb_ctok_ntokens(self._s))

    def result(self) -> tuple[int, int]:
        """(SimHash64, number of features); (0, 0) when there are fewer than two tokens."""
        n = ffi.new("uint64_t *")
        fp = int(lib.cb_ctok_result(self._s, n))
        return fp, int(n[0])


@dataclass(frozen=True, slots=True)
class Lines:
    """Logical lines of one module: ``indents[i]`` and the UTF-8 text ``data[starts[i]:ends[i]]``."""

    indents: list[int]
    starts: list[int]
    ends: list[int]
    data: bytes

    def text(self, i: int) -> str:
        """The text of line ``i``."""
        return self.data[self.starts[i]:self.ends[i]].decode("utf-8", "surrogatepass")


def api_lines(data: bytes, classes: array[int] | None = None) -> Lines:
    """The logical lines of one module's UTF-8 source (the rules of ``pkg/api.py``)."""
    cls = unicode_classes(data) if classes is None else classes
    buf, cptr = _view(data, cls)
    cap = data.count(b"\n") + 1
    out_cap = 2 * len(data) + 1
    out = ffi.new("uint8_t[]", out_cap)
    ind = ffi.new("uint32_t[]", cap)
    starts = ffi.new("uint64_t[]", cap)
    ends = ffi.new("uint64_t[]", cap)
    n = lib.cb_api_lines(buf, len(data), cptr, len(cls), out, out_cap, ind, starts, ends, cap)
    if n == ffi.cast("size_t", -1):
        raise RuntimeError("cb_api_lines: capacity too small")  # cannot happen: sized above
    e = ffi.unpack(ends, n)
    return Lines(ffi.unpack(ind, n), ffi.unpack(starts, n), e, ffi.buffer(out, e[-1] if n else 0)[:])


API_KINDS = ("fn", "iterator", "template", "macro", "type", "const")  # cb_api_decls's kind codes
_SMALL = 2**64 - 1  # CB_API_SMALL as size_t
_NOMEM = 2**64 - 2  # CB_API_NOMEM
# C writes every byte it reports; clearing megabytes of room per module first would cost more
# than the declarations pass itself.
_new_uncleared = ffi.new_allocator(should_clear_after_alloc=False)


def api_decls(data: bytes, classes: array[int] | None = None) -> list[tuple[str, str, str]]:
    """(kind, name, signature) of every exported top-level declaration of one module's UTF-8
    source, in source order: ``pkg/api.py``'s ``_decls`` over its logical lines, run in C."""
    cls = unicode_classes(data) if classes is None else classes
    buf, cptr = _view(data, cls)
    # A signature is at most 3 bytes per source byte ("=" -> " = ") plus separators per line;
    # a record per logical line at most. Too small is refused by C (not overrun): retry larger.
    nrec = data.count(b"\n") + 1
    out_cap = 4 * len(data) + 64
    while True:
        out = _new_uncleared("uint8_t[]", out_cap)
        rec = _new_uncleared("uint64_t[]", 5 * nrec)
        n = int(lib.cb_api_decls(buf, len(data), cptr, len(cls), out, out_cap, rec, nrec))
        if n == _NOMEM:
            raise MemoryError("cb_api_decls")
        if n != _SMALL:
            break
        out_cap *= 2
        nrec *= 2
    r = ffi.unpack(rec, 5 * n)
    raw = ffi.buffer(out, r[-2] + r[-1] if n else 0)[:]
    kinds = API_KINDS
    return [(kinds[r[k]], raw[r[k + 1]:r[k + 1] + r[k + 2]].decode("utf-8", "surrogatepass"),
             raw[r[k + 3]:r[k + 3] + r[k + 4]].decode("utf-8", "surrogatepass"))
            for k in range(0, 5 * n, 5)]


__all__ = ["API_KINDS", "FingerprintStream", "Lines", "api_decls", "api_lines", "unicode_classes"]
