"""SHA-256 for the start-up-critical paths (chengc): the same digests as :func:`hashlib.sha256`.

Importing :mod:`hashlib` loads OpenSSL's binding, ~12 M instructions (~3 ms) of a chengc cache
miss that hashes a few hundred KB. CPython's own SHA-256 module (``_sha256``; ``_sha2`` from 3.12)
loads in microseconds but hashes ~5x slower than OpenSSL, so it serves only the first
:data:`BUDGET` bytes a process hashes through here; after that (and where there is no such
module) :func:`hashlib.sha256` does, so a large input costs at most the ~3 ms this saved.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from hashlib import _Hash

BUDGET = 1 << 20  # bytes: about what the builtin module hashes in the time hashlib takes to load

_left = BUDGET
try:
    from _sha256 import sha256 as _builtin  # CPython <= 3.11
except ImportError:
    try:
        from _sha2 import sha256 as _builtin  # CPython >= 3.12
    except ImportError:
        _builtin = None


def sha256(data: bytes | bytearray | memoryview = b"") -> _Hash:
    """A SHA-256 object over ``data``, as ``hashlib.sha256(data)``; feed large streams to
    :func:`hashlib.sha256` directly (``update`` on the object returned here is not budgeted)."""
    global _left
    n = len(data) if not isinstance(data, memoryview) else data.nbytes
    if _builtin is not None and n <= _left:
        _left -= n
        return _builtin(data)  # type: ignore[no-any-return]
    import hashlib

    return hashlib.sha256(data)


__all__ = ["BUDGET", "sha256"]
