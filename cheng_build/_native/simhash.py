"""64-bit SimHash over token streams, hashed and summed in C (docs/chunker.md, "SimHash64").

A token is a ``str`` (hashed as its UTF-8 bytes) or a bytes-like object. A batch of ``str``
tokens is read by C straight from the Python lists (``cb_simhash64_pylists`` through
``ctypes.PyDLL``, which keeps the GIL held, as reading Python objects requires): packing the
tokens into one buffer first cost Python twice as long as all the hashing (``str.join`` touches
every token object twice and copies it). C reads each token through three stable-ABI functions
of the running interpreter (``PyList_Size``, ``PyList_GetItem``, ``PyUnicode_AsUTF8AndSize``)
whose addresses we hand it, so the library does not link against Python; where
``_object_layout`` confirms on probe objects that this interpreter lays lists and compact ASCII
strings out as CPython 3.8-3.13 do, C reads them in place instead (as ``PyList_GET_ITEM`` and
``PyUnicode_DATA`` do in an extension), a fifth less time per token; other tokens still go through
the calls. This one kernel keeps
the GIL (the ``str.join`` it replaces held it as long). Any other batch (bytes tokens, or no
``ctypes.pythonapi``) crosses into C as one buffer: all tokens joined by NUL (one ``str.join``
per document, one for the batch, one encode), with the GIL released; the C side checks the separator count
against the token counts, and when a token itself contains a NUL, or str and bytes tokens mix,
the batch is redone per document, with explicit token lengths where NUL-joining is ambiguous.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Sequence
from itertools import accumulate

from cheng_build._native._loader import buffer_of, ffi, lib, library_path

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

_U64 = 1 << 64


def _encode_joined(doc: Sequence[Any]) -> bytes | None:
    """The document's tokens joined by NUL, or None when that would be ambiguous."""
    try:
        if isinstance(doc[0], str):
            joined_s = "\x00".join(doc)
            if joined_s.count("\x00") != len(doc) - 1:
                return None
            return joined_s.encode("utf-8")
        joined_b = b"\x00".join(doc)
    except TypeError:  # mixed str and bytes, or a bytes-like type join does not take
        return None
    if joined_b.count(0) != len(doc) - 1:
        return None
    return joined_b


def _token_bytes(tok: Any) -> bytes:
    if isinstance(tok, str):
        return tok.encode("utf-8")
    return bytes(buffer_of(tok))


def _as_doc(doc: Any) -> Sequence[Any]:
    if isinstance(doc, (str, bytes, bytearray, memoryview)):
        raise TypeError("a document must be a sequence of tokens, not a single str/bytes (split it first)")
    return doc if isinstance(doc, (list, tuple)) else list(doc)


if TYPE_CHECKING:
    _PyListsFn = Callable[[list[list[Any]]], list[int]]
_pylists_fn: _PyListsFn | None = None
_pylists_ready = False


def _make_pylists() -> _PyListsFn | None:
    """The object-reading kernel bound through ``ctypes.PyDLL``, or None where it cannot be."""
    import ctypes  # here, not at import: ctypes costs start-up time that most commands never use

    class _PyApi(ctypes.Structure):
        """``cb_pyapi`` of cheng_native.h: the interpreter's C API functions, and its object
        layout where :func:`_object_layout` confirmed it."""

        _fields_ = [("list_size", ctypes.c_void_p), ("list_item", ctypes.c_void_p),
                    ("utf8", ctypes.c_void_p), ("type_off", ctypes.c_ssize_t),
                    ("list_size_off", ctypes.c_ssize_t), ("list_items_off", ctypes.c_ssize_t),
                    ("str_type", ctypes.c_void_p), ("str_len_off", ctypes.c_ssize_t),
                    ("str_state_off", ctypes.c_ssize_t), ("str_ascii_data_off", ctypes.c_ssize_t),
                    ("str_ascii_bits", ctypes.c_uint32)]

    try:
        capi = ctypes.pythonapi
        funcs = (capi.PyList_Size, capi.PyList_GetItem, capi.PyUnicode_AsUTF8AndSize)
        kernel = ctypes.PyDLL(str(library_path())).cb_simhash64_pylists
    except (AttributeError, OSError):  # no pythonapi (not CPython) or an older library
        return None
    layout = _object_layout(ctypes, capi) if os.environ.get("CHENG_SIMHASH_CALLS_ONLY") != "1" else None
    api = _PyApi(*(ctypes.cast(f, ctypes.c_void_p).value for f in funcs), *(layout or ()))
    kernel.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p]
    kernel.restype = ctypes.c_int
    api_addr = ctypes.addressof(api)

    def run(docs: list[list[Any]]) -> list[int]:
        out = array("Q", bytes(8 * len(docs)))
        # PyDLL raises the exception an API call left set (TypeError, UnicodeEncodeError).
        if kernel(api_addr, docs, out.buffer_info()[0]) != 0:
            raise RuntimeError("cb_simhash64_pylists failed without an exception")
        return out.tolist()

    run.api = api  # type: ignore[attr-defined]  # keeps the structure alive with the closure
    return run


# CPython's layout (3.8 to 3.13, 64-bit, not a Py_TRACE_REFS build), checked before use.
_TYPE_OFF, _SIZE_OFF, _ITEMS_OFF, _STR_LEN_OFF, _STR_STATE_OFF = 8, 16, 24, 16, 32
_COMPACT_ASCII = (1 << 5) | (1 << 6)  # PyASCIIObject.state: compact, ascii


def _object_layout(ctypes: Any, capi: Any) -> tuple[int, int, int, int, int, int, int, int] | None:
    """The layout fields of ``cb_pyapi`` when this interpreter's objects are laid out as C
    will read them, else None (C then makes the API calls for every token).

    Checked on probe lists and strings against what the API functions themselves return: the
    type pointer, a list's size and item pointers, and for str the length, the compact-ASCII
    bits (set on ASCII probes, clear on non-ASCII ones) and where the bytes are.
    """
    try:
        utf8 = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.POINTER(ctypes.c_ssize_t))(
            ("PyUnicode_AsUTF8AndSize", capi))
        ptr = ctypes.c_void_p.from_address
        ssize = ctypes.c_ssize_t.from_address
        probe_list = ["a", "bc", "x" * 40]
        if ptr(id(probe_list) + _TYPE_OFF).value != id(list) or ssize(id(probe_list) + _SIZE_OFF).value != 3:
            return None
        items = ptr(id(probe_list) + _ITEMS_OFF).value
        if not items or any(ptr(items + 8 * i).value != id(v) for i, v in enumerate(probe_list)):
            return None
        data_off = None
        for text, ascii_ in (("abc", True), ("", True), ("q" * 100, True), ("\u00e9", False),
                             ("\u0101" * 20, False), ("\U0001f600", False), ("a\u00e9", False)):
            n = ctypes.c_ssize_t(-1)
            at = utf8(text, ctypes.byref(n))
            state = ctypes.c_uint32.from_address(id(text) + _STR_STATE_OFF).value
            if (ptr(id(text) + _TYPE_OFF).value != id(str)
                    or ssize(id(text) + _STR_LEN_OFF).value != len(text)):
                return None
            if ((state & _COMPACT_ASCII) == _COMPACT_ASCII) != ascii_:
                return None
            if ascii_:
                off = at - id(text)
                if n.value != len(text) or (data_off is not None and off != data_off):
                    return None
                data_off = off
        if data_off is None or not 16 <= data_off <= 64:  # C reads the 16 bytes up to a token's NUL
            return None
        return (_TYPE_OFF, _SIZE_OFF, _ITEMS_OFF, id(str), _STR_LEN_OFF, _STR_STATE_OFF, data_off,
                _COMPACT_ASCII)
    except (AttributeError, OSError, TypeError, ValueError):
        return None


def _pylists(docs: list[list[Any]]) -> list[int] | None:
    """Fast path for str tokens; None when a token is not a str (or the path is unavailable)."""
    global _pylists_fn, _pylists_ready
    if not _pylists_ready:
        _pylists_fn = _make_pylists()
        _pylists_ready = True
    if _pylists_fn is None:
        return None
    try:
        return _pylists_fn(docs)
    except UnicodeEncodeError:
        raise
    except TypeError:  # bytes tokens (or junk, which the exact path reports)
        return None


def _run(parts: list[bytes], ntok: list[int], sep: int, tok_len: array[int] | None) -> list[int]:
    blob = b"".join(parts)
    lens = array("Q", map(len, parts))
    offs = array("Q", accumulate(lens, initial=0))
    counts = array("Q", ntok)
    out = ffi.new("uint64_t[]", max(len(parts), 1))
    tl = ffi.from_buffer("uint64_t[]", tok_len) if tok_len is not None else ffi.NULL
    rc = lib.cb_simhash64_batch(
        ffi.from_buffer("uint8_t[]", blob), ffi.from_buffer("uint64_t[]", offs),
        ffi.from_buffer("uint64_t[]", lens), ffi.from_buffer("uint64_t[]", counts),
        len(parts), sep, tl, out,
    )
    if rc != 0:  # our own packing is wrong: a bug, not bad input
        raise RuntimeError("cb_simhash64_batch rejected the packed documents")
    return list(ffi.unpack(out, len(parts)))


def _joined_all(docs: list[Sequence[Any]], counts: array[int]) -> list[int] | None:
    """Fast path: every token of every document joined by NUL, one encode, one C call.

    Returns None when that does not work out (mixed str/bytes, or a token contains a NUL: the C
    side counts the separators against the token counts and refuses a mismatch).
    """
    first = next((d[0] for d in docs if d), None)
    if first is None:
        return [0] * len(docs)
    # Join each document (a list joins faster than an iterator), then the documents; empty
    # documents are left out, they hold no token and so no separator.
    try:
        if isinstance(first, str):
            blob = "\x00".join(["\x00".join(d) for d in docs if d]).encode("utf-8")
        else:
            blob = b"\x00".join([b"\x00".join(d) for d in docs if d])
    except TypeError:
        return None
    out = ffi.new("uint64_t[]", len(docs))
    rc = lib.cb_simhash64_joined(ffi.from_buffer("uint8_t[]", blob), len(blob), 0,
                                 ffi.from_buffer("uint64_t[]", counts), len(docs), out)
    return list(ffi.unpack(out, len(docs))) if rc == 0 else None


def simhash64_batch(docs: Sequence[Sequence[str | bytes]]) -> list[int]:
    """SimHash64 fingerprints of many documents in one native call.

    Args:
        docs: each document is a sequence of tokens (``str`` or bytes-like), every token weight 1.

    Returns:
        One unsigned 64-bit fingerprint per document (0 for a document without tokens).

    Raises:
        TypeError: a document is a bare ``str``/``bytes`` or a token is neither str nor bytes-like.
        UnicodeEncodeError: a ``str`` token holds a lone surrogate (not valid UTF-8).
    """
    docs = [_as_doc(d) for d in docs]
    if not docs:
        return []
    first = next((d[0] for d in docs if d), None)
    if isinstance(first, str):
        direct = _pylists([d if type(d) is list else list(d) for d in docs])
        if direct is not None:
            return direct
    counts = array("Q", map(len, docs))
    fast = _joined_all(docs, counts)
    if fast is not None:
        return fast
    # Exact path: per document NUL-joined where that is unambiguous, else explicit lengths.
    result = [0] * len(docs)
    fast_idx: list[int] = []
    fast_parts: list[bytes] = []
    fast_ntok: list[int] = []
    slow_idx: list[int] = []
    for i, doc in enumerate(docs):
        if not doc:
            continue
        joined = _encode_joined(doc)
        if joined is None:
            slow_idx.append(i)
        else:
            fast_idx.append(i)
            fast_parts.append(joined)
            fast_ntok.append(len(doc))
    if fast_idx:
        for i, fp in zip(fast_idx, _run(fast_parts, fast_ntok, 0, None), strict=True):
            result[i] = fp
    if slow_idx:
        parts: list[bytes] = []
        tok_len = array("Q")
        for i in slow_idx:
            toks = [_token_bytes(t) for t in docs[i]]
            tok_len.extend(map(len, toks))
            parts.append(b"".join(toks))
        if not tok_len:
            tok_len.append(0)  # from_buffer needs a non-empty array; never read
        ntok = [len(docs[i]) for i in slow_idx]
        for i, fp in zip(slow_idx, _run(parts, ntok, -1, tok_len), strict=True):
            result[i] = fp
    return result


def simhash64(features: Sequence[str | bytes]) -> int:
    """SimHash64 of one document's tokens (see :func:`simhash64_batch`)."""
    return simhash64_batch([features])[0]


def token_hash(token: str | bytes) -> int:
    """The 64-bit token hash SimHash64 uses: XXH64 (seed 0) of the token's bytes."""
    data = _token_bytes(token)
    return int(lib.cb_token_hash(data, len(data)))


def hamming(a: int, b: int) -> int:
    """Number of differing bits of two 64-bit fingerprints.

    Python's own popcount is used: a call into C would cost more than the count itself.

    Raises:
        ValueError: a fingerprint is outside [0, 2**64).
    """
    if not (0 <= a < _U64 and 0 <= b < _U64):
        raise ValueError(f"fingerprints must be in [0, 2**64) (got {a}, {b})")
    return (a ^ b).bit_count()


def pairs_within(fps: Sequence[int], d: int) -> list[tuple[int, int, int]]:
    """All pairs of fingerprints within Hamming distance ``d``.

    Returns:
        ``(i, j, distance)`` with ``i < j`` (indexes into ``fps``), ordered by ``(i, j)``.

    Raises:
        ValueError: ``d`` outside [0, 64] or a fingerprint outside [0, 2**64).
    """
    if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 64:
        raise ValueError(f"d must be an int in [0, 64] (got {d!r})")
    try:
        arr = array("Q", fps)
    except (OverflowError, TypeError) as exc:
        raise ValueError(f"fingerprints must be ints in [0, 2**64): {exc}") from exc
    n = len(arr)
    if n < 2:
        return []
    src = ffi.from_buffer("uint64_t[]", arr)
    cap = 4 * n + 64
    while True:
        out = ffi.new("uint64_t[]", 3 * cap)
        total = int(lib.cb_pairs_within(src, n, d, out, cap))
        if total <= cap:
            flat = ffi.unpack(out, 3 * total)
            return list(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))
        cap = total
