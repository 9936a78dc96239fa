"""Find and open ``libchengnative.so`` through cffi in ABI mode.

ABI mode (``ffi.dlopen``) needs no compiler at import time and no generated extension module: the
C library is built once by CMake and these declarations mirror its headers. Only opaque pointers
and plain integers cross the boundary, so no struct layout has to agree. cffi releases the GIL
around every call into the library.

Search order: ``$CHENG_NATIVE_LIB`` (a path to the .so), then ``libchengnative.so`` next to this
module (where ``pip install .`` and ``scripts/dev-build.sh`` put it), then an installed
cheng-build's copy elsewhere on ``sys.path`` (a source checkout shadowing the installed package).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cffi import FFI

from cheng_build.core.errors import ChengError

# Must equal CB_ABI_VERSION in native/include/cheng_native.h.
ABI_VERSION = 5

CDEF = """
const char *cb_version(void);
int cb_abi_version(void);
int cb_have_hashes(void);

typedef struct cb_cdc cb_cdc;
size_t cb_cdc_size(void);
int cb_cdc_init(cb_cdc *c, uint64_t min_size, uint64_t avg_size, uint64_t max_size,
                unsigned normalization);
int cb_cdc_init_custom(cb_cdc *c, uint64_t min_size, uint64_t avg_size, uint64_t max_size,
                       uint64_t mask_s, uint64_t mask_l, const uint64_t gear[256]);
const char *cb_cdc_strerror(int err);
uint64_t cb_cdc_mask(unsigned bits);
void cb_cdc_gear(uint64_t out[256]);
uint64_t cb_cdc_mask_s(const cb_cdc *c);
uint64_t cb_cdc_mask_l(const cb_cdc *c);
size_t cb_cdc_max_chunks(const cb_cdc *c, size_t len);
size_t cb_cdc_cut(const cb_cdc *c, const uint8_t *buf, size_t len);
size_t cb_cdc_chunk(const cb_cdc *c, const uint8_t *buf, size_t len, int eof, unsigned threads,
                    uint64_t *ends, size_t cap, size_t *consumed);

int cb_hash_chunks(const uint8_t *buf, size_t len, const uint64_t *ends, size_t n, int algo,
                   unsigned threads, uint8_t *out);

uint64_t cb_token_hash(const void *data, size_t len);
int cb_simhash64_batch(const uint8_t *buf, const uint64_t *doc_off, const uint64_t *doc_len,
                       const uint64_t *doc_ntok, size_t ndocs, int sep, const uint64_t *tok_len,
                       uint64_t *out);
int cb_simhash64_joined(const uint8_t *buf, size_t len, int sep, const uint64_t *doc_ntok,
                        size_t ndocs, uint64_t *out);
uint64_t cb_simhash64_from_hashes(const uint64_t *hashes, size_t n);
int cb_hamming64(uint64_t a, uint64_t b);
size_t cb_pairs_within(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap);
size_t cb_pairs_within_brute(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap);
size_t cb_pairs_within_indexed(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap);

typedef struct cb_sha256_ctx cb_sha256_ctx;
size_t cb_sha256_ctx_size(void);
void cb_sha256_init(cb_sha256_ctx *ctx);
void cb_sha256_update(cb_sha256_ctx *ctx, const void *data, size_t len);
void cb_sha256_final(cb_sha256_ctx *ctx, uint8_t out[32]);
void cb_sha256(const void *data, size_t len, uint8_t out[32]);
const char *cb_sha256_backend(void);
int cb_sha256_force_backend(const char *name);

typedef struct cb_blake3_hasher cb_blake3_hasher;
size_t cb_blake3_hasher_size(void);
void cb_blake3_init(cb_blake3_hasher *h);
void cb_blake3_init_keyed(cb_blake3_hasher *h, const uint8_t key[32]);
void cb_blake3_init_derive_key(cb_blake3_hasher *h, const char *context, size_t context_len);
void cb_blake3_update(cb_blake3_hasher *h, const void *data, size_t len);
void cb_blake3_finalize(const cb_blake3_hasher *h, uint8_t *out, size_t out_len);
void cb_blake3(const void *data, size_t len, uint8_t out[32]);
const char *cb_blake3_backend(void);
int cb_blake3_force_backend(const char *name);
"""

LIB_NAME = "libchengnative.so"
# What the kernels accept without copying (any object exporting a contiguous buffer works too).
BytesLike = bytes | bytearray | memoryview
_BUILD_HOW = (
    "install the package with `pip install .` (compiles native/ with CMake), or, in a source\n"
    "checkout, run `bash scripts/dev-build.sh` and use PYTHONPATH=<checkout>;\n"
    "CHENG_NATIVE_LIB=/path/to/libchengnative.so points at a library built elsewhere"
)


class NativeLibraryError(ChengError, ImportError):
    """The native library is missing, unloadable, or from another version of the sources."""

    def __str__(self) -> str:
        # Seen as a bare traceback when a script imports us directly: carry the how-to in it.
        return "\n".join(self.lines(""))


def find_library(own: Path, search: Sequence[str]) -> Path:
    """The package's own copy ``own`` if it exists, else the first installed copy on ``search``.

    The second case is a source checkout imported ahead of an installed cheng-build (pytest run
    from the checkout after ``pip install .``): the sources are the same, the library was only
    built into the installed copy. The ABI check in :func:`load` refuses a mismatched one.
    """
    if own.is_file():
        return own
    for entry in search:
        candidate = Path(entry or ".", "cheng_build", "_native", LIB_NAME)
        if candidate.is_file():
            return candidate
    return own


def library_path() -> Path:
    """The path the loader opens: ``$CHENG_NATIVE_LIB``, else :func:`find_library` on ``sys.path``."""
    env = os.environ.get("CHENG_NATIVE_LIB")
    if env:
        return Path(env)
    return find_library(Path(__file__).with_name(LIB_NAME), sys.path)


def load() -> tuple[FFI, Any]:
    """Open the library and check its ABI version.

    Returns:
        ``(ffi, lib)``.

    Raises:
        NativeLibraryError: the library is missing, cannot be loaded, or is stale.
    """
    path = library_path()
    if not path.is_file():
        raise NativeLibraryError(
            f"native library not found: {path}",
            why="cheng_build's C core (chunking, hashing, SimHash) has not been built here",
            how=_BUILD_HOW,
        )
    ffi = FFI()
    ffi.cdef(CDEF)
    try:
        lib = ffi.dlopen(str(path))
    except OSError as exc:
        raise NativeLibraryError(f"cannot load native library {path}", why=str(exc), how=_BUILD_HOW) from exc
    try:
        found = int(lib.cb_abi_version())
    except AttributeError:
        found = -1
    if found != ABI_VERSION:
        raise NativeLibraryError(
            f"native library {path} is stale (ABI {found}, expected {ABI_VERSION})",
            why="it was built from older sources than this Python code",
            how="rebuild it: " + _BUILD_HOW,
        )
    return ffi, lib


ffi, lib = load()
HAVE_HASHES = bool(lib.cb_have_hashes())


def require_hashes(what: str) -> None:
    """Raise unless the library was built with the SHA-256/BLAKE3 kernels."""
    if not HAVE_HASHES:
        raise NativeLibraryError(
            f"{what}: native library built without the hash kernels",
            why="native/cmake/hashes.cmake was missing when it was built",
            how="rebuild it from a checkout that has native/cmake/hashes.cmake: " + _BUILD_HOW,
        )


def buffer_of(data: object) -> Any:
    """A ``uint8_t[]`` view of a bytes-like object, without copying.

    Raises:
        TypeError: ``data`` is not a contiguous bytes-like object (a ``str`` is refused: encode it).
    """
    if isinstance(data, str):
        raise TypeError("expected a bytes-like object, not str (encode it first)")
    try:
        return ffi.from_buffer("uint8_t[]", data)
    except TypeError as exc:
        raise TypeError(f"expected a bytes-like object, not {type(data).__name__}") from exc


def aligned(size: int, align: int = 64) -> tuple[Any, Any]:
    """Allocate ``size`` zeroed bytes aligned to ``align``; returns ``(owner, pointer)``.

    The hash states are opaque and may hold SIMD-aligned fields; ``ffi.new`` only promises
    malloc alignment, so we over-allocate and step forward. Keep ``owner`` alive with the pointer.
    """
    owner = ffi.new("uint8_t[]", size + align)
    addr = int(ffi.cast("uintptr_t", owner))
    return owner, owner + ((-addr) % align)
