"""Config precedence CLI > PKG_* env > file > level defaults > defaults, with sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheng_build.core.errors import InputError, PolicyError, UsageError
from cheng_build.trust.config import Level, Mode, load_config

FILE = """
[remote]
mode = "p2p"
peers = ["/ip4/1.2.3.4/tcp/4001", "/dns4/node.example/tcp/4001"]
allow = ["/dns4/node.example/tcp/4001"]
deny = ["/ip4/5.6.7.8/tcp/4001"]
http_fallback = false

[security]
level = "L1"
"""


def cfg_file(tmp_path: Path, text: str = FILE) -> Path:
    p = tmp_path / "cheng-pkg-config.toml"
    p.write_text(text)
    return p


def test_defaults_are_l1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    c = load_config(env={})
    assert c.level is Level.L1 and c.mode is Mode.AUTO
    assert (c.http_fallback, c.require_signature, c.require_registry_match) == (False, True, True)
    assert c.sources["require_signature"] == "level L1" and c.sources["level"] == "default"
    assert c.config_file is None


def test_precedence_and_sources(tmp_path: Path) -> None:
    f = cfg_file(tmp_path)
    c = load_config(env={}, config_path=f)
    assert c.mode is Mode.P2P and c.sources["mode"] == f"file {f}"
    assert c.peers == ("/ip4/1.2.3.4/tcp/4001", "/dns4/node.example/tcp/4001")
    env = {"PKG_MODE": "local", "PKG_PEERS": "/ip4/9.9.9.9/tcp/1, /ip4/8.8.8.8/tcp/1",
           "PKG_HTTP_FALLBACK": "1"}
    c = load_config(env=env, config_path=f)
    assert c.mode is Mode.LOCAL and c.sources["mode"] == "env PKG_MODE"
    assert c.peers == ("/ip4/9.9.9.9/tcp/1", "/ip4/8.8.8.8/tcp/1")
    assert c.http_fallback is True
    c = load_config({"mode": "auto", "peers": "/ip4/7.7.7.7/tcp/1"}, env=env, config_path=f)
    assert c.mode is Mode.AUTO and c.sources["mode"] == "cli"
    assert c.peers == ("/ip4/7.7.7.7/tcp/1",) and c.sources["peers"] == "cli"
    assert c.allow == ("/dns4/node.example/tcp/4001",)  # untouched layers stay from the file


def test_level_defaults_and_l2_refuses_weakening(tmp_path: Path) -> None:
    c = load_config({"level": "L0"}, env={}, config_path=cfg_file(tmp_path, ""))
    assert (c.http_fallback, c.require_signature, c.require_registry_match) == (True, False, False)
    c = load_config({"level": "L0"}, env={"PKG_REQUIRE_SIGNATURE": "1"}, config_path=cfg_file(tmp_path, ""))
    assert c.require_signature is True and c.sources["require_signature"] == "env PKG_REQUIRE_SIGNATURE"
    with pytest.raises(PolicyError, match="require_signature cannot be off at L2"):
        load_config({"level": "L2"}, env={"PKG_REQUIRE_SIGNATURE": "0"},
                    config_path=cfg_file(tmp_path, ""))
    with pytest.raises(PolicyError, match="http_fallback cannot be on at L2"):
        load_config(env={"PKG_LEVEL": "L2", "PKG_HTTP_FALLBACK": "1"}, config_path=cfg_file(tmp_path, ""))


def test_peer_filtering_by_level(tmp_path: Path) -> None:
    f = cfg_file(tmp_path)
    c = load_config(env={}, config_path=f)
    assert c.permitted_peers() == ("/dns4/node.example/tcp/4001",)
    assert not c.peer_allowed("/ip4/5.6.7.8/tcp/4001")
    c = load_config({"allow": ""}, env={}, config_path=f)
    assert c.permitted_peers() == c.peers  # empty allow-list: no filter at L1
    c = load_config({"allow": "", "level": "L2"}, env={}, config_path=f)
    assert c.permitted_peers() == ()  # ... but L2 allows only allow-listed peers


@pytest.mark.parametrize(("text", "err", "msg"), [
    ("[remote]\nmode = 'fast'\n", UsageError, "unknown mode"),
    ("[remote]\nhttp_fallback = 'maybe'\n", UsageError, "not a boolean"),
    ("[remote]\nspeed = 1\n", InputError, "unknown key remote.speed"),
    ("[extra]\n", InputError, "unknown section"),
    ("[remote\n", InputError, "not valid TOML"),
    ("[security]\nlevel = 'L9'\n", UsageError, "unknown security level"),
])
def test_bad_config_values(tmp_path: Path, text: str, err: type[Exception], msg: str) -> None:
    with pytest.raises(err, match=msg):
        load_config(env={}, config_path=cfg_file(tmp_path, text))


def test_template_parses(tmp_path: Path) -> None:
    template = Path(__file__).resolve().parents[1] / "configs" / "cheng-pkg-config.toml"
    c = load_config(env={}, config_path=template)
    assert c.level is Level.L1 and c.require_signature is True


def test_toolchain_compiler_is_accepted_and_relative_to_the_file(tmp_path: Path) -> None:
    # DESIGN.md section 4: chengc reads [toolchain] compiler from this same file, so a config
    # carrying it must load for every other command too (cheng-pkg verify, chengc's package flow).
    (tmp_path / "etc").mkdir()
    f = cfg_file(tmp_path / "etc", FILE + '\n[toolchain]\ncompiler = "bin/chengc"\n')
    c = load_config(env={}, config_path=f)
    assert c.compiler == tmp_path / "etc" / "bin" / "chengc"
    assert c.sources["compiler"] == f"file {f}"
    assert ("compiler", str(tmp_path / "etc" / "bin" / "chengc"), f"file {f}") in c.rows()
    c = load_config(env={"CHENG_COMPILER": "/opt/cc"}, config_path=f)
    assert c.compiler == Path("/opt/cc") and c.sources["compiler"] == "env CHENG_COMPILER"
    c = load_config(env={}, config_path=cfg_file(tmp_path, '[toolchain]\ncompiler = "/abs/chengc"\n'))
    assert c.compiler == Path("/abs/chengc")
    assert load_config(env={}, config_path=cfg_file(tmp_path, "")).compiler is None


@pytest.mark.parametrize(("text", "err", "msg"), [
    ("[toolchain]\ncompiler = 3\n", UsageError, "compiler must be a path"),
    ("[toolchain]\ncompiler = ''\n", UsageError, "compiler path is empty"),
    ("[toolchain]\ncc = 'gcc'\n", InputError, "unknown key toolchain.cc"),
    ("toolchain = 'chengc'\n", InputError, r"\[toolchain\] is not a table"),
])
def test_bad_toolchain_values(tmp_path: Path, text: str, err: type[Exception], msg: str) -> None:
    with pytest.raises(err, match=msg):
        load_config(env={}, config_path=cfg_file(tmp_path, text))
