"""Noise transport messages opened and sealed straight from and into buffers.

Part of the door to py-libp2p: only ``libp2p_adapter`` and ``libp2p_rx`` import this module.

py-libp2p encrypts with noiseprotocol 0.3, whose cipher state wraps ``cryptography``'s
ChaCha20-Poly1305: each message goes through three layers of Python and must be a ``bytes``
object (a copy of every received message), and each sealed message is a new ``bytes`` that the
sender then copies into its send buffer. ``DirectOpen`` and ``DirectSeal`` make the same AEAD
call with the same key and the same nonce sequence (the cipher state's own counter, advanced as
noise advances it), reading from a view of the received bytes and, where ``cryptography`` has
``encrypt_into``, sealing into the send buffer. They are used only when the cipher state is the
one this was written against; otherwise noise's own calls run.
"""

from __future__ import annotations

from typing import Any

# noiseprotocol's limit: a cipher state refuses the nonce 2**64 - 1.
_MAX_NONCE = 2 ** 64 - 1
# ChaCha20-Poly1305's authentication tag, added to every sealed message.
TAG_SIZE = 16


def _nonce(n: int) -> bytes:
    # Noise's ChaCha20-Poly1305 nonce: 32 zero bits, then the 64-bit counter little-endian.
    return b"\0\0\0\0" + n.to_bytes(8, "little")


class DirectOpen:
    """Decrypts noise transport messages from views (``cipher_state_decrypt`` of a session)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def __call__(self, message: memoryview) -> bytes:
        state = self.state
        n = state.n
        if n >= _MAX_NONCE:
            raise ValueError("noise nonce exhausted")
        # The key object is looked up on each call: a rekey (never done by libp2p) replaces it.
        out: bytes = state.cipher.cipher.decrypt(_nonce(n), message, None)
        state.n = n + 1
        return out


class DirectSeal:
    """Encrypts noise transport messages into a caller's buffer (``cipher_state_encrypt``)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def __call__(self, plain: memoryview, out: memoryview) -> None:
        """Seal ``plain`` into ``out`` (exactly ``len(plain) + TAG_SIZE`` bytes)."""
        state = self.state
        n = state.n
        if n >= _MAX_NONCE:
            raise ValueError("noise nonce exhausted")
        state.cipher.cipher.encrypt_into(_nonce(n), plain, None, out)
        state.n = n + 1


def _state(noise: Any, which: str) -> Any:
    """The noiseprotocol cipher state ``which`` of py-libp2p's noise transport ``noise``, if it
    is ChaCha20-Poly1305 over ``cryptography`` with a key (what this was written against)."""
    try:
        from noise.backends.default.ciphers import ChaCha20Cipher

        state = getattr(noise.noise_state.noise_protocol, which)
        cipher = state.cipher
    except (ImportError, AttributeError):
        return None
    if type(cipher) is not ChaCha20Cipher or not isinstance(state.n, int) or not state.has_key():
        return None
    return state


def direct_decrypt(noise: Any) -> DirectOpen | None:
    state = _state(noise, "cipher_state_decrypt")
    if state is None or not hasattr(state.cipher.cipher, "decrypt"):
        return None
    return DirectOpen(state)


def direct_encrypt(noise: Any) -> DirectSeal | None:
    state = _state(noise, "cipher_state_encrypt")
    if state is None or not hasattr(state.cipher.cipher, "encrypt_into"):
        return None  # cryptography before encrypt_into: noise's own encrypt runs
    return DirectSeal(state)
