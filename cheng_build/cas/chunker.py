"""Chunker specs and the leaves of a file: ``size-<n>`` (fixed) and ``fastcdc-<min>-<avg>-<max>``.

A chunker turns a file into leaves ``(offset, length, digest)``. The spec string is what we record
beside a snapshot so anyone can recompute its CID, so parsing is strict and :func:`str` of a
:class:`Chunker` gives the canonical spec back.

Speed: hashing is the only per-byte work. With the native library (``cheng_build._native``) and
an accelerated hash backend (SHA-NI / AVX2 BLAKE3) a whole file is chunked and hashed in C on
several threads (``hash_file_fixed`` for fixed chunks: each thread preads and hashes its own;
``chunk_and_hash`` for FastCDC). Otherwise fixed chunks are hashed by :mod:`hashlib` over
slices of an ``mmap`` on a thread pool (hashlib releases the GIL for large buffers), so the
fallback still uses every core. FastCDC needs the native library for its cut points: they must be
bit-identical everywhere or snapshot CIDs would differ.
"""

from __future__ import annotations

import enum
import errno
import mmap
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from cheng_build.cas.cid import hasher_for
from cheng_build.core.errors import InputError, StoreError, UsageError
from cheng_build.core.record import dataclass

__all__ = [
    "DEFAULT_CHUNKER",
    "MAX_CHUNK",
    "Chunker",
    "ChunkerKind",
    "Leaf",
    "bytes_leaves",
    "default_threads",
    "file_leaves",
    "fixed_windows",
    "native",
    "parse_chunker",
]

MAX_CHUNK = 1 << 20  # go-ipfs's limit: larger blocks do not travel over bitswap
DEFAULT_CHUNKER = "size-262144"
_SMALL_FILE = 1 << 20  # below this, reading into memory beats mmap + threads

Leaf = tuple[int, int, bytes]  # offset, length, raw digest


class ChunkerKind(enum.Enum):
    """How cut points are chosen."""

    FIXED = "size"
    FASTCDC = "fastcdc"


@dataclass(frozen=True, slots=True)
class Chunker:
    """A validated chunker: fixed ``size`` or FastCDC ``min_size/avg_size/max_size``."""

    kind: ChunkerKind
    size: int = 262144
    min_size: int = 0
    avg_size: int = 0
    max_size: int = 0

    def __str__(self) -> str:
        if self.kind is ChunkerKind.FIXED:
            return f"size-{self.size}"
        return f"fastcdc-{self.min_size}-{self.avg_size}-{self.max_size}"


_SPEC = re.compile(r"^(?:size-([0-9]{1,9})|fastcdc-([0-9]{1,9})-([0-9]{1,9})-([0-9]{1,9}))$")


def parse_chunker(spec: str) -> Chunker:
    """Parse ``size-<n>`` or ``fastcdc-<min>-<avg>-<max>`` (bytes).

    Raises:
        UsageError: malformed spec or sizes out of range, naming the spec.
    """
    m = _SPEC.match(spec.strip())
    how = ("use size-<bytes> (e.g. size-262144) or fastcdc-<min>-<avg>-<max> "
           "(e.g. fastcdc-65536-262144-1048576)")
    if not m:
        raise UsageError(f"unknown chunker '{spec}'", how=how)
    if m.group(1) is not None:
        size = int(m.group(1))
        if not 1 <= size <= MAX_CHUNK:
            raise UsageError(f"chunker '{spec}': size must be between 1 and {MAX_CHUNK} bytes", how=how)
        return Chunker(ChunkerKind.FIXED, size=size)
    lo, avg, hi = (int(m.group(i)) for i in (2, 3, 4))
    if not (64 <= lo <= avg <= hi <= MAX_CHUNK):
        raise UsageError(
            f"chunker '{spec}': need 64 <= min <= avg <= max <= {MAX_CHUNK}", how=how)
    if avg & (avg - 1):
        raise UsageError(f"chunker '{spec}': avg must be a power of two (FastCDC masks)", how=how)
    return Chunker(ChunkerKind.FASTCDC, size=0, min_size=lo, avg_size=avg, max_size=hi)


def native() -> ModuleType | None:
    """The native library if it is built and offers ``chunk_and_hash``, else ``None``."""
    try:
        from cheng_build import _native
    except (ImportError, OSError):
        return None
    return _native if hasattr(_native, "chunk_and_hash") else None


def default_threads() -> int:
    """Hashing threads: every core, at most 8 (beyond that the disk is the limit)."""
    return max(1, min(8, os.cpu_count() or 1))


_PARAMS: dict[Chunker, object] = {}  # the native parameters of each chunker: checked once
_FAST_HASH: dict[str, bool] = {}  # hash name -> _native_hash_is_fast (a property of the library)


def _native_params(n: ModuleType, chunker: Chunker) -> object:
    got = _PARAMS.get(chunker)
    if got is None:
        try:
            got = _PARAMS[chunker] = n.ChunkerParams(min_size=chunker.min_size, avg_size=chunker.avg_size,
                                                     max_size=chunker.max_size)
        except ValueError as exc:
            raise UsageError(f"chunker '{chunker}': {exc}") from None
    return got


def _probe_fast_hash(n: ModuleType, hash: str) -> bool:
    """Whether the C library hashes ``hash`` at least as fast as hashlib on threads.

    A portable (non-SIMD) C SHA-256 runs at a fraction of OpenSSL's SHA-NI speed, so it is used
    only when the library reports an accelerated backend.
    """
    try:
        backend: str = n.backends().get("sha256" if hash == "sha2-256" else "blake3", "unavailable")
    except Exception:
        return False
    if hash == "sha2-256":
        return backend not in ("unavailable", "portable")
    return backend != "unavailable"


def _native_hash_is_fast(n: ModuleType, hash: str) -> bool:
    fast = _FAST_HASH.get(hash)
    if fast is None:
        fast = _FAST_HASH[hash] = _probe_fast_hash(n, hash)
    return fast


def _need_native(chunker: Chunker) -> ModuleType:
    n = native()
    if n is None:
        raise UsageError(
            f"chunker '{chunker}' needs the native library",
            why="FastCDC cut points come from the C core so every machine computes the same CIDs",
            how="build it with 'bash scripts/dev-build.sh' (or pip install the package), "
                "or use --chunker:size-262144")
    return n


def _fixed_cuts(length: int, size: int) -> list[tuple[int, int]]:
    if length == 0:
        return [(0, 0)]
    return [(off, min(size, length - off)) for off in range(0, length, size)]


def bytes_leaves(data: bytes | memoryview, chunker: Chunker, hash: str = "sha2-256") -> list[Leaf]:
    """Chunk and hash an in-memory buffer. An empty buffer is one empty leaf (as ipfs does)."""
    h = hasher_for(hash)
    view = memoryview(data)
    if chunker.kind is ChunkerKind.FIXED:
        cuts = _fixed_cuts(len(view), chunker.size)
    else:
        n = _need_native(chunker)
        if len(view) and _native_hash_is_fast(n, hash):
            # Cut and hash in one C call: a publish of many small sources made ~750 calls.
            return [(int(o), int(ln), d) for o, ln, d in n.chunk_and_hash(
                view, _native_params(n, chunker), algo="sha256" if hash == "sha2-256" else "blake3")]
        cuts = [(int(o), int(ln)) for o, ln in n.cdc_chunks(view, _native_params(n, chunker))] or [(0, 0)]
    return [(off, ln, h(view[off:off + ln])) for off, ln in cuts]


def file_leaves(path: str | os.PathLike[str], chunker: Chunker, hash: str = "sha2-256", *,
                threads: int | None = None, on_bytes: Callable[[int], None] | None = None) -> list[Leaf]:
    """Chunk and hash a file on disk.

    Args:
        path: a regular file.
        chunker: from :func:`parse_chunker`.
        hash: ``sha2-256`` or ``blake3``.
        threads: hashing threads (default :func:`default_threads`).
        on_bytes: called with byte counts as hashing progresses (for a progress bar).

    Raises:
        OSError: the file cannot be read.
        UsageError: FastCDC without the native library.
    """
    p = Path(path)
    size = p.stat().st_size
    nthreads = threads or default_threads()
    if size < _SMALL_FILE:
        leaves = bytes_leaves(p.read_bytes(), chunker, hash)
        if on_bytes is not None:
            on_bytes(size)
        return leaves
    n = native()
    if n is None and chunker.kind is ChunkerKind.FASTCDC:
        _need_native(chunker)
    if n is not None and _native_hash_is_fast(n, hash):
        # Cut and hash in one native pass on ``nthreads`` threads.
        algo = "sha256" if hash == "sha2-256" else "blake3"
        if chunker.kind is ChunkerKind.FIXED and hasattr(n, "hash_file_fixed"):
            # Every thread reads (pread) and hashes its own chunks: no reader in front.
            try:
                got, digests = n.hash_file_fixed(os.fspath(p), chunker.size, algo=algo, threads=nthreads)
            except OSError as exc:
                if exc.errno != errno.ESTALE:
                    raise
                raise StoreError(f"{p} changed while it was being read",
                                 how="retry once nothing writes to it") from None
            if on_bytes is not None:
                on_bytes(got)
            step = chunker.size
            return [(off, min(step, got - off), digests[i:i + 32])
                    for i, off in zip(range(0, len(digests), 32), range(0, got, step), strict=True)]
        if chunker.kind is ChunkerKind.FIXED:
            raw = n.chunk_and_hash(os.fspath(p), fixed_size=chunker.size, algo=algo, threads=nthreads)
        else:
            raw = n.chunk_and_hash(os.fspath(p), _native_params(n, chunker), algo=algo, threads=nthreads)
        if on_bytes is not None:
            on_bytes(size)
        return [(int(o), int(ln), bytes(d)) for o, ln, d in raw]
    return _threaded(p, size, chunker, hash, nthreads, on_bytes)


def fixed_windows(path: str | os.PathLike[str], chunker: Chunker, hash: str = "sha2-256", *,
                  threads: int | None = None,
                  window: int = 16 << 20) -> Iterator[tuple[memoryview, list[Leaf]]]:
    """Read a file once, in windows, and yield each window with its fixed-size leaves.

    For storing a file: every leaf's digest is computed over exactly the bytes yielded beside it,
    so they can be stored without hashing them again, and the file is read only once. Offsets
    in the leaves are the file's; the leaf at offset ``o`` is ``view[o - base : o - base + len]``
    where ``base`` is the offset of the window's first leaf.

    The view is one reused buffer: it is valid only until the next item is taken.

    Raises:
        ValueError: ``chunker`` is not a fixed-size chunker.
        OSError: the file cannot be read.
        InputError: the file's size changed while it was being read.
    """
    if chunker.kind is not ChunkerKind.FIXED:
        raise ValueError("fixed_windows needs a fixed-size chunker")
    nthreads = threads or default_threads()
    n = native()
    fast = n is not None and _native_hash_is_fast(n, hash)
    algo = "sha256" if hash == "sha2-256" else "blake3"
    step = max(1, window // chunker.size) * chunker.size
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        buf = bytearray(min(step, size) or 1)
        view = memoryview(buf)
        base = 0
        while base < size or base == 0:
            want = min(len(buf), size - base)
            got = 0
            while got < want:
                k = fh.readinto(view[got:want])
                if not k:
                    raise InputError(f"{os.fspath(path)} changed while it was being read",
                                     why="it ended before the size it had when opened",
                                     how="retry once nothing writes to it")
                got += k
            part = view[:want]
            if fast and want:
                assert n is not None
                leaves = [(base + o, ln, d) for o, ln, d in
                          n.chunk_and_hash(part, fixed_size=chunker.size, algo=algo, threads=nthreads)]
            else:
                leaves = [(base + o, ln, d) for o, ln, d in bytes_leaves(part, chunker, hash)]
            yield part, leaves
            base += want
            if base >= size:
                break
        if fh.read(1):
            raise InputError(f"{os.fspath(path)} changed while it was being read",
                             why="it grew past the size it had when opened",
                             how="retry once nothing writes to it")


def _threaded(p: Path, size: int, chunker: Chunker, hash: str, threads: int,
              on_bytes: Callable[[int], None] | None) -> list[Leaf]:
    """Cut points in Python (fixed) or C (FastCDC), digests by hashlib on a thread pool."""
    h = hasher_for(hash)
    with open(p, "rb") as fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # the file shrank to 0 between stat and mmap
            raise StoreError(f"{p} changed while it was being read", why=str(exc)) from None
    try:
        if len(mm) != size:
            raise StoreError(f"{p} changed while it was being read")
        view = memoryview(mm)
        try:
            if chunker.kind is ChunkerKind.FIXED:
                cuts = _fixed_cuts(size, chunker.size)
            else:
                n = _need_native(chunker)
                cuts = [(int(o), int(ln)) for o, ln in n.cdc_chunks(view, _native_params(n, chunker))]
            # Hash in groups so progress can advance and the pool queue stays short.
            group = 64
            out: list[Leaf] = []
            # Imported here: concurrent.futures brings logging and threading helpers (~3 ms),
            # which start-up paths that never hash a large file (publish, chengc) skip.
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=threads) as pool:
                for g in range(0, len(cuts), group):
                    part = cuts[g:g + group]
                    digests = list(pool.map(lambda c: h(view[c[0]:c[0] + c[1]]), part))
                    out.extend((o, ln, d) for (o, ln), d in zip(part, digests, strict=True))
                    if on_bytes is not None:
                        on_bytes(sum(ln for _, ln in part))
            return out
        finally:
            view.release()
    finally:
        mm.close()
