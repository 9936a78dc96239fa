"""The no-op fast path (cheng_build.build.noop): a hit replayed from its record, and everything
that must send the next run back through the full build (and its checks) instead.

Records are only written once every watched path is older than the racy window; the tests set
that window to zero and wait a few clock ticks between a record and the change they make, so a
change always lands in a later tick than the state the record saw.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_chengc import Runner, app_project, install_fake
from helpers_trust import Cli, app_manifest, forged_publish, key, publish_dir, snapshot

from cheng_build.build import noop
from cheng_build.cli import app as cli_app


@pytest.fixture(autouse=True)
def _no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noop, "RACY_NS", 0)


@pytest.fixture
def cc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Runner:
    app_project(tmp_path)
    return Runner(tmp_path, monkeypatch, capfd)


def _tick() -> None:
    time.sleep(0.05)  # past the file system's timestamp granularity


def _records(root: Path) -> list[Path]:
    return sorted((root / "chengcache/chengc/noop").glob("*.rec"))


class _Full:
    """Counts runs that went through the full build (``guarded``) instead of the record."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = cli_app.guarded

        def counting(*a: object, **k: object) -> int:
            self.n += 1
            return real(*a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(cli_app, "guarded", counting)


@pytest.fixture
def full(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Full]:
    yield _Full(monkeypatch)


def _hit_recorded(cc: Runner | Cli, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Build, then hit once (which writes the record); the hit's result."""
    first = cc(*argv, env=env) if isinstance(cc, Runner) else cc.chengc(*argv)
    assert first[0] == 0, first[2]
    _tick()
    hit = cc(*argv, env=env) if isinstance(cc, Runner) else cc.chengc(*argv)
    assert hit[0] == 0, hit[2]
    _tick()
    return hit


def test_second_hit_is_replayed_without_the_full_build(cc: Runner, full: _Full) -> None:
    rc, out, err = _hit_recorded(cc, "app.cheng", "--explain")
    assert len(_records(cc.tmp)) == 1
    runs = full.n
    rc2, out2, err2 = cc("app.cheng", "--explain")
    assert (rc2, out2, err2) == (rc, out, err)
    assert "fake-chengc: compiled" in out2 and "chengc: cache hit" in err2
    assert full.n == runs, "the replay must not go through the full build"
    assert len(cc.calls()) == 1


def test_the_record_keeps_no_environment_values(cc: Runner, full: _Full) -> None:
    """The environment is matched by digest: a secret in it never lands in the cache directory
    (which CI systems share and upload)."""
    secret = "s3cr3t-token-4f2a9c"
    _hit_recorded(cc, "app.cheng", env={"API_TOKEN": secret})
    (rec,) = _records(cc.tmp)
    assert secret.encode() not in rec.read_bytes() and b"API_TOKEN" not in rec.read_bytes()
    runs = full.n
    assert cc("app.cheng")[0] == 0 and full.n == runs  # same environment: replayed
    assert cc("app.cheng", env={"API_TOKEN": secret + "x"})[0] == 0 and full.n == runs + 1


def test_a_fresh_tree_writes_no_record(cc: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noop, "RACY_NS", 3600 * 10**9)  # every file is "just written"
    assert cc("app.cheng")[0] == 0
    assert cc("app.cheng")[0] == 0
    assert _records(cc.tmp) == []


@pytest.mark.parametrize("change", ["edit_dep", "remove_output", "shadow", "env", "compiler",
                                    "config", "entry_record", "argv"])
def test_any_change_goes_through_the_full_build(cc: Runner, full: _Full, change: str) -> None:
    _hit_recorded(cc, "app.cheng")
    runs = full.n
    t = cc.tmp
    argv = ["app.cheng"]
    env: dict[str, str] = {}
    if change == "edit_dep":
        dep = t / "roots/cheng-dep1/src/impl/core.cheng"
        dep.write_text(dep.read_text().replace("= 1", "= 7"))  # same size
    elif change == "remove_output":
        (t / "artifacts/chengc/app").unlink()
    elif change == "shadow":  # the root itself now claims dep0: it comes first in the search
        (t / "roots/cheng-package.toml").write_text('package_id = "pkg://cheng/dep0"\n')
        (t / "roots/src").mkdir()
        (t / "roots/src/api.cheng").write_text("fn shadow(): int32 = 9\n")
    elif change == "env":
        env = {"CHENGC_NOOP_TEST": "1"}
    elif change == "compiler":
        install_fake(t / "bin")  # rewritten in place: a new compiler binary
    elif change == "config":
        (t / "cheng-pkg-config.toml").write_text("[toolchain]\n")
    elif change == "entry_record":
        for p in (t / "chengcache/chengc/ac").rglob("*.json"):
            p.unlink()
    elif change == "argv":
        argv = ["app.cheng", "--release"]
    rc, _out, err = cc(*argv, env=env)
    assert rc == 0, err
    assert full.n == runs + 1, f"{change}: must not be answered from the record"
    if change == "edit_dep":
        assert len(cc.calls()) == 2
    if change == "remove_output":
        assert (t / "artifacts/chengc/app").is_file()
    if change == "shadow":
        assert len(cc.calls()) == 2  # a different input tree, compiled


def test_verify_flag_is_never_replayed(cc: Runner, full: _Full) -> None:
    _hit_recorded(cc, "app.cheng", "--verify")
    runs = full.n
    assert cc("app.cheng", "--verify")[0] == 0
    assert full.n == runs + 1


def test_a_corrupt_record_is_a_full_build(cc: Runner, full: _Full) -> None:
    rc, out, _ = _hit_recorded(cc, "app.cheng")
    for rec in _records(cc.tmp):
        blob = rec.read_bytes()
        rec.write_bytes(blob[: len(blob) // 2] + b"\xff" + blob[len(blob) // 2 + 1:])
    runs = full.n
    assert cc("app.cheng")[:2] == (rc, out)
    assert full.n == runs + 1


def test_replay_checks_every_field(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("x")
    os.utime(f, ns=(1, 1))
    env = {"A": "1"}
    argv = ["app.cheng", f"--pkg-cache:{tmp_path / 'c'}"]
    assert noop.remember(argv, env, str(tmp_path), [str(f), str(tmp_path / "absent")], None,
                         b"out\0", b"err")
    assert noop.replay(argv, env, str(tmp_path)) == (b"out\0", b"err")
    assert noop.replay(argv, {"A": "2"}, str(tmp_path)) is None
    assert noop.replay([*argv, "-x"], env, str(tmp_path)) is None
    (tmp_path / "absent").write_text("now present")
    assert noop.replay(argv, env, str(tmp_path)) is None
    (tmp_path / "absent").unlink()
    assert noop.replay(argv, env, str(tmp_path)) == (b"out\0", b"err")
    # An expired trust stamp is never replayed.
    assert noop.remember(argv, env, str(tmp_path), [str(f)], time.time() - 1, b"", b"")
    assert noop.replay(argv, env, str(tmp_path)) is None
    # A path written inside the racy window is not trusted: no record.
    noop.RACY_NS = 3600 * 10**9
    try:
        f.write_text("y")
        assert not noop.remember(argv, env, str(tmp_path), [str(f)], None, b"", b"")
    finally:
        noop.RACY_NS = 0


def test_the_process_replay_imports_no_driver(cc: Runner, tmp_path: Path) -> None:
    """The point of the record: a real ``chengc`` process answers without the driver's imports."""
    env = {k: os.environ[k] for k in ("PKG_ROOTS", "CHENG_COMPILER", "HOME")}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-X", "importtime", "-m", "cheng_build.cli.chengc",
                               "app.cheng"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=False, timeout=120)

    # A real process keeps the real racy window (ctime cannot be set back): wait it out.
    assert run().returncode == 0
    time.sleep(2.2)
    p1 = run()
    assert p1.returncode == 0, p1.stderr
    assert _records(tmp_path)
    p2 = run()
    assert p2.returncode == 0, p2.stderr
    assert "cheng_build.build.driver" not in p2.stderr
    assert "fake-chengc: compiled" in p2.stdout


# --- the trust checks still run where the registry is used --------------------------------------

FS = "pkg://cheng/fs"


@pytest.fixture
def tcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    c = Cli(tmp_path, monkeypatch, capfd)
    monkeypatch.setenv("CHENG_COMPILER", str(install_fake(tmp_path / "bin")))
    return c


def _good_world(cli: Cli, ttl: int = 3600) -> Path:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import parse_cid
    from cheng_build.cas.materialize import materialize
    from cheng_build.trust.registry_ops import append_checkpoint

    reg = cli.tmp / "registry.jsonl"
    good = publish_dir(cli.tmp, reg, key("node:alice"), FS, {"src/fs.cheng": "fn Read(): int32 = 1\n"})
    materialize(Blockstore(cli.tmp / "chengcache"), parse_cid(good), cli.tmp / "chengcache")
    append_checkpoint(reg, key("op:main"), ttl_s=ttl)
    app_manifest(cli.tmp, [FS], ["cheng/fs/fs"])
    return reg


ARGV = ("app.cheng", "--manifest:cheng-package.toml", "--registry:registry.jsonl")


def test_attack_forged_line_after_a_recorded_hit_is_refused(tcli: Cli) -> None:
    """Mallory appends a chained, self-signed publish after the build was remembered: the next
    chengc must verify the registry again and refuse it, not replay the remembered hit."""
    _good_world(tcli)
    _hit_recorded(tcli, *ARGV)
    assert _records(tcli.tmp)
    evil = snapshot(tcli.tmp, "evil", {"cheng-package.toml": f'package_id = "{FS}"\n',
                                       "src/fs.cheng": "fn Read(): int32 = 666 // MALLORY\n"})
    forged_publish(tcli.tmp / "registry.jsonl", key("node:mallory"), FS, evil, epoch=2)
    rc, _out, err = tcli.chengc(*ARGV)
    assert rc == 1
    assert err.splitlines()[0] == ("chengc: verify: registry does not verify: line 3: namespace "
                                   "owned by node:alice")


def test_attack_rollback_after_a_recorded_hit_is_refused(tcli: Cli) -> None:
    """Roll the registry back to the remembered bytes after this client saw a longer log."""
    from cheng_build.trust.registry_ops import append_checkpoint

    reg = _good_world(tcli)
    _hit_recorded(tcli, *ARGV)
    old = reg.read_bytes()
    publish_dir(tcli.tmp, reg, key("node:alice"), FS, {"src/fs.cheng": "fn Read(): int32 = 2\n"},
                epoch=2, version="1.0.1")
    append_checkpoint(reg, key("op:main"), ttl_s=3600)
    assert tcli.registry("verify", "--registry:registry.jsonl")[0] == 0  # remembers the longer log
    _tick()
    reg.write_bytes(old)  # same bytes, same size as when the hit was recorded; a new inode time
    rc, _, err = tcli.chengc(*ARGV)
    assert rc == 1
    assert err.splitlines()[0] == "chengc: verify: registry does not verify: registry forked"


def test_attack_frozen_registry_expires_even_when_remembered(tcli: Cli) -> None:
    """The record carries the checkpoint's expiry: once it passes, the full verify refuses."""
    _good_world(tcli, ttl=4)
    _hit_recorded(tcli, *ARGV)
    assert _records(tcli.tmp)
    time.sleep(5)
    rc, _, err = tcli.chengc(*ARGV)
    assert rc == 1
    assert err.splitlines()[0] == "chengc: verify: registry does not verify: registry checkpoint expired"


def test_a_record_never_outlives_the_registry_sync_window(tcli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a sync window (``sync_fresh_s``), the hit is replayed only until the next sync is due;
    then the full build runs the sync step again."""
    import json

    _good_world(tcli)
    _hit_recorded(tcli, *ARGV)
    stamps = list((tcli.tmp / "chengcache/chengc/synced").glob("*.json"))
    assert stamps
    for st in stamps:  # as if a mirror were configured and synced just now, fresh for 1 s
        st.write_text(json.dumps({"t": time.time(), "fresh_s": 1}))
    _tick()
    full = _Full(monkeypatch)
    assert tcli.chengc(*ARGV)[0] == 0 and full.n == 1  # the stamp changed: full build, recorded
    _tick()
    assert tcli.chengc(*ARGV)[0] == 0 and full.n == 1  # replayed inside the window
    time.sleep(1.2)
    assert tcli.chengc(*ARGV)[0] == 0 and full.n == 2  # the window passed: full build


def test_signed_hit_is_replayed_and_a_removed_attestation_comes_back(
        tcli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from cheng_build.trust.keys import KeyPair, write_keyfile

    _good_world(tcli)
    write_keyfile(KeyPair.generate("node:builder"), tcli.tmp / "builder.json")
    argv = (*ARGV, "--sign:builder.json")
    _hit_recorded(tcli, *argv)
    assert _records(tcli.tmp)
    full = _Full(monkeypatch)
    att = tcli.tmp / "artifacts/chengc/app.intoto.jsonl"
    blob = att.read_bytes()
    assert tcli.chengc(*argv)[0] == 0 and full.n == 0
    att.unlink()
    assert tcli.chengc(*argv)[0] == 0 and full.n == 1
    assert att.read_bytes() == blob
