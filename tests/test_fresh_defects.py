"""The small defects a newcomer hit on a fresh machine (issue 12), each through the real CLI.

Every test here failed before its fix: a publish of a directory without a manifest, two names for
the package cache, a misspelt chengc flag reaching the compiler, ``PKG_CACHE`` naming a file,
an error naming our temp file instead of the user's path, ``cis``/``cheng-pkg`` without
arguments exiting 0, no "did you mean" for a package id, a lock key or an import's case, a
Trio warning when ``cheng-pkg serve`` gets SIGTERM, and run ids out of order within a millisecond.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers_fresh import FS, call, make_world
from helpers_parts import not_applicable
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cli import chengc as chengc_cli
from cheng_build.cli import pkg as pkg_cli
from cheng_build.cli import registry as registry_cli
from cheng_build.core import ulid
from cheng_build.core.suggest import closest, edit_distance


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    return make_world(tmp_path, monkeypatch, capsys)


# --- publish ------------------------------------------------------------------------------------


def test_publish_refuses_a_directory_without_a_manifest(world: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (world / "empty").mkdir()
    before = (world / "registry.jsonl").read_bytes()
    for main in (registry_cli.main, pkg_cli.main):
        rc, _, err = call(capsys, main, "publish", "--package:pkg://cheng/empty", "--channel:stable",
                          "--epoch:1", "--src:empty", "--priv:me.json")
        assert rc == 2 and err[0] == "publish: empty has no cheng-package.toml", err
        assert any("cheng-package.toml" in line and line.lstrip().startswith("how:") for line in err)
    assert (world / "registry.jsonl").read_bytes() == before  # nothing appended


# --- one name for the package cache -------------------------------------------------------------


def test_pkg_cache_is_the_flag_of_every_command_and_store_stays_an_alias(
        world: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PKG_CACHE")
    (world / "more" / "src").mkdir(parents=True)
    (world / "more" / "cheng-package.toml").write_text('package_id = "pkg://cheng/more"\nversion = "1.0.0"\n')
    (world / "more" / "src" / "more.cheng").write_text("fn More(): int32 = 2\n")
    rc, out, err = call(capsys, registry_cli.main, "publish", "--package:pkg://cheng/more",
                        "--channel:stable", "--epoch:1", "--src:more", "--priv:me.json",
                        "--pkg-cache:other")
    assert rc == 0, err
    assert (world / "other" / "index.sqlite").is_file() and not (world / "chengcache").exists()
    rc, out, err = call(capsys, registry_cli.main, "verify", "--pkg-cache:other")
    assert rc == 0 and out[0] == "store: 1 snapshot(s) hash to their signed CIDs; 1 not in other", out
    rc, out, err = call(capsys, registry_cli.main, "verify", "--store:other")  # the old name
    assert rc == 0 and out[0].startswith("store: 1 snapshot(s)"), err
    # resolve reads fs's manifest from the cache the flag names: only ./cache holds fs.
    rc, out, err = call(capsys, pkg_cli.main, "resolve", "--manifest:app/cheng-package.toml",
                        "--pkg-cache:other")
    assert rc == 1 and err[0] == "resolve: snapshot not found", err
    rc, out, err = call(capsys, pkg_cli.main, "resolve", "--manifest:app/cheng-package.toml",
                        "--pkg-cache:cache")
    assert rc == 0 and 'package_id = "pkg://cheng/fs"' in "\n".join(out), err
    rc, _, err = call(capsys, pkg_cli.main, "resolve", "--manifest:app/cheng-package.toml",
                      "--pkg-cache:other", "--store:cache")
    assert rc == 2 and err[0] == "resolve: --pkg-cache and --store name two different caches"
    rc, _, err = call(capsys, registry_cli.main, "verify", "--store:nowhere")
    assert rc == 2 and err[0] == "verify: --store: nowhere not found"  # names the flag as typed


# --- chengc -------------------------------------------------------------------------------------


def test_chengc_refuses_a_misspelt_wrapper_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.cheng").write_text("fn main(): int32 =\n    return 0\n")
    for argv, flag, meant in ((["--manfest:x.toml"], "--manfest", "--manifest"),
                              (["--manfest", "x.toml"], "--manfest", "--manifest"),
                              (["--pkg-cach=c"], "--pkg-cach", "--pkg-cache"),
                              (["--exlpain"], "--exlpain", "--explain")):
        rc, _, err = call(capsys, chengc_cli.main, "app.cheng", *argv)
        assert rc == 2 and err[0] == f"chengc: unknown flag {flag} (did you mean {meant}?)", err
    # The compiler's own flags, flags far from ours, and anything after -- still go through.
    for argv in (["--jobs:2"], ["--opt-level:3"], ["--", "--manfest"]):
        rc, out, err = call(capsys, chengc_cli.main, "app.cheng", "--emit:check", "--skip-pkg",
                            f"--pkg-roots:{tmp_path}", *argv)
        assert rc == 0 and out[-1].startswith("ok: "), (argv, err)


def test_an_import_that_differs_only_in_case_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "roots" / "diloco" / "src").mkdir(parents=True)
    (tmp_path / "roots" / "diloco" / "src" / "outer.cheng").write_text("fn Step(): int32 = 1\n")
    (tmp_path / "app.cheng").write_text("import cheng/DiLoCo/Outer\nfn main(): int32 =\n    return 0\n")
    rc, _, err = call(capsys, chengc_cli.main, "app.cheng", "--emit:check", "--skip-pkg",
                      f"--pkg-roots:{tmp_path / 'roots'}")
    assert rc == 1 and err[0] == "chengc: unresolved import cheng/DiLoCo/Outer"
    text = "\n".join(err)
    assert f"{tmp_path / 'roots' / 'diloco' / 'src' / 'outer.cheng'} exists" in text
    assert "differs only in case" in text
    # A plainly missing package gets no such hint.
    (tmp_path / "app.cheng").write_text("import cheng/nothere/x\nfn main(): int32 =\n    return 0\n")
    rc, _, err = call(capsys, chengc_cli.main, "app.cheng", "--emit:check", "--skip-pkg",
                      f"--pkg-roots:{tmp_path / 'roots'}")
    assert rc == 1 and "differs only in case" not in "\n".join(err)


# --- paths the user named -----------------------------------------------------------------------


def test_pkg_cache_naming_a_file_says_so(world: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (world / "afile").write_text("not a directory\n")
    monkeypatch.setenv("PKG_CACHE", str(world / "afile"))
    rc, _, err = call(capsys, pkg_cli.main, "fetch", "--lock:app/cheng.lock.toml", "--mode:local")
    assert rc == 2 and err[0] == f"fetch: package cache {world / 'afile'} is not a directory", err
    assert any("PKG_CACHE names" in line for line in err)
    # A file further up the path is found too, and the flag is named when the flag gave it.
    rc, _, err = call(capsys, pkg_cli.main, "fetch", "--lock:app/cheng.lock.toml",
                      f"--pkg-cache:{world / 'afile' / 'sub'}")
    assert rc == 2 and any(f"--pkg-cache names {world / 'afile' / 'sub'}, but {world / 'afile'}" in line
                           for line in err), err


def test_a_failed_write_names_the_users_path(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/proc/self").is_dir():
        not_applicable("needs Linux /proc (a directory no one can create files in)")
    rc, _, err = call(capsys, pkg_cli.main, "resolve", "--manifest:app/cheng-package.toml",
                      "--out:/proc/x")
    assert rc == 1 and err[0].startswith("resolve: ") and err[0].endswith(" /proc/x"), err
    assert ".tmp" not in "\n".join(err)


# --- usage --------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["cheng_build.cli.cis", "cheng_build.cli.pkg",
                                    "cheng_build.cli.registry"])
def test_no_arguments_print_usage_and_exit_2(module: str) -> None:
    r = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("usage: ") and "commands:" in r.stderr
    r = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0 and r.stdout.startswith("usage: ")  # asked for: still 0, on stdout


# --- did you mean -------------------------------------------------------------------------------


def test_a_misspelt_package_id_gets_the_close_published_name(world: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    man = world / "app" / "cheng-package.toml"
    man.write_text(man.read_text().replace(f'"{FS}"', '"pkg://cheng/fss"'))
    rc, _, err = call(capsys, pkg_cli.main, "resolve", f"--manifest:{man}")
    assert rc == 1 and err[0] == "resolve: snapshot not found"
    assert "  how: did you mean pkg://cheng/fs? fix the package_id in the manifest" in err
    man.write_text(man.read_text().replace('"pkg://cheng/fss"', '"pkg://cheng/zzzzzz"'))
    rc, _, err = call(capsys, pkg_cli.main, "resolve", f"--manifest:{man}")
    assert rc == 1 and not any("did you mean" in line for line in err)


def test_a_misspelt_lock_key_gets_did_you_mean(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = world / "app" / "cheng.lock.toml"
    bad = world / "app" / "bad.lock.toml"
    bad.write_text(lock.read_text().replace("channel =", "chanel =", 1))
    rc, _, err = call(capsys, pkg_cli.main, "verify", f"--lock:{bad}")
    assert rc == 2 and err[0] == "verify: load lock failed"
    assert "  how: did you mean channel? rename the key" in err
    bad.write_text(lock.read_text().replace("channel =", "flavour =", 1))
    rc, _, err = call(capsys, pkg_cli.main, "verify", f"--lock:{bad}")
    assert rc == 2 and "  how: remove the key" in err


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcdn-", max_size=7), st.text(alphabet="abcdn-", max_size=7))
def test_edit_distance_matches_a_plain_reference(a: str, b: str) -> None:
    # Reference: optimal string alignment written as a full table, no early exits.
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    want = d[len(a)][len(b)]
    assert edit_distance(a, b, limit=2) == min(want, 3)
    assert edit_distance(a, b, limit=20) == want == edit_distance(b, a, limit=20)
    assert closest(a, [b]) == (b if a != b and want <= 2 else None)


# --- serve --------------------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize("http", [False, True])
def test_sigterm_stops_serve_cleanly_and_quietly(tmp_path: Path, http: bool) -> None:
    (tmp_path / "cache").mkdir()
    argv = [sys.executable, "-m", "cheng_build.cli.pkg", "serve", f"--root:{tmp_path / 'cache'}"]
    if http:
        argv.append("--http:127.0.0.1:0")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once it listens
        assert first.startswith("/ip4/127.0.0.1/tcp/") and "/p2p/12D3KooW" in first, first
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and err == "", err


# --- run ids --------------------------------------------------------------------------------------


def test_run_ids_made_in_one_millisecond_keep_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from cheng_build.cis.run import control

    frozen = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: frozen)
    ids = [control.new_run_id() for _ in range(64)]
    assert ids == sorted(ids) and len(set(ids)) == 64
    assert {i[:10] for i in ids} == {ids[0][:10]}  # all in that one millisecond
    # Another process's id in the same millisecond (or ahead of our clock) is followed, too.
    ahead = ulid.encode(((frozen // 1_000_000 + 5) << 80) | 7)
    assert control.new_run_id(after=ahead) > ahead


def test_two_runs_in_one_millisecond_latest_is_the_newer(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers_cis import make_dag, sh, task

    from cheng_build.cis.run import control

    frozen = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: frozen)
    store = control.open_store(tmp_path / "home")
    base = tmp_path / "p"
    base.mkdir()
    dag = make_dag(base, [task(0, "a", sh("true"))])
    first = control.create_run(store, dag)
    # A second process starts with no memory of the first one's id: only the store knows it.
    monkeypatch.setattr(ulid, "_last", 0)
    second = control.create_run(store, dag)
    assert first < second and store.latest_run_id() == second


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_ulid_text_round_trips(value: int) -> None:
    text = ulid.encode(value)
    assert len(text) == 26 and ulid.decode(text) == value == ulid.decode(text.lower())
    assert json.dumps(text)  # plain ASCII
