"""Property: no argv a user can type makes cheng-pkg, cheng-registry or chengc print a traceback,
hang on a FIFO, or exit with anything but 0, 1 or 2.

Each example is a random list drawn from the subcommands, every flag they accept (in all three
spellings) and a pool of awkward values: directories, a FIFO, a dangling symlink, garbage bytes,
empty strings, huge and negative numbers, undecodable bytes as the OS hands them to Python.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ux_cli import CID, invoke, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("uxfuzz"))


COMMANDS = {
    "pkg": ["resolve", "verify", "meta", "log", "diff", "checkout", "publish", "search", "config",
            "config show", "nosuch", "--help"],
    "registry": ["keygen", "publish", "resolve", "verify", "checkpoint", "prove", "verify-proof",
                 "rotate-key", "revoke-key", ""],
    "chengc": ["ok.cheng", "adir", "fifo", "dangling", "garbage", "nowhere.cheng", ""],
}
FLAGS = ["--manifest", "--registry", "--out", "--format", "--store", "--pkg-cache", "--lock",
         "--level", "--config", "--package", "--channel", "--from", "--to", "--cid", "--epoch",
         "--src", "--file", "--priv", "--author", "--version", "--source-addr", "--ttl", "--line",
         "--proof", "--operator-key", "--new", "--key", "--show-copies", "--no-remember", "--force",
         "--mode", "--peers", "--http-fallback", "--name", "--meta-out", "--skip-pkg", "--verify",
         "--pkg-roots", "--explain", "--no-cache", "--emit", "--env-allow", "--lock-format",
         "--target", "--jobs", "--bogus", "-x", "--"]
VALUES = ["adir", "empty", "garbage", "fifo", "dangling", "nowhere", "k1.json", "k2.json", "r.jsonl",
          "proof.json", "ok.cheng", "pkg", "st", "", "x", "pkg://cheng/x", "pkg://cheng/", "-1", "0",
          "1", "2", str(2**64), "1e9", "L0", "L2", "L9", "edge", "stable", "toml", "json", "xml",
          "check", "bundle", CID, "bafy", "env:NOPE", "ed25519:AAAA", "garbage/x", "adir/x",
          "a:b:c", "\udcff\udcfe", "über", " ", "--", "-"]


@st.composite
def argvs(draw: st.DrawFn) -> tuple[str, list[str]]:
    tool = draw(st.sampled_from(sorted(COMMANDS)))
    head = draw(st.sampled_from(COMMANDS[tool]))
    argv = head.split() if head else []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        flag, value = draw(st.sampled_from(FLAGS)), draw(st.sampled_from(VALUES))
        if kind == 0:
            argv.append(f"{flag}:{value}")
        elif kind == 1:
            argv.append(f"{flag}={value}")
        elif kind == 2:
            argv += [flag, value]
        else:
            argv.append(draw(st.sampled_from([flag, value])))
    return tool, argv


class _Hung(BaseException):
    """Raised by the alarm: a BaseException, so the CLI's OSError mapping cannot swallow it."""


def _alarm(_sig: int, _frame: FrameType | None) -> None:
    raise _Hung


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=argvs())
def test_random_argv_never_tracebacks(world: Path, case: tuple[str, list[str]]) -> None:
    tool, argv = case
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)  # a blocked FIFO read fails the example instead of hanging the suite
    try:
        rc, _out, err = invoke(tool, argv, world)
    except _Hung:
        pytest.fail(f"{tool} {argv} hung")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert "Traceback" not in err, (tool, argv, err)
    assert rc in (0, 1, 2), (tool, argv, rc, err)
    if rc != 0:
        first = err.splitlines()[0] if err else ""
        assert re.match(r"^[\w-]+: \S", first), (tool, argv, err)
