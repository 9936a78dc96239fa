"""cffi binding (ABI mode) to ``libchengnative.so``, the C core of cheng-build.

Kernels: FastCDC chunking (whole buffer, streaming file, multi-threaded), chunk-and-hash,
SHA-256, BLAKE3 and SimHash64. Every call into C releases the GIL (cffi does so for each call),
except SimHash64 of ``str`` tokens, which reads the Python lists in place (see ``simhash.py``);
buffers are passed without copies (``ffi.from_buffer``) and kept alive for the call.

The library is found through ``$CHENG_NATIVE_LIB``, next to this module, or in an installed
cheng-build further down ``sys.path``; when it is missing,
importing this package raises :class:`NativeLibraryError` (a ``ChengError`` and an
``ImportError``) saying how to build it. Specification of the chunker and of SimHash64:
``docs/chunker.md``.
"""

from __future__ import annotations

from cheng_build._native._loader import HAVE_HASHES, NativeLibraryError, library_path
from cheng_build._native.chunking import (
    ChunkerParams,
    cdc_chunks,
    cdc_file_chunks,
    chunk_and_hash,
    hash_file_fixed,
)
from cheng_build._native.hashing import Blake3, Sha256, backends, blake3, force_backend, sha256
from cheng_build._native.simhash import hamming, pairs_within, simhash64, simhash64_batch, token_hash

__all__ = [
    "HAVE_HASHES",
    "Blake3",
    "ChunkerParams",
    "NativeLibraryError",
    "Sha256",
    "backends",
    "blake3",
    "cdc_chunks",
    "cdc_file_chunks",
    "chunk_and_hash",
    "force_backend",
    "hamming",
    "hash_file_fixed",
    "library_path",
    "pairs_within",
    "sha256",
    "simhash64",
    "simhash64_batch",
    "token_hash",
]
