"""Key files: generation, mode 0600, overwrite protection, env:VAR, tampering."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cheng_build.core.errors import SignatureError, UsageError
from cheng_build.trust.keys import (
    KeyFileError,
    KeyPair,
    load_key,
    load_public_key,
    verify_signature,
    write_keyfile,
)


def test_keyfile_roundtrip_mode_and_overwrite(tmp_path: Path) -> None:
    k = KeyPair.generate("node:alice")
    f = tmp_path / "k.json"
    write_keyfile(k, f)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    doc = json.loads(f.read_text())
    assert set(doc) == {"author_id", "pub_key", "priv_key"} and doc["pub_key"].startswith("ed25519:")
    assert load_key(str(f)) == k
    with pytest.raises(UsageError, match="already exists"):
        write_keyfile(KeyPair.generate("x"), f)
    write_keyfile(KeyPair.generate("y"), f, force=True)
    assert load_key(str(f)).author_id == "y"
    assert "priv" not in repr(k) and k.seed.hex() not in repr(k)


def test_env_key_and_bare_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k = KeyPair.generate("node:ci")
    monkeypatch.setenv("CHENG_TEST_KEY", k.to_json())
    assert load_key("env:CHENG_TEST_KEY") == k
    monkeypatch.setenv("CHENG_TEST_KEY", json.loads(k.to_json())["priv_key"])
    assert load_key("env:CHENG_TEST_KEY", author_id="node:ci") == k
    with pytest.raises(KeyFileError, match="CHENG_TEST_MISSING is not set"):
        load_key("env:CHENG_TEST_MISSING")


def test_bad_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not found"):
        load_key(str(tmp_path / "none.json"))
    f = tmp_path / "k.json"
    f.write_text("{not json")
    os.chmod(f, 0o600)
    with pytest.raises(KeyFileError, match="not a key file"):
        load_key(str(f))
    a, b = KeyPair.generate("a"), KeyPair.generate("b")
    doc = json.loads(a.to_json())
    doc["pub_key"] = b.pub_key
    f.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="does not belong"):
        load_key(str(f))
    f.write_text(a.to_json())
    os.chmod(f, 0o644)
    with pytest.raises(KeyFileError, match="readable by other users"):
        load_key(str(f))
    assert load_public_key(str(f)) == a.pub_key


def test_signatures_verify_and_tampering_fails() -> None:
    k = KeyPair.generate("a")
    sig = k.sign(b"message")
    verify_signature(k.pub_key, b"message", sig)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(k.pub_key, b"messagf", sig)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(KeyPair.generate("b").pub_key, b"message", sig)
    with pytest.raises(SignatureError, match=r"not valid base64|has"):
        verify_signature(k.pub_key, b"message", "ed25519:!!!")
