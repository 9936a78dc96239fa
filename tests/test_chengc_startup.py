"""What a chengc cache miss imports (issue 19, "chengc start-up"): a real process, after the package
flow was verified once, rebuilds an edited source without loading the modules it avoids on purpose
(dataclasses with inspect, typing, argparse with gettext, hashlib's OpenSSL binding, and sqlite3:
the packed store's index stays off this path); and the
start-up SHA-256 helper gives hashlib's digests on both sides of its budget."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers_chengc import install_fake
from helpers_trust import Cli, app_manifest, key, publish_dir
from hypothesis import given
from hypothesis import strategies as st

from cheng_build.core import sha256 as sha_mod

AVOIDED = ("dataclasses", "inspect", "typing", "argparse", "gettext", "_hashlib", "sqlite3")
FS = "pkg://cheng/fs"


@pytest.fixture
def tcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    c = Cli(tmp_path, monkeypatch, capfd)
    monkeypatch.setenv("CHENG_COMPILER", str(install_fake(tmp_path / "bin")))
    return c


def test_a_cache_miss_imports_none_of_the_avoided_modules(tcli: Cli, tmp_path: Path) -> None:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import parse_cid
    from cheng_build.cas.materialize import materialize
    from cheng_build.trust.registry_ops import append_checkpoint

    reg = tmp_path / "registry.jsonl"
    good = publish_dir(tmp_path, reg, key("node:alice"), FS, {"src/fs.cheng": "fn Read(): int32 = 1\n"})
    materialize(Blockstore(tmp_path / "chengcache"), parse_cid(good), tmp_path / "chengcache")
    append_checkpoint(reg, key("op:main"), ttl_s=3600)
    app_manifest(tmp_path, [FS], ["cheng/fs/fs"])
    env = {k: os.environ[k] for k in ("CHENG_COMPILER", "HOME", "PKG_TRUST_DIR") if k in os.environ}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    argv = [sys.executable, "-X", "importtime", "-m", "cheng_build.cli.chengc", "app.cheng",
            "--manifest:cheng-package.toml", "--registry:registry.jsonl"]
    time.sleep(2.2)  # past the racy window: files this new are re-read on every build (as git does)
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    first = run()
    assert first.returncode == 0, first.stderr
    app = tmp_path / "app.cheng"
    app.write_text(app.read_text() + "// edited: a cache miss\n")
    miss = run()
    assert miss.returncode == 0, miss.stderr
    assert "fake-chengc: compiled" in miss.stdout + miss.stderr  # it did compile again
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \| +(\S+)$", miss.stderr, re.M))
    assert "cheng_build.build.driver" in imported
    assert sorted(set(AVOIDED) & imported) == [], miss.stderr


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_start_up_sha256_is_hashlib_sha256(chunks: list[bytes]) -> None:
    for data in chunks:
        assert sha_mod.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
        assert sha_mod.sha256(memoryview(data)).digest() == hashlib.sha256(data).digest()


def test_start_up_sha256_past_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sha_mod, "_left", 10)
    small, big = b"0123456789", b"x" * 11
    assert sha_mod.sha256(small).hexdigest() == hashlib.sha256(small).hexdigest()
    assert sha_mod._left == 0
    assert sha_mod.sha256(big).hexdigest() == hashlib.sha256(big).hexdigest()  # through hashlib
    assert sha_mod.sha256().hexdigest() == hashlib.sha256().hexdigest()


_OLD_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f\ud800-\udfff]*')


def _old_string(s: str) -> str:
    """meta_toml._string before issue 19 (regex fast path), the oracle for the new check."""
    if _OLD_PLAIN.fullmatch(s):
        return f'"{s}"'
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            raise ValueError("surrogate")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())  # surrogates too


@given(st.text(alphabet=ANY_CHAR, max_size=30))
def test_meta_toml_strings_as_before(s: str) -> None:
    from cheng_build.build.meta_toml import _string

    try:
        want = _old_string(s)
    except ValueError:
        with pytest.raises(ValueError):
            _string(s)
        return
    assert _string(s) == want
