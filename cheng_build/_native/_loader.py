"""Find and open ``libchengnative.so`` through cffi in ABI mode.

ABI mode (``ffi.dlopen``) needs no compiler at import time and no generated extension module: the
C library is built once by CMake and the declarations in ``_cdef.py`` mirror its headers (used
pre-parsed from ``_ffi.py``, so the import costs about a millisecond). Only opaque pointers
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

from cheng_build._native._cdef import ABI_VERSION, CDEF
from cheng_build.core.errors import ChengError

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

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


def make_ffi() -> Any:
    """The FFI object: the pre-parsed ``_ffi`` module, else ``CDEF`` parsed now (about 50 ms)."""
    try:
        from cheng_build._native._ffi import ffi

        return ffi
    except Exception:  # missing, or from a cffi this one cannot read: parse the text instead
        from cffi import FFI

        parsed = FFI()
        parsed.cdef(CDEF)
        return parsed


def load() -> tuple[Any, Any]:
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
    ffi = make_ffi()
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
