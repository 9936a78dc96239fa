"""The command line: which tokens reach the compiler, in which order and spelling."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_chengc import Runner, app_project
from hypothesis import given
from hypothesis import strategies as st

from cheng_build.cli.chengc import compiler_tokens, main

unknown_flag = st.from_regex(r"--z[a-z]{1,6}(:[a-z0-9/]{0,6})?", fullmatch=True)
ours = st.sampled_from(["--explain", "--no-cache", "--lock:x.toml", "--registry=r.jsonl", "--skip-pkg",
                        "--compiler:/bin/true", "--name:app", "--out:o/a", "--emit:check"])


@given(st.lists(st.one_of(unknown_flag, ours), max_size=8), st.integers(min_value=0, max_value=8))
def test_unknown_flags_keep_their_order_and_spelling(flags: list[str], at: int) -> None:
    argv = [*flags[:at], "app.cheng", *flags[at:]]
    assert compiler_tokens(argv) == [f for f in flags if f.startswith("--z")]


def test_known_compiler_flags_are_normalised() -> None:
    argv = ["app.cheng", "--jobs", "4", "--target=wasm32", "--release", "--emit:c", "--mm:orc", "--run"]
    want = ["--jobs:4", "--target:wasm32", "--release", "--emit:c", "--mm:orc", "--run"]
    assert compiler_tokens(argv) == want
    assert compiler_tokens(["--", "--raw", "x"]) == ["--raw", "x"]


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["--help"])
    assert ei.value.code == 0
    assert "--reproducible-check" in capsys.readouterr().out


def test_run_bypasses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capfd: pytest.CaptureFixture[str]) -> None:
    app_project(tmp_path, 1)
    cc = Runner(tmp_path, monkeypatch, capfd)
    for _ in range(2):
        rc, out, err = cc("app.cheng", "--run", "--explain")
        assert rc == 0 and "fake-chengc: running out/app" in out
        assert "cache not used: --run" in err
    assert len(cc.calls()) == 2
    assert cc.calls()[-1]["argv"] == ["app.cheng", "--name:app", "--run", "--out:out/app"]
