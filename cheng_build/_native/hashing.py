"""SHA-256 and BLAKE3 over the native library: one-shot functions and streaming hashers.

The C kernels pick their fastest backend at run time (SHA-NI, AVX2, SSE4.1, portable);
:func:`backends` says which one runs. Buffers are passed without copying.
"""

from __future__ import annotations

from cheng_build._native._loader import HAVE_HASHES, BytesLike, aligned, buffer_of, ffi, lib, require_hashes


def sha256(buf: BytesLike) -> bytes:
    """SHA-256 digest (32 bytes) of a bytes-like object."""
    require_hashes("sha256")
    view = buffer_of(buf)
    out = ffi.new("uint8_t[32]")
    lib.cb_sha256(view, len(view), out)
    return bytes(ffi.buffer(out))


def _key_context(key: BytesLike | None, context: str | bytes | None) -> tuple[bytes | None, bytes | None]:
    if key is not None and context is not None:
        raise ValueError("blake3: give a key or a derive-key context, not both")
    if key is not None:
        key = bytes(buffer_of(key))
        if len(key) != 32:
            raise ValueError(f"blake3: key must be 32 bytes (got {len(key)})")
    if context is not None:
        context = context.encode("utf-8") if isinstance(context, str) else bytes(buffer_of(context))
    return key, context


def blake3(
    buf: BytesLike, *, key: BytesLike | None = None, context: str | bytes | None = None, length: int = 32
) -> bytes:
    """BLAKE3 of a bytes-like object: plain, keyed (``key``, 32 bytes) or derive-key (``context``).

    Args:
        buf: the input.
        key: 32-byte key for keyed hashing.
        context: context string for derive-key mode (``buf`` is then the key material).
        length: output length in bytes (extendable output).

    Raises:
        ValueError: bad key length, both key and context, or a negative length.
    """
    if key is None and context is None and length == 32:
        require_hashes("blake3")
        view = buffer_of(buf)
        out = ffi.new("uint8_t[32]")
        lib.cb_blake3(view, len(view), out)
        return bytes(ffi.buffer(out))
    h = Blake3(key=key, context=context)
    h.update(buf)
    return h.digest(length)


class Sha256:
    """Streaming SHA-256: ``update`` any number of times, ``digest`` at any point."""

    __slots__ = ("_ctx", "_owner", "_size")

    def __init__(self, data: BytesLike | None = None) -> None:
        require_hashes("Sha256")
        self._size = int(lib.cb_sha256_ctx_size())
        self._owner, ptr = aligned(self._size)
        self._ctx = ffi.cast("cb_sha256_ctx *", ptr)
        lib.cb_sha256_init(self._ctx)
        if data is not None:
            self.update(data)

    def update(self, data: BytesLike) -> None:
        """Absorb a bytes-like object."""
        view = buffer_of(data)
        lib.cb_sha256_update(self._ctx, view, len(view))

    def copy(self) -> Sha256:
        """An independent hasher with the same state."""
        other = Sha256.__new__(Sha256)
        other._size = self._size
        other._owner, ptr = aligned(self._size)
        ffi.memmove(ptr, self._ctx, self._size)
        other._ctx = ffi.cast("cb_sha256_ctx *", ptr)
        return other

    def digest(self) -> bytes:
        """The digest of everything absorbed so far (the hasher stays usable)."""
        out = ffi.new("uint8_t[32]")
        # Finalising pads the state in place: do it on a copy, held in a name so its memory
        # lives through the call (a cast pointer does not keep its owner alive).
        scratch = self.copy()
        lib.cb_sha256_final(scratch._ctx, out)
        return bytes(ffi.buffer(out))

    def hexdigest(self) -> str:
        """:meth:`digest` as lowercase hex."""
        return self.digest().hex()


class Blake3:
    """Streaming BLAKE3 (plain, keyed or derive-key); ``digest`` does not end the stream."""

    __slots__ = ("_h", "_owner")

    def __init__(
        self,
        data: BytesLike | None = None,
        *,
        key: BytesLike | None = None,
        context: str | bytes | None = None,
    ) -> None:
        require_hashes("Blake3")
        key, ctx = _key_context(key, context)
        self._owner, ptr = aligned(int(lib.cb_blake3_hasher_size()))
        self._h = ffi.cast("cb_blake3_hasher *", ptr)
        if key is not None:
            lib.cb_blake3_init_keyed(self._h, key)
        elif ctx is not None:
            lib.cb_blake3_init_derive_key(self._h, ctx, len(ctx))
        else:
            lib.cb_blake3_init(self._h)
        if data is not None:
            self.update(data)

    def update(self, data: BytesLike) -> None:
        """Absorb a bytes-like object."""
        view = buffer_of(data)
        lib.cb_blake3_update(self._h, view, len(view))

    def digest(self, length: int = 32) -> bytes:
        """``length`` bytes of output for everything absorbed so far.

        Raises:
            ValueError: ``length`` is negative.
        """
        if not isinstance(length, int) or length < 0:
            raise ValueError(f"blake3: length must be an int >= 0 (got {length!r})")
        out = ffi.new("uint8_t[]", max(length, 1))
        lib.cb_blake3_finalize(self._h, out, length)
        return bytes(ffi.buffer(out, length))

    def hexdigest(self, length: int = 32) -> str:
        """:meth:`digest` as lowercase hex."""
        return self.digest(length).hex()


def backends() -> dict[str, str]:
    """Which implementation runs each kernel on this CPU, e.g. ``{"sha256": "shani", ...}``."""
    out = {"cdc": "portable", "simhash": "portable"}
    if HAVE_HASHES:
        out["sha256"] = ffi.string(lib.cb_sha256_backend()).decode()
        out["blake3"] = ffi.string(lib.cb_blake3_backend()).decode()
    else:
        out["sha256"] = out["blake3"] = "unavailable"
    return out


def force_backend(algo: str, name: str) -> bool:
    """Testing hook: make ``algo`` ("sha256"/"blake3") use backend ``name``; False if unavailable."""
    require_hashes("force_backend")
    fn = {"sha256": lib.cb_sha256_force_backend, "blake3": lib.cb_blake3_force_backend}[algo]
    return int(fn(name.encode())) == 0
