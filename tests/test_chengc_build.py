"""chengc end to end with the test-double compiler: cache, explain, reproducibility, meta, env."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from helpers_chengc import Runner, app_project, run_cli, write_tree
from helpers_parts import require_part


@pytest.fixture
def cc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Runner:
    app_project(tmp_path, n_deps=3)
    return Runner(tmp_path, monkeypatch, capfd)


def test_build_then_hit_never_calls_the_compiler(cc: Runner) -> None:
    rc, out, _ = cc("app.cheng")
    assert rc == 0
    art = cc.tmp / "artifacts/chengc/app"
    assert art.is_file() and os.access(art, os.X_OK)
    assert "fake-chengc: compiled 7 modules" in out
    assert len(cc.calls()) == 1
    first = art.read_bytes()
    # The compiler saw the staged tree: relative entry, staged --out, relative PKG_ROOTS.
    call = cc.calls()[0]
    assert call["argv"] == ["app.cheng", "--name:app", "--out:out/app"]
    art.unlink()
    rc, out, err = cc("app.cheng", "--explain")
    assert rc == 0
    assert len(cc.calls()) == 1, "a cache hit must not start the compiler"
    assert art.read_bytes() == first
    assert "fake-chengc: compiled 7 modules" in out  # the compiler's output is replayed
    assert "chengc: cache hit" in err


def test_noop_rebuild_reads_no_source(cc: Runner) -> None:
    from cheng_build.build import inputs

    cc("app.cheng")
    # Age the stat records past the racy window, as a real no-op build a few seconds later sees.
    stat = cc.tmp / "chengcache/chengc/stat.json"
    doc = json.loads(stat.read_text())
    for rec in doc["files"].values():
        rec["at"] += 10 * inputs.RACY_NS
    stat.write_text(json.dumps(doc))
    from cheng_build.build.driver import build
    from cheng_build.build.request import BuildRequest

    res = build(BuildRequest(source=Path("app.cheng"), env=dict(os.environ), cwd=cc.tmp))
    assert res.status.value == "hit"
    assert res.files_read == 0


def test_explain_names_the_changed_input_and_flag(cc: Runner) -> None:
    cc("app.cheng")
    dep = cc.tmp / "roots/cheng-dep1/src/impl/core.cheng"
    dep.write_text(dep.read_text() + "// edit\n")
    rc, _, err = cc("app.cheng", "--explain", "--release")
    assert rc == 0
    assert f"chengc: input changed: {dep}" in err
    assert "chengc: flag added: --release" in err
    assert len(cc.calls()) == 2
    rc, _, err = cc("app.cheng", "--explain", "--release", "--target:wasm32")
    assert "chengc: target changed:" in err and "wasm32" in err
    rc, _, err = cc("app.cheng", "--explain", "--release", "--target:wasm32", "--jobs:8")
    assert "chengc: cache hit" in err, "--jobs cannot change the artifact and is not keyed"


def test_explain_names_env_and_compiler_changes(cc: Runner) -> None:
    cc("app.cheng")
    _, _, err = cc("app.cheng", "--explain", env={"CC": "clang-99"})
    assert "chengc: env changed: CC=" in err and "clang-99" in err
    cc.compiler.write_text(cc.compiler.read_text() + "\n# new compiler build\n")
    _, _, err = cc("app.cheng", "--explain", env={"CC": "clang-99"})
    assert "chengc: compiler changed" in err


def test_unknown_flags_pass_through_in_order(cc: Runner) -> None:
    rc, _, _ = cc("--frontend", "stage1", "app.cheng", "--zz:1", "--mm:orc", "--yy=2", "--emit:c")
    assert rc == 0
    assert cc.calls()[-1]["argv"] == ["app.cheng", "--name:app", "--frontend:stage1", "--zz:1", "--mm:orc",
                                      "--yy=2", "--emit:c", "--out:out/app"]


def test_output_path_rules(cc: Runner) -> None:
    assert cc("app.cheng", "--name:x")[0] == 0
    assert (cc.tmp / "artifacts/chengc/x").is_file()
    assert cc("app.cheng", "--name:bin/y")[0] == 0
    assert (cc.tmp / "bin/y").is_file()
    assert cc("app.cheng", "--out:dist/z.bin")[0] == 0
    assert (cc.tmp / "dist/z.bin").is_file()
    assert (cc.tmp / "dist/cheng.meta.toml").is_file()


def test_environment_is_cleared_and_epoch_set(cc: Runner, tmp_path: Path) -> None:
    # Make the compiler dump its environment and cwd into the artifact.
    cc.compiler.write_text(
        cc.compiler.read_text().replace("out.write_bytes(b\"\".join(body))",
                                        "body.append(json.dumps(dict(os.environ), sort_keys=True).encode())\n"
                                        "    out.write_bytes(b\"\".join(body))"))
    rc, _, _ = cc("app.cheng", env={"SECRET_TOKEN": "x", "SOURCE_DATE_EPOCH": "1730000000",
                                    "PKG_ROOT": str(tmp_path / "nowhere")})
    assert rc == 0
    blob = (cc.tmp / "artifacts/chengc/app").read_bytes()
    env = json.loads(blob[blob.rindex(b"{"):].split(b"\n")[0])
    assert "SECRET_TOKEN" not in env and "PKG_ROOT" not in env
    assert env["SOURCE_DATE_EPOCH"] == "1730000000"
    assert env["PKG_ROOTS"] == "pkgroots/0" and env["TZ"] == "UTC" and env["LC_ALL"] == "C"
    assert Path(str(cc.calls()[-1]["cwd"])).name.startswith("chengc-")
    # An explicitly allowed variable does reach the compiler.
    cc("app.cheng", "--env-allow:SECRET_TOKEN", "--no-cache")
    blob = (cc.tmp / "artifacts/chengc/app").read_bytes()
    assert '"SECRET_TOKEN": "x"' in blob.decode()


def test_git_commit_time_is_the_epoch(cc: Runner) -> None:
    import subprocess

    env = {"GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": os.environ["PATH"], "HOME": str(cc.tmp)}
    for cmd in (["git", "init", "-q"], ["git", "add", "app.cheng"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=cc.tmp, env=env, check=True)
    assert cc("app.cheng")[0] == 0
    assert b"epoch 1700000000\n" in (cc.tmp / "artifacts/chengc/app").read_bytes()
    meta = tomllib.loads((cc.tmp / "artifacts/chengc/cheng.meta.toml").read_text())
    assert meta["build"]["created_ts"] == "1700000000"


def test_reproducible_check_passes_and_meta_is_byte_identical(cc: Runner) -> None:
    rc, _, _ = cc("app.cheng", "--reproducible-check")
    assert rc == 0
    assert len(cc.calls()) == 2
    cwds = {c["cwd"] for c in cc.calls()}
    assert len(cwds) == 2, "two fresh roots"
    meta1 = (cc.tmp / "artifacts/chengc/cheng.meta.toml").read_bytes()
    import shutil

    shutil.rmtree(cc.tmp / "artifacts")
    shutil.rmtree(cc.tmp / "chengcache")
    assert cc("app.cheng", "--reproducible-check")[0] == 0
    assert (cc.tmp / "artifacts/chengc/cheng.meta.toml").read_bytes() == meta1
    meta = tomllib.loads(meta1.decode())
    b = meta["build"]
    assert b["source"] == "app.cheng" and b["output"] == "artifacts/chengc/app"
    assert b["flags"] == ["--name:app"]
    for k in ("output_cid", "input_root", "compiler", "compiler_digest", "created_ts"):
        assert b[k]


def test_reproducible_check_catches_a_nondeterministic_compiler(cc: Runner) -> None:
    rc, _, err = cc("app.cheng", "--reproducible-check", "--env-allow:FAKE_CHENGC_NONDETERMINISTIC",
                    env={"FAKE_CHENGC_NONDETERMINISTIC": "1"})
    assert rc == 1
    lines = err.splitlines()
    assert lines[0] == "chengc: build is not reproducible"
    assert "bytes" in err and "first difference at offset" in err
    assert not (cc.tmp / "artifacts/chengc/app").exists(), "nothing is written for a failed check"


def test_compiler_failure_keeps_its_exit_code_and_output(cc: Runner) -> None:
    rc, _, err = cc("app.cheng", "--env-allow:FAKE_CHENGC_FAIL", env={"FAKE_CHENGC_FAIL": "3"})
    assert rc == 3
    assert "fake-chengc: error: failing as asked" in err
    assert "chengc: compiler failed with exit code 3" in err
    assert not (cc.tmp / "artifacts/chengc/app").exists()


def test_emit_check_needs_no_compiler(cc: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHENG_COMPILER", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    rc, out, _ = cc("app.cheng", "--emit:check")
    assert rc == 0 and out.startswith("ok: 10 inputs from 1 package roots, 1 toolchain imports")
    assert cc.calls() == []
    rc, _, err = cc("app.cheng")
    assert rc == 2 and err.startswith("chengc: no Cheng compiler found")


def test_unresolved_import_fails_before_the_compiler(cc: Runner) -> None:
    (cc.tmp / "app.cheng").write_text("import cheng/missing/thing\n")
    rc, _, err = cc("app.cheng")
    assert rc == 1
    assert err.splitlines()[0] == "chengc: unresolved import cheng/missing/thing"
    assert str(cc.tmp / "roots/cheng-missing/src/thing.cheng") in err
    assert cc.calls() == []


def test_usage_errors(cc: Runner) -> None:
    assert cc()[0] == 2
    rc, _, err = cc("nope.cheng")
    assert rc == 2 and err.startswith("chengc: source not found: nope.cheng")
    rc, _, err = cc("app.cheng", "--channel:beta")
    assert rc == 2 and err.startswith("chengc: argument --channel")
    rc, _, err = cc("app.cheng", "other.cheng")
    assert rc == 2 and "more than one source file" in err


def test_corrupt_cache_entry_is_a_miss_not_a_crash(cc: Runner) -> None:
    cc("app.cheng")
    for p in (cc.tmp / "chengcache/chengc/ac").rglob("*.json"):
        p.write_text("{not json")
    (cc.tmp / "chengcache/chengc/stat.json").write_text("garbage")
    rc, _, _ = cc("app.cheng")
    assert rc == 0 and len(cc.calls()) == 2


def test_artifact_comes_out_of_the_cas_verified(cc: Runner) -> None:
    import tomllib

    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import parse_cid

    cc("app.cheng")
    meta = tomllib.loads((cc.tmp / "artifacts/chengc/cheng.meta.toml").read_text())
    cid = parse_cid(meta["build"]["output_cid"])
    store = Blockstore(cc.tmp / "chengcache")
    assert store.has(cid)
    (cc.tmp / "artifacts/chengc/app").unlink()
    assert cc("app.cheng")[0] == 0 and len(cc.calls()) == 1  # copied out of the CAS
    # Collected by gc (not pinned): the next build compiles again instead of failing.
    assert store.gc().removed >= 1
    assert not store.has(cid)
    (cc.tmp / "artifacts/chengc/app").unlink()
    rc, _, err = cc("app.cheng", "--explain")
    assert rc == 0 and "no longer in the store; rebuilding" in err and len(cc.calls()) == 2
    flat = store.flat_path(cid)  # chengc's action cache writes blocks in the flat layout
    flat.parent.mkdir(parents=True, exist_ok=True)
    flat.write_bytes(b"tampered")
    (cc.tmp / "artifacts/chengc/app").unlink()
    rc, _, err = cc("app.cheng")
    assert rc == 1 and str(cid) in err.splitlines()[0]
    assert not (cc.tmp / "artifacts/chengc/app").exists()


def test_compiler_found_on_path_skips_the_wrapper(tmp_path: Path) -> None:
    """A real process: `chengc` on PATH is first our own shim, then the real compiler."""
    app_project(tmp_path, 1)
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "chengc"
    shim.write_text("#!/bin/sh\n# from cheng_build.cli.chengc import main\nexit 99\n")
    shim.chmod(0o755)
    from helpers_chengc import install_fake

    real = install_fake(tmp_path / "real")
    env = {"PATH": f"{shim_dir}:{real.parent}:{os.environ['PATH']}", "PKG_ROOTS": str(tmp_path / "roots"),
           "HOME": str(tmp_path)}
    rc, _, err = run_cli(["app.cheng", "--explain"], tmp_path, env)
    assert rc == 0, err
    assert (tmp_path / "artifacts/chengc/app").is_file()
    meta = tomllib.loads((tmp_path / "artifacts/chengc/cheng.meta.toml").read_text())
    assert meta["build"]["compiler"] == str(real)


def test_compiler_from_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capfd: pytest.CaptureFixture[str]) -> None:
    app_project(tmp_path, 1)
    cc = Runner(tmp_path, monkeypatch, capfd)
    monkeypatch.delenv("CHENG_COMPILER")
    write_tree(tmp_path, {"cheng-pkg-config.toml": '[toolchain]\ncompiler = "bin/chengc"\n'})
    assert cc("app.cheng")[0] == 0
    write_tree(tmp_path, {"cheng-pkg-config.toml": '[toolchain]\ncompiler = "bin/missing"\n'})
    rc, _, err = cc("app.cheng", "--no-cache")
    assert rc == 2 and err.startswith("chengc: compiler not found:")
    rc, _, err = cc("app.cheng", "--compiler:/no/such/chengc")
    assert rc == 2 and "chengc: compiler not found: /no/such/chengc" in err


def test_the_hello_example_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capfd: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "hello"
    if not example.is_dir():
        require_part("examples/ (a git checkout)", "run the tests from a git clone, as scripts/test.sh does")
    cc = Runner(tmp_path, monkeypatch, capfd)
    rc, out, err = cc(str(example / "hello.cheng"), "--emit:check",
                      f"--pkg-roots:{example / 'packages'}")
    assert rc == 0, err
    assert out.startswith("ok: 4 inputs from 1 package roots, 1 toolchain imports")


def test_same_size_edit_with_restored_mtime_is_still_seen(cc: Runner) -> None:
    """The stat cache keys on ctime too, which no tool can set back."""
    import json

    from cheng_build.build import inputs

    cc("app.cheng")
    stat = cc.tmp / "chengcache/chengc/stat.json"
    doc = json.loads(stat.read_text())
    for rec in doc["files"].values():
        rec["at"] += 10 * inputs.RACY_NS  # trust every record, as a later build would
    stat.write_text(json.dumps(doc))
    dep = cc.tmp / "roots/cheng-dep0/src/impl/core.cheng"
    st = dep.stat()
    text = dep.read_text()
    dep.write_text(text.replace("= 0", "= 9"))
    os.utime(dep, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert dep.stat().st_size == st.st_size and dep.stat().st_mtime_ns == st.st_mtime_ns
    rc, _, err = cc("app.cheng", "--explain")
    assert rc == 0 and f"input changed: {dep}" in err
    assert len(cc.calls()) == 2


def test_two_builds_at_once_both_succeed(tmp_path: Path) -> None:
    import subprocess
    import sys

    from helpers_chengc import install_fake

    app_project(tmp_path, 3)
    comp = install_fake(tmp_path / "bin")
    env = {"PATH": os.environ["PATH"], "PKG_ROOTS": str(tmp_path / "roots"), "HOME": str(tmp_path),
           "CHENG_COMPILER": str(comp), **({"PYTHONPATH": os.environ["PYTHONPATH"]}
                                            if "PYTHONPATH" in os.environ else {})}
    procs = [subprocess.Popen([sys.executable, "-m", "cheng_build.cli.chengc", "app.cheng"], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    art = (tmp_path / "artifacts/chengc/app").read_bytes()
    rc, _, err = run_cli(["app.cheng", "--explain"], tmp_path, env)
    assert rc == 0 and "cache hit" in err
    assert (tmp_path / "artifacts/chengc/app").read_bytes() == art


def test_compiler_from_the_home_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    app_project(tmp_path, 1)
    cc = Runner(tmp_path, monkeypatch, capfd)
    monkeypatch.delenv("CHENG_COMPILER")
    cfg = f'[toolchain]\ncompiler = "{cc.compiler}"\n'
    write_tree(tmp_path / "home/.cheng", {"cheng-pkg-config.toml": cfg})
    assert cc("app.cheng")[0] == 0 and len(cc.calls()) == 1
