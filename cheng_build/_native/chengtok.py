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
    # a record per logical line at most, and a logical line holds a byte and ends at a newline
    # (counting the newlines cost a tenth of the pass). The buffers are not cleared, so room
    # never written costs nothing. Too small is refused by C (not overrun): retry larger.
    nrec = len(data) // 2 + 2
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
    if raw.isascii():  # the usual case: byte offsets are str offsets, one decode for all
        t = raw.decode("ascii")
        return [(kinds[r[k]], t[r[k + 1]:r[k + 1] + r[k + 2]], t[r[k + 3]:r[k + 3] + r[k + 4]])
                for k in range(0, 5 * n, 5)]
    return [(kinds[r[k]], raw[r[k + 1]:r[k + 1] + r[k + 2]].decode("utf-8", "surrogatepass"),
             raw[r[k + 3]:r[k + 3] + r[k + 4]].decode("utf-8", "surrogatepass"))
            for k in range(0, 5 * n, 5)]




def _decode_records(raw: bytes, text: str | None, r: list[int], lo: int,
                    hi: int) -> list[tuple[str, str, str]]:
    """Records lo..hi (5 ints each in ``r``) as (kind, name, signature), names and signatures
    read from ``raw`` (UTF-8), or sliced from ``text`` when that is ``raw`` decoded and ASCII
    (byte offsets are then str offsets: one decode for all records)."""
    kinds = API_KINDS
    if text is not None:
        return [(kinds[r[k]], text[r[k + 1]:r[k + 1] + r[k + 2]], text[r[k + 3]:r[k + 3] + r[k + 4]])
                for k in range(5 * lo, 5 * hi, 5)]
    return [(kinds[r[k]], raw[r[k + 1]:r[k + 1] + r[k + 2]].decode("utf-8", "surrogatepass"),
             raw[r[k + 3]:r[k + 3] + r[k + 4]].decode("utf-8", "surrogatepass"))
            for k in range(5 * lo, 5 * hi, 5)]


SCAN_FINGERPRINT, SCAN_API = 1, 2  # CB_SCAN_* of cb_chengtok.h


def scan_package(files: list[tuple[bytes, int]]) -> tuple[tuple[int, int], list[list[tuple[str, str, str]]]]:
    """Both scanners over a package in one C call, so the GIL is released for all of it.

    ``files``: (UTF-8 source, what) in order; ``what`` holds :data:`SCAN_FINGERPRINT` to append
    the file to the package's fingerprint stream (as :class:`FingerprintStream` would) and
    :data:`SCAN_API` to take its exported declarations (as :func:`api_decls` would). Returns the
    stream's (SimHash64, features) and the declarations of each ``SCAN_API`` file, in order.

    Raises:
        MemoryError: C could not allocate.
    """
    n = len(files)
    keep = []  # the buffers C reads, alive until it returns
    texts = ffi.new("uint8_t *[]", n)
    ucls = ffi.new("uint32_t *[]", n)
    nucls = ffi.new("size_t[]", n)
    lens = ffi.new("size_t[]", [len(d) for d, _ in files])
    what = ffi.new("uint8_t[]", [w for _, w in files])
    for i, (data, _) in enumerate(files):
        buf, cptr = _view(data, cls := unicode_classes(data))
        keep.append((buf, cptr))
        texts[i] = buf
        ucls[i] = cptr
        nucls[i] = len(cls)
    stream = FingerprintStream()
    raw_out = lib.cb_apiout_new()
    if raw_out == ffi.NULL:
        raise MemoryError("cb_apiout_new")
    out = ffi.gc(raw_out, lib.cb_apiout_free)
    if lib.cb_scan_package(stream._s, n, texts, lens, ucls, nucls, what, out) != 0:
        raise MemoryError("cb_scan_package")
    bp = ffi.new("uint8_t **")
    rp = ffi.new("uint64_t **")
    cp = ffi.new("uint64_t **")
    nbytes = lib.cb_apiout_bytes(out, bp)
    nrec = lib.cb_apiout_records(out, rp)
    nfiles = lib.cb_apiout_files(out, cp)
    raw = ffi.buffer(bp[0], nbytes)[:] if nbytes else b""
    r = ffi.unpack(rp[0], 5 * nrec) if nrec else []
    counts = ffi.unpack(cp[0], nfiles) if nfiles else []
    text = raw.decode("ascii") if raw.isascii() else None
    per_file, at = [], 0
    for c in counts:
        per_file.append(_decode_records(raw, text, r, at, at + c))
        at += c
    return stream.result(), per_file


__all__ = ["API_KINDS", "SCAN_API", "SCAN_FINGERPRINT", "FingerprintStream", "Lines", "api_decls",
           "api_lines", "scan_package", "unicode_classes"]
