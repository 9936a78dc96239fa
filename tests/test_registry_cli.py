"""``cheng-registry`` and ``cheng-pkg publish/config`` end to end, in process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers_packstore import tamper_block

from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import parse_cid
from cheng_build.cli import pkg, registry


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k in list(os.environ):
        if k.startswith("PKG_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PKG_TRUST_DIR", str(tmp_path / "trust"))
    (tmp_path / "pkg" / "src").mkdir(parents=True)
    (tmp_path / "pkg" / "src" / "a.cheng").write_text("fn Hello(x: int): int =\n    return x + 1\n")
    name_package(tmp_path, "pkg://cheng/hello")
    return tmp_path


def name_package(env: Path, package_id: str, version: str = "1.0.0") -> None:
    """Point pkg/'s manifest at ``package_id`` (publish refuses a directory without one); each
    release's version must follow the last (the manifest's version counts as --version)."""
    (env / "pkg" / "cheng-package.toml").write_text(f'package_id = "{package_id}"\nversion = "{version}"\n')


def run(capsys: pytest.CaptureFixture[str], tool, *argv: str) -> tuple[int, list[str], list[str]]:  # type: ignore[no-untyped-def]
    rc = tool.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err.splitlines()


def test_full_flow(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, registry, "keygen", "--out:alice.json", "--author:node:alice")
    assert rc == 0 and oct((env / "alice.json").stat().st_mode & 0o777) == "0o600"
    rc, _, err = run(capsys, registry, "keygen", "--out:alice.json")
    assert rc == 2 and err[0] == "keygen: alice.json already exists"
    run(capsys, registry, "keygen", "--out", "op.json", "--author=op:main")
    rc, out, _ = run(capsys, registry, "publish", "--package:pkg://cheng/hello", "--channel:edge",
                     "--epoch:1", "--src:pkg", "--priv:alice.json", "--version:1.0.0")
    assert rc == 0 and out[-1].startswith("bafy")
    cid = out[-1]
    assert (env / "build" / "cheng_registry" / "registry.jsonl").is_file()  # the default path
    name_package(env, "pkg://cheng/hello", "1.0.1")
    rc, out, _ = run(capsys, pkg, "publish", "--package:pkg://cheng/hello", "--channel:edge",
                     "--epoch:2", "--src:pkg", "--priv:alice.json", "--format:tar")
    assert rc == 0 and out[-1].startswith("bafk")
    rc, out, _ = run(capsys, registry, "resolve", "--package:pkg://cheng/hello", "--channel:edge",
                     "--format:json")
    head = json.loads("\n".join(out))
    assert rc == 0 and head["epoch"] == 2 and head["format"] == "tar" and head["parent"] == cid
    rc, out, _ = run(capsys, registry, "checkpoint", "--priv:op.json", "--ttl:3600")
    assert rc == 0 and len(out[-1]) == 64
    rc, out, _ = run(capsys, registry, "verify")
    assert rc == 0 and out[-1] == "ok"
    assert (env / "trust" / "checkpoints.json").is_file()
    rc, out, _ = run(capsys, registry, "prove", "--line:2", "--out:proof.json")
    assert rc == 0
    rc, out, _ = run(capsys, registry, "verify-proof", "proof.json", "--operator-key:op.json")
    assert rc == 0 and out[-1] == "ok"
    proof = json.loads((env / "proof.json").read_text())
    proof["leaf"] = proof["leaf"].replace('"epoch":2', '"epoch":9')
    (env / "proof.json").write_text(json.dumps(proof))
    rc, _, err = run(capsys, registry, "verify-proof", "--proof:proof.json")
    assert rc == 1 and err[0] == "verify-proof: line 2 is not in the checkpointed log"


def test_failures_name_the_line(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, registry, "keygen", "--out:a.json", "--author:node:a")
    run(capsys, registry, "keygen", "--out:m.json", "--author:node:m")
    for e in (1, 2, 3):
        name_package(env, "pkg://cheng/x", f"1.0.{e}")
        run(capsys, registry, "publish", "--package:pkg://cheng/x", "--channel:stable",
            f"--epoch:{e}", "--src:pkg", "--priv:a.json")
    name_package(env, "pkg://cheng/x", "1.0.4")
    rc, _, err = run(capsys, registry, "publish", "--package:pkg://cheng/x", "--channel:stable",
                     "--epoch:4", "--src:pkg", "--priv:m.json")
    assert rc == 1 and err[0] == "publish: namespace owned by node:a"
    reg = env / "build" / "cheng_registry" / "registry.jsonl"
    lines = reg.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"created_ts":"', b'"created_ts":"9', 1)
    reg.write_bytes(b"\n".join(lines))
    rc, _, err = run(capsys, registry, "verify")
    assert rc == 1 and err[0] == "verify: line 3: chain broken: prev does not match the digest of line 2"
    rc, _, err = run(capsys, registry, "publish", "--package:pkg://cheng/x", "--channel:edge")
    assert rc == 2 and err[0].startswith("publish: the following arguments are required")
    rc, _, err = run(capsys, registry, "verify", "--registry:nowhere.jsonl")
    assert rc == 1 and err[0] == "verify: registry nowhere.jsonl not found"


def test_rotate_and_revoke_cli(env: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    run(capsys, registry, "keygen", "--out:old.json", "--author:node:a")
    run(capsys, registry, "keygen", "--out:new.json", "--author:node:a")
    monkeypatch.setenv("CHENG_PUBLISH_KEY", (env / "old.json").read_text())
    rc, _, _ = run(capsys, registry, "publish", "--package:pkg://cheng/x", "--channel:edge",
                   "--epoch:1", "--file:pkg/src/a.cheng", "--priv:env:CHENG_PUBLISH_KEY")
    assert rc == 0
    rc, out, _ = run(capsys, registry, "rotate-key", "--package:pkg://cheng/x", "--priv:old.json",
                     "--new:new.json")
    assert rc == 0
    rc, _, err = run(capsys, registry, "publish", "--package:pkg://cheng/x", "--channel:edge",
                     "--epoch:2", "--file:pkg/src/a.cheng", "--priv:old.json")
    assert rc == 1 and err[0] == "publish: namespace owned by node:a"
    rc, _, _ = run(capsys, registry, "revoke-key", "--priv:new.json")
    assert rc == 0
    rc, _, err = run(capsys, registry, "publish", "--package:pkg://cheng/x", "--channel:edge",
                     "--epoch:3", "--file:pkg/src/a.cheng", "--priv:new.json")
    assert rc == 1 and err[0] == "publish: key revoked at line 3"
    rc, out, _ = run(capsys, registry, "verify")
    assert rc == 0 and out[-1] == "ok"


def test_config_show_sources(env: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    (env / "cheng-pkg-config.toml").write_text('[remote]\nmode = "p2p"\npeers = ["/ip4/1.2.3.4/tcp/1"]\n')
    monkeypatch.setenv("PKG_PEERS", "/ip4/5.5.5.5/tcp/1")
    rc, out, _ = run(capsys, pkg, "config", "show", "--level:L0")
    assert rc == 0
    rows = {line.split("=")[0].strip(): line for line in out}
    assert rows["mode"].endswith(f"(file {env / 'cheng-pkg-config.toml'})")
    assert "p2p" in rows["mode"]
    assert rows["peers"].endswith("(env PKG_PEERS)") and "/ip4/5.5.5.5/tcp/1" in rows["peers"]
    assert rows["level"].endswith("(cli)")
    assert rows["http_fallback"].endswith("(level L0)") and "true" in rows["http_fallback"]
    rc, out, _ = run(capsys, pkg, "config", "show", "--format:json")
    source = f"file {env / 'cheng-pkg-config.toml'}"
    assert json.loads("\n".join(out))["mode"] == {"value": "p2p", "source": source}
    rc, _, err = run(capsys, pkg, "config", "show", "--mode:warp")
    assert rc == 2 and err[0] == "config: --mode: unknown mode 'warp'"


def test_config_show_toolchain_compiler(env: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHENG_COMPILER", raising=False)
    cfg = env / "cheng-pkg-config.toml"
    cfg.write_text('[security]\nlevel = "L1"\n\n[toolchain]\ncompiler = "tools/chengc"\n')
    rc, out, err = run(capsys, pkg, "config", "show")
    assert rc == 0, err
    rows = {line.split("=")[0].strip(): line for line in out}
    assert str(env / "tools" / "chengc") in rows["compiler"]
    assert rows["compiler"].endswith(f"(file {cfg})")
    rc, out, _ = run(capsys, pkg, "config", "show", "--format:json")
    assert json.loads("\n".join(out))["compiler"] == {"value": str(env / "tools" / "chengc"),
                                                      "source": f"file {cfg}"}


def test_l2_writes_the_audit_log(env: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run(capsys, registry, "keygen", "--out:a.json", "--author:node:a")
    run(capsys, registry, "keygen", "--out:op.json", "--author:op:main")
    name_package(env, "pkg://cheng/x")
    run(capsys, registry, "publish", "--package:pkg://cheng/x", "--channel:edge", "--epoch:1",
        "--src:pkg", "--priv:a.json")
    audit = env / "audit.jsonl"
    monkeypatch.setenv("PKG_AUDIT_LOG", str(audit))
    rc, _, err = run(capsys, registry, "verify", "--level:L2")
    assert rc == 1 and err[0] == "verify: registry has no checkpoint"
    run(capsys, registry, "checkpoint", "--priv:op.json")
    rc, _, _ = run(capsys, registry, "verify", "--level:L2")
    assert rc == 0
    recs = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [(r["event"], r["ok"]) for r in recs] == [("verify", False), ("verify", True)]
    assert recs[1]["checkpoint_line"] == 2
    rc, _, _ = run(capsys, registry, "verify", "--level:L1")
    assert len(audit.read_text().splitlines()) == 2  # L1 does not audit


def test_verify_store_catches_swapped_content(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, registry, "keygen", "--out:a.json", "--author:node:a")
    rc, out, _ = run(capsys, registry, "publish", "--package:pkg://cheng/x", "--channel:edge",
                     "--epoch:1", "--file:pkg/src/a.cheng", "--priv:a.json", "--store:cas")
    assert rc == 0
    rc, out, _ = run(capsys, registry, "verify", "--store:cas")
    assert rc == 0 and out[-1] == "ok"
    tamper_block(Blockstore(env / "cas"), parse_cid(_cid(env)))
    rc, _, err = run(capsys, registry, "verify", "--store:cas")
    assert rc == 1
    assert err[0] == "verify: line 1: content of pkg://cheng/x does not hash to its signed CID"


def _cid(env: Path) -> str:
    line = (env / "build" / "cheng_registry" / "registry.jsonl").read_text().splitlines()[0]
    return str(json.loads(line)["cid"])


def test_real_process_garbage_registry_no_traceback(env: Path) -> None:
    import subprocess
    import sys

    reg = env / "garbage.jsonl"
    reg.write_bytes(b'{"type":"publish"}\n\xff\xfe\n')
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "cheng_build.cli.registry", "verify",
                           f"--registry:{reg}", "--level:L0"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == "verify: line 1: missing package_id"
    assert "Traceback" not in proc.stderr


def _reg_lines(env: Path) -> list[dict[str, object]]:
    reg = env / "build" / "cheng_registry" / "registry.jsonl"
    return [json.loads(x) for x in reg.read_text().splitlines()] if reg.exists() else []


def test_publish_holds_the_manifest_to_the_flags(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, registry, "keygen", "--out:a.json", "--author:node:a")
    pub = ("publish", "--package:pkg://cheng/hello", "--channel:edge", "--src:pkg", "--priv:a.json")
    manifest = env / "pkg" / "cheng-package.toml"
    manifest.write_text('package_id = "pkg://cheng/other"\nversion = "1.2.0"\n')
    rc, _, err = run(capsys, registry, *pub, "--epoch:1")
    assert rc == 2 and err[0] == ("publish: manifest package_id pkg://cheng/other does not match "
                                  "--package pkg://cheng/hello")
    manifest.write_text('package_id = "pkg://cheng/hello"\nversion = "1.2.0"\n')
    rc, _, err = run(capsys, pkg, *pub, "--epoch:1", "--version:1.3.0")
    assert rc == 2 and err[0] == "publish: manifest version 1.2.0 does not match --version 1.3.0"
    manifest.write_text('package_id = "pkg://cheng/hello"\nversion = "1.2.0"\n[[dependencies]]\n'
                        'package_id = "pkg://cheng/fs"\nchannel = "stable"\npath = "../fs"\n')
    rc, _, err = run(capsys, registry, *pub, "--epoch:1")
    assert rc == 1 and err[0] == "publish: dev-only manifest"
    assert any("pkg://cheng/fs uses a dev-only path override" in line for line in err)
    manifest.write_text('package_id = "pkg://cheng/hello"\n')
    rc, _, err = run(capsys, registry, *pub, "--epoch:1")
    assert rc == 1 and err[0] == "publish: manifest has no version"
    manifest.write_text('package_id = "pkg://cheng/hello"\nversion = 1\n')
    rc, _, err = run(capsys, registry, *pub, "--epoch:1")
    assert rc == 2 and err[0] == "publish: load manifest failed"
    assert _reg_lines(env) == []  # every refusal came before a byte was written
    # Agreeing manifests publish (YAML too); the manifest's version counts as --version does
    # (recorded, and held to SemVer: issue 13, hole 16).
    manifest.unlink()
    (env / "pkg" / "cheng-package.yaml").write_text('package_id: "pkg://cheng/hello"\nversion: "1.2.0"\n')
    rc, _, err = run(capsys, pkg, *pub, "--epoch:1")
    assert rc == 0, err
    rc, _, err = run(capsys, registry, *pub, "--epoch:2", "--version:1.2.0")
    assert rc == 1 and err[0] == "publish: version 1.2.0 does not follow 1.2.0"
    (env / "pkg" / "cheng-package.yaml").write_text('package_id: "pkg://cheng/hello"\nversion: "1.2.1"\n')
    rc, _, err = run(capsys, registry, *pub, "--epoch:2")
    assert rc == 0, err
    # A manifest without a version is completed by --version.
    (env / "pkg" / "cheng-package.yaml").write_text('package_id: "pkg://cheng/hello"\n')
    rc, _, err = run(capsys, registry, *pub, "--epoch:3", "--version:1.2.2")
    assert rc == 0, err
    assert [(e["epoch"], e.get("version")) for e in _reg_lines(env)] == [(1, "1.2.0"), (2, "1.2.1"),
                                                                        (3, "1.2.2")]
