"""The shared CLI layer: flag spellings, error mapping, exit codes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cheng_build.cli.app import Subcommand, dispatch, guarded
from cheng_build.cli.args import Parser, normalize_argv
from cheng_build.core.errors import ChengError, InputError, UsageError


def test_three_spellings_parse_alike() -> None:
    p = Parser(prog="t")
    p.add_argument("--peers")
    for argv in (["--peers:/ip4/127.0.0.1/tcp/1"], ["--peers=/ip4/127.0.0.1/tcp/1"],
                 ["--peers", "/ip4/127.0.0.1/tcp/1"]):
        assert p.parse_cheng(argv).peers == "/ip4/127.0.0.1/tcp/1"


def test_equals_value_keeps_colons_and_passthrough_untouched() -> None:
    assert normalize_argv(["--a=b:c", "--", "--x:y"]) == ["--a=b:c", "--", "--x:y"]
    assert normalize_argv(["--chunker:size-262144"]) == ["--chunker=size-262144"]


@given(st.lists(st.text(max_size=20), max_size=8))
def test_normalize_never_changes_non_flags(argv: list[str]) -> None:
    out = normalize_argv(argv)
    assert len(out) == len(argv)
    for a, b in zip(argv, out, strict=True):
        if not a.startswith("--"):
            assert a == b


def test_bad_flag_is_usage_error() -> None:
    p = Parser(prog="t")
    with pytest.raises(UsageError):
        p.parse_cheng(["--nope"])


def test_error_lines_first_line_is_command_what() -> None:
    e = ChengError("single-version conflict", why="two snapshots", how="add an override")
    lines = e.lines("verify")
    assert lines[0] == "verify: single-version conflict"
    assert any("why:" in ln for ln in lines) and any("how:" in ln for ln in lines)


def test_guarded_maps_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> int:
        raise InputError("manifest not found: x.toml")

    assert guarded("resolve", [], fail) == 2
    assert capsys.readouterr().err.splitlines()[0] == "resolve: manifest not found: x.toml"


def test_dispatch_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    table = {"hello": Subcommand("os", "say hello")}
    assert dispatch("tool", "a tool", table, ["nope"]) == 2
    assert capsys.readouterr().err.startswith("tool: unknown command 'nope'")
    assert dispatch("tool", "a tool", table, ["--help"]) == 0
    assert "hello" in capsys.readouterr().out


def test_flag_before_command_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    table = {"hello": Subcommand("os", "say hello")}
    assert dispatch("tool", "a tool", table, ["--bogus"]) == 2
    assert capsys.readouterr().err.startswith("tool: unknown flag '--bogus' before the command")


def test_undecodable_path_prints_on_a_strict_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    # argv bytes that are not UTF-8 reach Python surrogate-escaped; echoing such a path on a
    # strict UTF-8 stdout must write the original bytes instead of raising UnicodeEncodeError.
    buf = io.BytesIO()
    out = io.TextIOWrapper(buf, encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stdout", out)
    name = os.fsdecode(b"\xf0.json")

    def body() -> int:
        print(f"wrote {name}")
        return 0

    assert guarded("prove", [], body) == 0
    out.flush()
    assert buf.getvalue() == b"wrote \xf0.json\n"


def test_undecodable_path_in_an_error_is_escaped_on_stderr(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    bad = os.fsencode(tmp_path) + b"/\xf0.toml"
    proc = subprocess.run([sys.executable, "-m", "cheng_build.cli.pkg", "verify", b"--lock:" + bad],
                          capture_output=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode("utf-8")  # decodable: stderr escapes what it cannot encode
    assert err.startswith("verify: ") and "Traceback" not in err
