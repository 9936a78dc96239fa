"""Ed25519 author and operator keys (PyNaCl): generate, store, load, sign, verify.

Key file format (JSON, one object, file mode 0600)::

    {"author_id": "node:alice",
     "pub_key": "ed25519:<base64 of the 32-byte public key>",
     "priv_key": "ed25519:<base64 of the 32-byte seed>"}

Signatures are ``"ed25519:<base64 of 64 bytes>"``. ``--priv:`` takes such a file, or ``env:VAR``
naming an environment variable holding either the whole JSON or just the ``priv_key`` value.

The verification hot path (a registry verify checks one signature per line) calls libsodium's
``crypto_sign_open`` through PyNaCl's own cffi binding with a reused output buffer: PyNaCl's
``VerifyKey.verify`` builds two Python objects and copies the message per call, which is a
measurable share of a ~60 us verification. Signing and deriving a public key from a seed go
through the same binding (``crypto_sign_seed_keypair``, ``crypto_sign``: the functions
``nacl.signing`` calls, so the same bytes): importing ``nacl.signing`` loads every PyNaCl binding
module (~3 ms), a tenth of a publish's start-up, for those two calls.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from functools import lru_cache
from pathlib import Path

from cheng_build.core.atomic import atomic_write_text
from cheng_build.core.errors import InputError, SignatureError, UsageError
from cheng_build.core.record import dataclass

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

ED25519_PREFIX = "ed25519:"
LOCAL_PREFIX = "local:"  # placeholder signatures written by the existing Cheng tooling


class KeyFileError(InputError):
    """A key file or ``env:VAR`` value is missing or malformed."""


def _b64(data: bytes) -> str:
    return ED25519_PREFIX + base64.b64encode(data).decode("ascii")


def decode_ed25519(text: object, *, size: int, what: str) -> bytes:
    """Decode ``ed25519:<base64>`` of exactly ``size`` bytes.

    Raises:
        SignatureError: wrong prefix, bad base64 or wrong length.
    """
    if not isinstance(text, str) or not text.startswith(ED25519_PREFIX):
        raise SignatureError(f"{what} is not an ed25519:<base64> value",
                             why=f"got {str(text)[:40]!r}")
    try:
        raw = base64.b64decode(text[len(ED25519_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what} is not valid base64") from None
    if len(raw) != size:
        raise SignatureError(f"{what} has {len(raw)} bytes, expected {size}")
    return raw


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An author's (or the registry operator's) Ed25519 key pair."""

    author_id: str
    seed: bytes  # the 32-byte private seed
    public: bytes  # the 32-byte public key

    @classmethod
    def generate(cls, author_id: str) -> KeyPair:
        """A fresh random key pair."""
        from nacl.signing import SigningKey

        sk = SigningKey.generate()
        return cls(author_id, bytes(sk), bytes(sk.verify_key))

    @classmethod
    def from_seed(cls, author_id: str, seed: bytes) -> KeyPair:
        """The key pair of a 32-byte seed.

        Raises:
            ValueError: the seed is not 32 bytes.
        """
        return cls(author_id, seed, _secret_key(seed)[32:])

    @property
    def pub_key(self) -> str:
        """``ed25519:<base64>`` of the public key, as written in registry lines and locks."""
        return _b64(self.public)

    def sign(self, message: bytes) -> str:
        """Sign ``message``; returns ``ed25519:<base64 signature>``."""
        ffi, lib = _sodium()
        signed = ffi.new("unsigned char[]", 64 + len(message))
        lib.crypto_sign(signed, ffi.NULL, message, len(message), _secret_key(self.seed))
        return _b64(ffi.buffer(signed, 64)[:])  # crypto_sign writes signature || message

    def to_json(self) -> str:
        """The key file's JSON text."""
        return json.dumps({"author_id": self.author_id, "pub_key": self.pub_key,
                           "priv_key": _b64(self.seed)}, indent=2) + "\n"

    def __repr__(self) -> str:  # never print the seed
        return f"KeyPair(author_id={self.author_id!r}, pub_key={self.pub_key!r})"


_lib: tuple[Any, Any] | None = None


def _sodium() -> tuple[Any, Any]:
    """PyNaCl's cffi binding of libsodium (``ffi``, ``lib``), initialised once."""
    global _lib
    if _lib is None:
        from nacl._sodium import ffi, lib

        if lib.sodium_init() < 0:  # as nacl.bindings does on import: 0 or 1 is fine
            raise RuntimeError("libsodium could not be initialised")
        _lib = (ffi, lib)
    return _lib


@lru_cache(maxsize=64)
def _secret_key(seed: bytes) -> bytes:
    """libsodium's 64-byte Ed25519 secret key of ``seed``: the seed, then the public key."""
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise ValueError("an Ed25519 seed is exactly 32 bytes")
    ffi, lib = _sodium()
    public = ffi.new("unsigned char[]", 32)
    secret = ffi.new("unsigned char[]", 64)
    if lib.crypto_sign_seed_keypair(public, secret, seed) != 0:
        raise RuntimeError("libsodium could not derive a key pair")
    return bytes(ffi.buffer(secret, 64))


def write_keyfile(key: KeyPair, path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Write ``key`` to ``path`` atomically with mode 0600.

    Raises:
        UsageError: the file exists and ``force`` is false.
    """
    target = Path(path)
    # lexists: a dangling symlink is something there too; replacing it silently surprises.
    if os.path.lexists(target) and not force:
        raise UsageError(f"{target} already exists",
                         why="overwriting a key file loses the key it holds",
                         how="choose another --out: path, or pass --force to replace it")
    atomic_write_text(target, key.to_json(), mode=0o600)


def parse_keyfile(text: str, *, origin: str, author_id: str | None = None) -> KeyPair:
    """Parse a key file's text (or a bare ``ed25519:`` private seed).

    Raises:
        KeyFileError: not a key file, or its public key does not match its private key.
    """
    stripped = text.strip()
    if stripped.startswith(ED25519_PREFIX):
        obj: dict[str, Any] = {"priv_key": stripped}
    else:
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise KeyFileError(f"{origin} is not a key file",
                               why=f"invalid JSON: {exc.msg} at line {exc.lineno}",
                               how="create one with 'cheng-registry keygen --out:<file>'") from None
        if not isinstance(obj, dict):
            raise KeyFileError(f"{origin} is not a key file", why="expected a JSON object")
    try:
        seed = decode_ed25519(obj.get("priv_key"), size=32, what=f"priv_key in {origin}")
    except SignatureError as exc:
        raise KeyFileError(exc.what, how="create one with 'cheng-registry keygen --out:<file>'") from None
    aid = obj.get("author_id") or author_id or ""
    if not isinstance(aid, str):
        raise KeyFileError(f"author_id in {origin} is not a string")
    key = KeyPair.from_seed(aid, seed)
    if "pub_key" in obj and obj["pub_key"] != key.pub_key:
        raise KeyFileError(f"{origin}: pub_key does not belong to priv_key",
                           why="the file was edited or assembled from two keys")
    return key


# A key file is ~200 bytes; anything far bigger is not one (and is not read into memory).
_MAX_KEY_FILE = 64 * 1024


def _read_key_text(path: Path, st: os.stat_result) -> str:
    """Read a key file, refusing a directory, FIFO or device (a FIFO read would block forever)."""
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise OSError(f"{path} is {kind}")
    if st.st_size > _MAX_KEY_FILE:
        raise OSError(f"{st.st_size} bytes is too large for a key file (at most {_MAX_KEY_FILE})")
    return path.read_text(encoding="utf-8")


def load_key(spec: str, *, author_id: str | None = None) -> KeyPair:
    """Load a private key from a file path or ``env:VAR``.

    Args:
        spec: a key file path, or ``env:VAR`` (the variable holds the JSON or the ``priv_key``).
        author_id: used when the key material names none.

    Raises:
        KeyFileError: missing file or variable, unreadable, malformed.
    """
    if spec.startswith("env:"):
        var = spec[4:]
        value = os.environ.get(var)
        if not value:
            raise KeyFileError(f"environment variable {var} is not set",
                               how=f"export {var}=<key file JSON or ed25519:<base64 seed>>")
        return parse_keyfile(value, origin=f"${var}", author_id=author_id)
    path = Path(spec)
    try:
        st = path.stat()
        text = _read_key_text(path, st)
    except FileNotFoundError:
        raise KeyFileError(f"key file {spec} not found",
                           how="create one with 'cheng-registry keygen --out:<file>'") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {spec}", why=str(exc)) from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise KeyFileError(f"key file {spec} is readable by other users",
                           why=f"mode {stat.S_IMODE(st.st_mode):04o}; a private key must be 0600",
                           how=f"chmod 600 {spec}")
    return parse_keyfile(text, origin=spec, author_id=author_id)


def load_public_key(spec: str) -> str:
    """A public key from ``ed25519:<base64>`` text or a key file (only its ``pub_key`` is read).

    Raises:
        KeyFileError: neither a public key nor a readable key file.
    """
    if spec.startswith(ED25519_PREFIX):
        try:
            decode_ed25519(spec, size=32, what="public key")
        except SignatureError as exc:
            raise KeyFileError(exc.what) from None
        return spec
    try:
        p = Path(spec)
        obj = json.loads(_read_key_text(p, p.stat()))
    except FileNotFoundError:
        raise KeyFileError(f"key file {spec} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError(f"cannot read public key from {spec}", why=str(exc)) from None
    pub = obj.get("pub_key") if isinstance(obj, dict) else None
    if not isinstance(pub, str):
        raise KeyFileError(f"{spec} has no pub_key")
    return load_public_key(pub)


class Verifier:
    """Ed25519 verification with decoded keys cached and one reused output buffer.

    One instance per thread: the output buffer is not shared.
    """

    __slots__ = ("_buf", "_buflen", "_ffi", "_keys", "_lib", "_mlen")

    def __init__(self) -> None:
        from nacl._sodium import ffi, lib

        self._ffi = ffi
        self._lib = lib
        self._buflen = 4096
        self._buf = ffi.new("unsigned char[]", self._buflen)
        self._mlen = ffi.new("unsigned long long *")
        self._keys: dict[str, bytes] = {}

    def public(self, pub_key: str) -> bytes:
        """Decode (once) an ``ed25519:`` public key.

        Raises:
            SignatureError: malformed.
        """
        raw = self._keys.get(pub_key)
        if raw is None:
            raw = decode_ed25519(pub_key, size=32, what="pub_key")
            self._keys[pub_key] = raw
        return raw

    def check(self, pub: bytes, message: bytes, sig: bytes) -> bool:
        """True when ``sig`` (64 raw bytes) is ``pub``'s signature of ``message``."""
        sm = sig + message
        if len(sm) > self._buflen:
            self._buflen = max(len(sm), 2 * self._buflen)
            self._buf = self._ffi.new("unsigned char[]", self._buflen)
        return bool(self._lib.crypto_sign_open(self._buf, self._mlen, sm, len(sm), pub) == 0)

    def verify(self, pub_key: str, message: bytes, signature: str, *, what: str = "signature") -> None:
        """Check an ``ed25519:`` signature.

        Raises:
            SignatureError: malformed key or signature, or it does not verify.
        """
        pub = self.public(pub_key)
        sig = decode_ed25519(signature, size=64, what=what)
        if not self.check(pub, message, sig):
            raise SignatureError(f"{what} does not verify",
                                 why="the signed fields were changed, or another key signed them")


def verify_signature(pub_key: str, message: bytes, signature: str, *, what: str = "signature") -> None:
    """One-off form of :meth:`Verifier.verify`.

    Raises:
        SignatureError: malformed key or signature, or it does not verify.
    """
    Verifier().verify(pub_key, message, signature, what=what)
