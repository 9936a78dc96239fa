"""FastCDC chunking and chunk-and-hash over the native library.

The cut rule, gear table and masks are specified in ``docs/chunker.md``; snapshots depend on
them, so they only change with a new ``ChunkerParams.spec`` name. Every function here accepts
``bytes``, ``bytearray``, ``memoryview`` or any contiguous buffer without copying it.
"""

from __future__ import annotations

import errno
import os
import re
from array import array
from collections.abc import Iterator
from functools import lru_cache

from cheng_build._native._loader import BytesLike, buffer_of, ffi, lib, require_hashes
from cheng_build.core.record import dataclass

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any, Literal

    Algo = Literal["sha256", "blake3"]
_ALGOS = {"sha256": 0, "blake3": 1}
_SPEC = re.compile(r"^fastcdc-v1-(\d+)-(\d+)-(\d+)-n([0-3])$")
# A streaming read window: big enough that the per-call overhead vanishes, and at least two
# max-size chunks so every window yields chunks.
_STREAM_WINDOW = 16 << 20
# chunk_and_hash on a file: bigger windows, so threads get long runs of work between refills.
_HASH_WINDOW = 64 << 20
_SIZE_MAX = int(ffi.cast("size_t", -1))  # the C functions' error value


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    """FastCDC parameters (validated on construction).

    Args:
        min_size: no chunk is shorter (except the last); bytes before it are not hashed. >= 64.
        avg_size: the normalization point, a power of two in [256, 2**28].
        max_size: no chunk is longer; <= 2**30.
        normalization: 0..3, how much stricter the mask is before ``avg_size`` than after it.

    Raises:
        ValueError: a size or the normalization level is out of range (the message says which).
    """

    min_size: int = 65536
    avg_size: int = 262144
    max_size: int = 1048576
    normalization: int = 2

    # An __init__ of its own (a record has no __post_init__): the fields, then the checks.
    def __init__(self, min_size: int = 65536, avg_size: int = 262144, max_size: int = 1048576,
                 normalization: int = 2) -> None:
        values = {"min_size": min_size, "avg_size": avg_size, "max_size": max_size,
                  "normalization": normalization}
        for name, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"chunker {name} must be an int, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"chunker {name} must not be negative (got {value})")
            object.__setattr__(self, name, value)  # frozen: past the refusing __setattr__
        _state(self)  # the C code holds the rules; raises ValueError naming the broken one

    @property
    def spec(self) -> str:
        """A name recording the algorithm and parameters, e.g. ``fastcdc-v1-65536-262144-1048576-n2``."""
        return f"fastcdc-v1-{self.min_size}-{self.avg_size}-{self.max_size}-n{self.normalization}"

    @classmethod
    def from_spec(cls, spec: str) -> ChunkerParams:
        """Parse :attr:`spec` back.

        Raises:
            ValueError: ``spec`` is not a ``fastcdc-v1-...`` name or its parameters are invalid.
        """
        m = _SPEC.match(spec)
        if not m:
            raise ValueError(f"not a chunker spec: {spec!r} (expected fastcdc-v1-<min>-<avg>-<max>-n<0..3>)")
        return cls(int(m[1]), int(m[2]), int(m[3]), int(m[4]))


@lru_cache(maxsize=64)
def _state(params: ChunkerParams) -> Any:
    """The initialised (read-only, thread-safe) C chunker state for ``params``."""
    state = ffi.new("uint8_t[]", lib.cb_cdc_size())
    c = ffi.cast("cb_cdc *", state)
    for name, width in (("min_size", 63), ("avg_size", 63), ("max_size", 63), ("normalization", 31)):
        if getattr(params, name) >= 1 << width:  # would not fit the C argument
            raise ValueError(f"chunker {name} is far too large (got {getattr(params, name)})")
    rc = lib.cb_cdc_init(c, params.min_size, params.avg_size, params.max_size, params.normalization)
    if rc != 0:
        raise ValueError(
            f"invalid chunker parameters (min_size={params.min_size}, avg_size={params.avg_size}, "
            f"max_size={params.max_size}, normalization={params.normalization}): "
            f"{ffi.string(lib.cb_cdc_strerror(rc)).decode()}"
        )
    return _Keep(state, c)


@dataclass(frozen=True, slots=True)
class _Keep:
    owner: Any
    ptr: Any


def _threads(threads: int) -> int:
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be an int >= 1 (got {threads!r})")
    return min(threads, 64)


def _ends_cdc(cdc: Any, buf: Any, n: int, threads: int) -> tuple[Any, int]:
    cap = lib.cb_cdc_max_chunks(cdc, n) + 1
    ends = ffi.new("uint64_t[]", cap)
    count = lib.cb_cdc_chunk(cdc, buf, n, 1, threads, ends, cap, ffi.NULL)
    if count == _SIZE_MAX:  # only when memory for the thread scratch ran out
        raise MemoryError("cb_cdc_chunk: out of memory")
    return ends, count


def _pairs(ends: Any, count: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    prev = 0
    for e in ffi.unpack(ends, count):
        out.append((prev, e - prev))
        prev = e
    return out


def cdc_chunks(
    buf: BytesLike, params: ChunkerParams | None = None, *, threads: int = 1
) -> list[tuple[int, int]]:
    """Chunk a whole buffer.

    Args:
        buf: a bytes-like object (not copied).
        params: chunker parameters; the defaults when ``None``.
        threads: threads for the cut search; the result is the same for any value.

    Returns:
        ``(offset, length)`` of every chunk, in order, covering ``buf`` exactly.
    """
    params = params or ChunkerParams()
    view = buffer_of(buf)
    n = len(view)
    if n == 0:
        return []
    keep = _state(params)
    ends, count = _ends_cdc(keep.ptr, view, n, _threads(threads))
    return _pairs(ends, count)


def cdc_file_chunks(
    path: str | os.PathLike[str], params: ChunkerParams | None = None, *, window: int | None = None
) -> Iterator[tuple[int, int]]:
    """Chunk a file while reading it in pieces (never whole); same cut points as :func:`cdc_chunks`.

    Args:
        path: the file.
        params: chunker parameters; the defaults when ``None``.
        window: bytes held in memory at once (default 16 MiB); at least ``2 * max_size``.

    Raises:
        OSError: the file cannot be opened or read.
        ValueError: ``window`` is smaller than ``2 * max_size``.
    """
    params = params or ChunkerParams()
    keep = _state(params)
    if window is None:
        window = max(_STREAM_WINDOW, 2 * params.max_size)
    elif window < 2 * params.max_size:
        raise ValueError(f"window must be at least 2 * max_size = {2 * params.max_size} (got {window})")
    return _file_chunks(path, keep, window)


class _FileWindow:
    """A file read into one reusable buffer; the undecided tail moves to the front on refill.

    The buffer starts at ``window`` bytes, or at the file's size plus one when that is smaller
    (a small file must not cost a 64 MiB allocation); it doubles if a full buffer yields nothing
    (a file that grew while we read it).
    """

    buf: bytearray
    mv: memoryview
    view: Any

    def __init__(self, f: Any, window: int) -> None:
        self.f = f
        self.base = self.filled = 0
        self.eof = False
        size = os.fstat(f.fileno()).st_size
        self._alloc(max(1, min(window, size + 1)))

    def _alloc(self, n: int) -> None:
        buf = bytearray(n)
        if self.filled:
            buf[: self.filled] = self.buf[: self.filled]
        self.buf = buf
        self.mv = memoryview(buf)
        self.view = ffi.from_buffer("uint8_t[]", buf)

    def fill(self) -> None:
        """Read until the buffer is full or the file ends."""
        while not self.eof and self.filled < len(self.buf):
            got = self.f.readinto(self.mv[self.filled :])
            if not got:
                self.eof = True
            else:
                self.filled += got

    def advance(self, used: int) -> None:
        """Drop the first ``used`` bytes (their chunks are out)."""
        if used == 0:
            self._alloc(2 * len(self.buf))
            return
        self.buf[: self.filled - used] = self.buf[used : self.filled]
        self.base += used
        self.filled -= used


def _file_chunks(path: str | os.PathLike[str], keep: _Keep, window: int) -> Iterator[tuple[int, int]]:
    cdc = keep.ptr  # `keep` owns the state for as long as this generator runs
    consumed = ffi.new("size_t *")
    with open(path, "rb", buffering=0) as f:
        w = _FileWindow(f, window)
        while True:
            w.fill()
            cap = lib.cb_cdc_max_chunks(cdc, w.filled) + 1
            ends = ffi.new("uint64_t[]", cap)
            count = lib.cb_cdc_chunk(cdc, w.view, w.filled, int(w.eof), 1, ends, cap, consumed)
            prev = 0
            for e in ffi.unpack(ends, count):
                yield w.base + prev, e - prev
                prev = e
            if w.eof:
                return
            w.advance(consumed[0])


def _fixed_ends(n: int, size: int) -> Any:
    ends = array("Q", range(size, n, size))
    if n:
        ends.append(n)
    return ends


def hash_file_fixed(
    path: str | os.PathLike[str], fixed_size: int, *, algo: Algo = "sha256", threads: int = 1
) -> tuple[int, bytes]:
    """Hash a file's fixed-size chunks in native code, reading it with ``pread`` on every thread.

    Faster than :func:`chunk_and_hash` on a path for fixed chunks: the copy out of the page cache
    runs on the hashing threads instead of one reader in front of them, and no window is held.

    Args:
        path: a regular file.
        fixed_size: the chunk size in bytes (the last chunk may be shorter), 1 .. 2**30.
        algo: ``"sha256"`` or ``"blake3"``.
        threads: reading and hashing threads; the result is the same for any value.

    Returns:
        ``(size, digests)``: the file's size when opened and the 32-byte digests of its chunks,
        concatenated in order (none for an empty file).

    Raises:
        ValueError: bad ``algo``, ``fixed_size`` or ``threads``.
        OSError: the file cannot be read, or it changed size while it was read (``errno.ESTALE``).
    """
    if algo not in _ALGOS:
        raise ValueError(f"algo must be 'sha256' or 'blake3' (got {algo!r})")
    if not isinstance(fixed_size, int) or isinstance(fixed_size, bool) or not 1 <= fixed_size <= 1 << 30:
        raise ValueError(f"fixed_size must be an int in 1..2**30 (got {fixed_size!r})")
    require_hashes("hash_file_fixed")
    nthreads = _threads(threads)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        count = -(-size // fixed_size)
        digests = bytearray(32 * count)
        err = ffi.new("int *")
        rc = lib.cb_hash_file_fixed(fd, size, fixed_size, _ALGOS[algo], nthreads,
                                    ffi.from_buffer(digests) if count else ffi.NULL, err)
        if rc == -3 or (rc == 0 and os.fstat(fd).st_size != size):
            raise OSError(errno.ESTALE, "the file changed size while it was being read", os.fspath(path))
        if rc == -4:
            raise OSError(err[0], os.strerror(err[0]), os.fspath(path))
        if rc == -5:
            raise MemoryError("cb_hash_file_fixed: out of memory")
        if rc != 0:
            raise RuntimeError(f"cb_hash_file_fixed failed ({rc})")
        return size, bytes(digests)
    finally:
        os.close(fd)


def chunk_and_hash(
    src: BytesLike | str | os.PathLike[str],
    params: ChunkerParams | None = None,
    *,
    fixed_size: int | None = None,
    algo: Algo = "sha256",
    threads: int = 1,
) -> list[tuple[int, int, bytes]]:
    """Chunk a buffer or file and hash every chunk, in native code.

    Args:
        src: a bytes-like object, or a path (``str``/``os.PathLike``) to a file, which is read in
            64 MiB windows (never whole).
        params: FastCDC parameters (defaults when ``None``); not allowed with ``fixed_size``.
        fixed_size: cut fixed-size chunks of this many bytes instead (the last may be shorter):
            what UnixFS's default ``size-262144`` chunker does.
        algo: ``"sha256"`` or ``"blake3"`` (32-byte digests).
        threads: threads for cutting and hashing; the result is the same for any value.

    Returns:
        ``(offset, length, digest)`` for every chunk, in order.

    Raises:
        ValueError: bad ``algo``, ``fixed_size``, ``threads``, or both ``params`` and ``fixed_size``.
        OSError: ``src`` is a path that cannot be read.
    """
    if algo not in _ALGOS:
        raise ValueError(f"algo must be 'sha256' or 'blake3' (got {algo!r})")
    require_hashes("chunk_and_hash")
    nthreads = _threads(threads)
    if fixed_size is not None:
        if params is not None:
            raise ValueError("give either params (content-defined) or fixed_size, not both")
        if not isinstance(fixed_size, int) or isinstance(fixed_size, bool) or fixed_size < 1:
            raise ValueError(f"fixed_size must be an int >= 1 (got {fixed_size!r})")
    cutter = _Cutter(params or ChunkerParams(), fixed_size, nthreads)
    out: list[tuple[int, int, bytes]] = []
    if isinstance(src, (str, os.PathLike)):
        _file_windows(src, cutter, _ALGOS[algo], out)
    else:
        view = buffer_of(src)
        cutter.cut_and_hash(view, len(view), True, _ALGOS[algo], 0, out)
    return out


class _Cutter:
    """Cuts one window (CDC or fixed-size) and hashes its chunks; keeps the C state alive."""

    def __init__(self, params: ChunkerParams, fixed_size: int | None, threads: int) -> None:
        self.fixed = fixed_size
        self.keep = _state(params) if fixed_size is None else None
        self.max_size = params.max_size if fixed_size is None else fixed_size
        self.threads = threads
        self.consumed = ffi.new("size_t *")

    def cut_and_hash(self, view: Any, n: int, eof: bool, algo: int, base: int,
                     out: list[tuple[int, int, bytes]]) -> int:
        """Append the window's decided chunks (offsets + ``base``) to ``out``; returns bytes used."""
        if self.fixed is not None:
            used = n if eof else n - n % self.fixed
            fixed = _fixed_ends(used, self.fixed)
            ends, count = ffi.from_buffer("uint64_t[]", fixed), len(fixed)
        else:
            assert self.keep is not None
            cap = lib.cb_cdc_max_chunks(self.keep.ptr, n) + 1
            ends = ffi.new("uint64_t[]", cap)
            count = lib.cb_cdc_chunk(self.keep.ptr, view, n, int(eof), self.threads, ends, cap, self.consumed)
            if count == _SIZE_MAX:
                raise MemoryError("cb_cdc_chunk: out of memory")
            used = self.consumed[0]
        if count == 0:
            return used
        digests = bytearray(32 * count)
        rc = lib.cb_hash_chunks(view, used, ends, count, algo, self.threads, ffi.from_buffer(digests))
        if rc != 0:
            raise RuntimeError(f"cb_hash_chunks failed ({rc})")
        prev = 0
        for i, e in enumerate(ffi.unpack(ends, count)):
            out.append((base + prev, e - prev, bytes(digests[32 * i : 32 * i + 32])))
            prev = e
        return used


def _file_windows(path: str | os.PathLike[str], cutter: _Cutter, algo: int,
                  out: list[tuple[int, int, bytes]]) -> None:
    if cutter.fixed is not None:
        window = max(_HASH_WINDOW // cutter.fixed, 1) * cutter.fixed
    else:
        # Room for every thread's share to hold several max-size chunks (the parallel search).
        window = max(_HASH_WINDOW, 8 * cutter.max_size * cutter.threads)
    with open(path, "rb", buffering=0) as f:
        w = _FileWindow(f, window)
        while True:
            w.fill()
            used = cutter.cut_and_hash(w.view, w.filled, w.eof, algo, w.base, out)
            if w.eof:
                return
            w.advance(used)
