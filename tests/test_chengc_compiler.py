"""Finding the compiler and the hand-off's error mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheng_build.build import compiler as c
from cheng_build.build.errors import CompilerFailedError, NoCompilerError


def _exe(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    p.chmod(0o755)
    return p


def test_precedence_flag_env_config_path(tmp_path: Path) -> None:
    a = _exe(tmp_path / "a/chengc", "#!/bin/sh\n")
    b = _exe(tmp_path / "b/chengc", "#!/bin/sh\n")
    d = _exe(tmp_path / "d/chengc", "#!/bin/sh\n")
    (tmp_path / "cheng-pkg-config.toml").write_text(f'[toolchain]\ncompiler = "{tmp_path}/c/chengc"\n')
    _exe(tmp_path / "c/chengc", "#!/bin/sh\n")
    env = {"CHENG_COMPILER": str(b), "PATH": str(d.parent), "HOME": str(tmp_path)}
    assert c.find_compiler(str(a), env, cwd=tmp_path) == c.Compiler(a, c.CompilerSource.FLAG)
    assert c.find_compiler(None, env, cwd=tmp_path).source is c.CompilerSource.ENV
    env.pop("CHENG_COMPILER")
    assert c.find_compiler(None, env, cwd=tmp_path).path == tmp_path / "c/chengc"
    (tmp_path / "cheng-pkg-config.toml").unlink()
    assert c.find_compiler(None, env, cwd=tmp_path) == c.Compiler(d, c.CompilerSource.PATH)


def test_path_search_skips_the_wrapper_and_reports_none(tmp_path: Path) -> None:
    shim = _exe(tmp_path / "shim/chengc", "#!/usr/bin/python3\nfrom cheng_build.cli.chengc import main\n")
    assert c.is_wrapper(shim)
    env = {"PATH": str(shim.parent), "HOME": str(tmp_path)}
    with pytest.raises(NoCompilerError) as ei:
        c.find_compiler(None, env, cwd=tmp_path)
    assert ei.value.lines("chengc")[0] == "chengc: no Cheng compiler found"
    assert ei.value.exit_code == 2 and "--compiler:<path>" in (ei.value.how or "")
    with pytest.raises(NoCompilerError) as ei:
        c.find_compiler(None, {"HOME": str(tmp_path)}, cwd=tmp_path)
    assert "PATH is empty" in (ei.value.why or "")


def test_named_but_not_executable(tmp_path: Path) -> None:
    p = tmp_path / "chengc"
    p.write_text("not a program")
    with pytest.raises(NoCompilerError) as ei:
        c.find_compiler(str(p), {}, cwd=tmp_path)
    assert ei.value.what == f"compiler not found: {p}"


def test_hand_off_failures_are_typed(tmp_path: Path) -> None:
    inv = c.Invocation(("x.cheng",), {"PATH": "/usr/bin:/bin"}, tmp_path)
    bad_interp = _exe(tmp_path / "bad", "#!/no/such/interpreter\n")
    with pytest.raises(NoCompilerError) as ei:
        c.run(bad_interp, inv)
    assert ei.value.what == f"cannot run compiler {bad_interp}"
    failing = _exe(tmp_path / "fail", "#!/bin/sh\necho out; echo err >&2; exit 7\n")
    with pytest.raises(CompilerFailedError) as fe:
        c.run(failing, inv)
    assert fe.value.exit_code == 7 and fe.value.stdout == b"out\n" and fe.value.stderr == b"err\n"
    killed = _exe(tmp_path / "killed", "#!/bin/sh\nkill -9 $$\n")
    with pytest.raises(CompilerFailedError) as ke:
        c.run(killed, inv)
    assert ke.value.exit_code == 1 and "signal 9" in (ke.value.how or "")


def test_env_is_only_the_allow_list_and_fixed_values() -> None:
    env = c.compiler_env({"PATH": "/p", "SECRET": "s", "CC": "cc"}, ["PATH", "CC", "NOPE"], {"TZ": "UTC"})
    assert env == {"CC": "cc", "PATH": "/p", "TZ": "UTC"}
