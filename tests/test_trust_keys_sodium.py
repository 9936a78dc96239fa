"""trust.keys signs through libsodium directly: the same public keys and signatures as PyNaCl's
``nacl.signing`` (the oracle), and a publish's key loading and signing never import it."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey, VerifyKey

from cheng_build.trust.keys import KeyPair, verify_signature


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=5000))
def test_same_keys_and_signatures_as_nacl_signing(seed: bytes, message: bytes) -> None:
    key = KeyPair.from_seed("a", seed)
    oracle = SigningKey(seed)
    assert key.public == bytes(oracle.verify_key)
    sig = key.sign(message)
    assert sig == "ed25519:" + base64.b64encode(oracle.sign(message).signature).decode()
    VerifyKey(key.public).verify(message, base64.b64decode(sig.removeprefix("ed25519:")))
    verify_signature(key.pub_key, message, sig)


@pytest.mark.parametrize("seed", [b"", b"x" * 31, b"x" * 33])
def test_a_seed_of_the_wrong_length_is_refused(seed: bytes) -> None:
    with pytest.raises(ValueError):
        KeyPair.from_seed("a", seed)


def test_signing_does_not_import_nacl_signing() -> None:
    code = (
        "import sys\n"
        "from cheng_build.trust.keys import KeyPair, verify_signature\n"
        "k = KeyPair.from_seed('a', bytes(range(32)))\n"
        "verify_signature(k.pub_key, b'm', k.sign(b'm'))\n"
        "assert 'nacl.signing' not in sys.modules and 'nacl.bindings' not in sys.modules\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == 0, p.stderr
