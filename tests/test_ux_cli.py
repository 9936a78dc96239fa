"""Bad input at the real entry points of cheng-pkg, cheng-registry and chengc.

Every row is a user's mistake: a missing flag, a wrong type, a directory or FIFO where a file is
expected, a dangling symlink, garbage bytes, a huge value, two flags that contradict each other.
The contract (DESIGN.md section 3): first line ``<command>: <what>``, exit 1 for a failed check
and 2 for bad usage or missing input, never a traceback, nothing blocks on a FIFO.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from helpers_chengc import install_fake

from cheng_build.cli import chengc as chengc_cli
from cheng_build.cli import pkg as pkg_cli
from cheng_build.cli import registry as registry_cli
from cheng_build.cli.args import Parser

ROOT = Path(__file__).resolve().parent.parent
MAINS: dict[str, Callable[[Sequence[str]], int]] = {
    "pkg": pkg_cli.main, "registry": registry_cli.main, "chengc": chengc_cli.main,
}
CID = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


def make_world(d: Path) -> Path:
    """A directory with every kind of bad path, two keys and a registry with one publish."""
    (d / "adir").mkdir()
    (d / "empty").write_bytes(b"")
    (d / "garbage").write_bytes(bytes(range(256)) * 8)
    os.mkfifo(d / "fifo")
    os.symlink(d / "nowhere", d / "dangling")
    (d / "ok.cheng").write_text("fn main(): int32 =\n    return 0\n")
    (d / "pkg").mkdir()
    (d / "pkg" / "lib.cheng").write_text("fn Api(): int32 = 1\n")
    (d / "pkg" / "cheng-package.toml").write_text('package_id = "pkg://cheng/x"\nversion = "1.0.0"\n')
    install_fake(d / "bin")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        for argv in (["keygen", "--out:k1.json", "--author:alice"],
                     ["keygen", "--out:k2.json", "--author:bob"],
                     ["publish", "--package:pkg://cheng/x", "--channel:edge", "--epoch:1",
                      "--src:pkg", "--priv:k1.json", "--registry:r.jsonl", "--store:st"],
                     ["checkpoint", "--priv:k1.json", "--registry:r.jsonl"],
                     ["prove", "--line:1", "--registry:r.jsonl", "--out:proof.json"]):
            assert registry_cli.main(argv) == 0, argv
    finally:
        os.chdir(cwd)
    return d


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("ux"))


def invoke(tool: str, argv: Sequence[str], cwd: Path) -> tuple[int, str, str]:
    """Call ``main(argv)`` in-process with byte-backed stdout/stderr; returns (rc, out, err)."""
    # The error handlers CPython gives a console under a C/C.UTF-8 locale: undecodable bytes in a
    # path (surrogates) reach stdout as the same bytes and stderr as backslash escapes.
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)
    old = os.getcwd(), sys.stdout, sys.stderr
    os.chdir(cwd)
    sys.stdout, sys.stderr = out, err
    try:
        try:
            rc = MAINS[tool](list(argv))
        except SystemExit as exc:  # argparse's --help
            rc = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(old[0])
        sys.stdout, sys.stderr = old[1], old[2]
    return (rc, out.buffer.getvalue().decode(errors="replace"),  # type: ignore[attr-defined]
            err.buffer.getvalue().decode())  # type: ignore[attr-defined]


class _Hung(BaseException):
    """From the alarm; a BaseException so the CLI's OSError mapping cannot swallow it."""


_PUB = ["--package:pkg://cheng/x", "--channel:edge", "--priv:k1.json", "--registry:r.jsonl",
        "--store:st"]
_CC = ["ok.cheng", "--compiler:bin/chengc"]

# (tool, argv, exit code, regex the first stderr line must match)
BAD: list[tuple[str, list[str], int, str]] = [
    # registry paths that are not regular files: named, never a hang or an Errno
    ("registry", ["verify", "--registry:adir"], 2, r"^verify: --registry: adir is a directory$"),
    ("registry", ["verify", "--registry:fifo"], 2, r"^verify: --registry: fifo is a FIFO"),
    ("registry", ["verify", "--registry:dangling"], 2, r"^verify: --registry: dangling is a dangling"),
    ("pkg", ["search", "x", "--registry:adir"], 2, r"^search: --registry: adir is a directory$"),
    ("pkg", ["search", "x", "--registry:fifo"], 2, r"^search: --registry: fifo is a FIFO"),
    ("pkg", ["log", "--package:x", "--registry:adir"], 2, r"^log: --registry: adir is a directory$"),
    ("pkg", ["log", "--package:x", "--registry:fifo"], 2, r"^log: --registry: fifo is a FIFO"),
    ("registry", ["publish", *_PUB[:3], "--epoch:2", "--src:pkg", "--registry:adir"], 2,
     r"^publish: --registry: adir is a directory$"),
    # inputs of the wrong kind
    ("registry", ["publish", *_PUB, "--epoch:2", "--src:garbage"], 2,
     r"^publish: --src: garbage is not a directory$"),
    ("registry", ["publish", *_PUB, "--epoch:2", "--src:nowhere"], 2, r"^publish: --src: nowhere not found"),
    ("registry", ["publish", *_PUB, "--epoch:2", "--file:adir"], 2,
     r"^publish: --file: adir is a directory$"),
    ("registry", ["publish", *_PUB, "--epoch:2", "--file:fifo"], 2, r"^publish: --file: fifo is a FIFO"),
    ("registry", ["publish", *_PUB, "--epoch:2", "--file:dangling"], 2,
     r"^publish: --file: dangling is a dangling symlink$"),
    ("pkg", ["publish", *_PUB[:4], "--epoch:2", "--src:pkg", "--store:garbage"], 2,
     r"^publish: --store: garbage is not a directory$"),
    ("registry", ["verify", "--registry:r.jsonl", "--store:garbage"], 2,
     r"^verify: --store: garbage is not a directory$"),
    ("registry", ["verify", "--registry:r.jsonl", "--store:nowhere"], 2,
     r"^verify: --store: nowhere not found$"),
    ("registry", ["verify-proof", "fifo"], 2, r"^verify-proof: --proof: fifo is a FIFO"),
    ("registry", ["verify-proof", "adir"], 2, r"^verify-proof: --proof: adir is a directory$"),
    ("registry", ["verify-proof", "empty"], 2, r"^verify-proof: proof empty is empty$"),
    ("registry", ["verify-proof", "garbage"], 2, r"^verify-proof: proof garbage is not a proof file$"),
    ("registry", ["verify-proof", "ok.cheng"], 2, r"^verify-proof: proof ok.cheng is not a proof file$"),
    ("registry", ["verify-proof", "proof.json", "--proof:other.json"], 2,
     r"^verify-proof: two different proof files given$"),
    ("pkg", ["resolve", "--manifest:fifo"], 2, r"^resolve: --manifest: fifo is a FIFO"),
    ("pkg", ["verify", "--lock:fifo"], 2, r"^verify: --lock: fifo is a FIFO"),
    ("pkg", ["meta", "--lock:fifo", "--package:x", "--channel:edge"], 2, r"^meta: --lock: fifo is a FIFO"),
    ("pkg", ["checkout", f"--cid:{CID}", "--store:garbage"], 2,
     r"^checkout: --store: garbage is not a directory$"),
    ("pkg", ["checkout", f"--cid:{CID}", "--pkg-cache:garbage"], 2,
     r"^checkout: --pkg-cache: garbage is not a directory$"),
    ("pkg", ["diff", f"--from:{CID}", f"--to:{CID}", "--store:garbage"], 2,
     r"^diff: --store: garbage is not a directory$"),
    # outputs that cannot be written: the flag is named, not a temp file
    ("registry", ["prove", "--line:1", "--registry:r.jsonl", "--out:adir"], 2,
     r"^prove: --out: adir is a directory$"),
    ("registry", ["prove", "--line:1", "--registry:r.jsonl", "--out:garbage/p"], 2,
     r"^prove: --out: cannot write garbage/p$"),
    ("registry", ["keygen", "--out:adir"], 2, r"^keygen: --out: adir is a directory$"),
    ("registry", ["keygen", "--out:dangling"], 2, r"^keygen: dangling already exists$"),
    ("pkg", ["resolve", "--manifest:pkg", "--out:adir"], 2, r"^resolve: --out: adir is a directory$"),
    ("pkg", ["meta", "--lock:empty", "--package:x", "--channel:edge", "--out:adir"], 2,
     r"^meta: --out: adir is a directory$"),
    # huge values
    ("registry", ["publish", *_PUB, "--epoch:99999999999999999999999999", "--src:pkg"], 2,
     r"^publish: argument --epoch: .* above the largest allowed"),
    ("registry", ["checkpoint", "--priv:k1.json", "--registry:r.jsonl", "--ttl:99999999"], 2,
     r"^checkpoint: --ttl:99999999 is too long$"),
    ("registry", ["checkpoint", "--priv:k1.json", "--registry:r.jsonl", "--ttl:1" + "0" * 30], 2,
     r"^checkpoint: argument --ttl: .* above the largest allowed"),
    ("registry", ["prove", "--line:0", "--registry:r.jsonl"], 2,
     r"^prove: argument --line: must be at least 1$"),
    # missing / wrong-typed values and unknown commands (were right before; kept)
    ("pkg", ["resolve"], 2, r"^resolve: missing --manifest$"),
    ("pkg", ["verify", "--lock:garbage"], 2, r"^verify: load lock failed$"),
    ("pkg", ["nosuch"], 2, r"^cheng-pkg: unknown command 'nosuch'$"),
    ("registry", ["publish", *_PUB, "--epoch:abc", "--src:pkg"], 2,
     r"^publish: argument --epoch: 'abc' is not"),
    ("registry", ["publish", *_PUB, "--epoch:1", "--src:pkg", "--file:garbage"], 2,
     r"^publish: argument --file: not allowed with argument --src$"),
    ("pkg", ["config", "show", "--level:L9"], 2, r"^config: unknown security level 'L9'$"),
    # key and config files that are FIFOs or directories: refused, never read
    ("registry", ["checkpoint", "--priv:fifo", "--registry:r.jsonl"], 2,
     r"^checkpoint: cannot read key file fifo$"),
    ("registry", ["checkpoint", "--priv:adir", "--registry:r.jsonl"], 2,
     r"^checkpoint: cannot read key file adir$"),
    ("registry", ["rotate-key", "--package:pkg://cheng/x", "--priv:k1.json", "--new:fifo",
                  "--registry:r.jsonl"], 2, r"^rotate-key: cannot read public key from fifo$"),
    ("pkg", ["config", "show", "--config:fifo"], 2, r"^config: --config: fifo is a FIFO"),
    ("pkg", ["search", "--config:fifo"], 2, r"^search: --config: fifo is a FIFO"),
    ("registry", ["verify", "--config:fifo"], 2, r"^verify: --config: fifo is a FIFO"),
    ("pkg", ["verify", "--lock:empty", "--config:fifo"], 2, r"^verify: --config: fifo is a FIFO"),
    ("chengc", [*_CC, "--lock:fifo"], 2, r"^chengc: --lock: fifo is a FIFO"),
    ("chengc", [*_CC, "--manifest:fifo"], 2, r"^chengc: --manifest: fifo is a FIFO"),
    ("chengc", [*_CC, "--registry:fifo", "--lock:x"], 2, r"^chengc: --registry: fifo is a FIFO"),
    ("chengc", [*_CC, "--meta-out:fifo"], 2, r"^chengc: --meta-out: fifo is not a regular file$"),
    ("chengc", [*_CC, "--out:fifo"], 2, r"^chengc: --out: .*fifo is not a regular file$"),
    ("chengc", [*_CC, "--emit:bundle", "--out:fifo"], 2, r"^chengc: --out: fifo is not a regular file$"),
    # chengc: sources and outputs of the wrong kind, empty values, --run with --reproducible-check
    ("chengc", ["adir", "--compiler:bin/chengc"], 2, r"^chengc: source is a directory: adir$"),
    ("chengc", ["fifo", "--compiler:bin/chengc"], 2, r"^chengc: source is not a regular file: fifo$"),
    ("chengc", ["dangling", "--compiler:bin/chengc"], 2, r"^chengc: source is a dangling symlink: dangling$"),
    ("chengc", [*_CC, "--out:adir"], 2, r"^chengc: --out: .*adir is a directory$"),
    ("chengc", [*_CC, "--out:garbage/x"], 2, r"^chengc: --out: cannot write .*garbage/x$"),
    ("chengc", [*_CC, "--meta-out:adir"], 2, r"^chengc: --meta-out: adir is a directory$"),
    ("chengc", [*_CC, "--emit:bundle", "--out:adir"], 2, r"^chengc: --out: adir is a directory$"),
    ("chengc", [*_CC, "--pkg-cache:garbage"], 2, r"^chengc: --pkg-cache: garbage is not a directory$"),
    ("chengc", [*_CC, "--out:"], 2, r"^chengc: --out: empty value$"),
    ("chengc", [*_CC, "--name="], 2, r"^chengc: --name: empty value$"),
    ("chengc", [*_CC, "--run", "--reproducible-check"], 2,
     r"^chengc: --reproducible-check cannot be combined"),
]


@pytest.mark.parametrize(("tool", "argv", "code", "first"), BAD,
                         ids=[f"{t}-{'_'.join(a)[:60]}" for t, a, _, _ in BAD])
def test_bad_invocation(world: Path, tool: str, argv: list[str], code: int, first: str) -> None:
    def hung(_sig: int, _frame: object) -> None:
        raise _Hung

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)  # a regression that reads a FIFO fails this row instead of hanging the suite
    try:
        rc, _out, err = invoke(tool, argv, world)
    except _Hung:
        pytest.fail(f"{tool} {argv} blocked")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert "Traceback" not in err
    assert rc == code, err
    lines = err.splitlines()
    assert lines and re.search(first, lines[0]), err


def test_nothing_half_written(world: Path) -> None:
    """A refused --out leaves no temp file behind in the target's directory."""
    before = sorted(p.name for p in world.iterdir())
    invoke("registry", ["prove", "--line:1", "--registry:r.jsonl", "--out:adir"], world)
    invoke("chengc", [*_CC, "--out:adir"], world)
    assert sorted(p.name for p in world.iterdir()) == before
    assert not list((world / "adir").iterdir())


def test_chengc_replays_without_byte_buffer(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An embedding whose sys.stdout has no ``.buffer`` still gets the compiler's output."""
    old = sys.stdout
    sys.stdout = io.StringIO()
    cwd = os.getcwd()
    os.chdir(world)
    try:
        rc = chengc_cli.main([*_CC, "--name:replay", "--no-cache"])
        text = sys.stdout.getvalue()
    finally:
        os.chdir(cwd)
        sys.stdout = old
    assert rc == 0
    assert "fake-chengc" in text


HELP: list[tuple[str, list[str]]] = [
    *[("registry", [c, "--help"]) for c in registry_cli.COMMANDS],
    *[("pkg", [c, "--help"]) for c in ("resolve", "verify", "meta", "log", "diff", "checkout",
                                       "publish", "search", "config")],
    ("chengc", ["--help"]),
]


@pytest.mark.parametrize(("tool", "argv"), HELP, ids=[f"{t}-{a[0]}" for t, a in HELP])
def test_help_teaches(world: Path, tool: str, argv: list[str]) -> None:
    """--help exits 0, explains every flag it lists, and shows at least one example."""
    rc, out, err = invoke(tool, argv, world)
    assert rc == 0, err
    assert "examples:" in out
    example_tool = {"pkg": "cheng-pkg", "registry": "cheng-registry", "chengc": "chengc"}[tool]
    after = out.split("examples:", 1)[1]
    assert re.search(rf"^\s+{example_tool}\b", after, re.M), out
    for action in _parser_of(tool, argv[0])._actions:
        assert action.help, f"{action.option_strings or action.dest} has no help text"


def _parser_of(tool: str, name: str) -> argparse.ArgumentParser:
    """The parser the dispatcher builds for ``tool name`` (or chengc's own)."""
    if tool == "chengc":
        return chengc_cli._parser()
    table = registry_cli.COMMANDS if tool == "registry" else pkg_cli.COMMANDS
    module = importlib.import_module(table[name].module)
    parser = Parser(prog=f"{tool} {name}")
    module.register(name, parser)
    return parser


@pytest.mark.parametrize(("tool", "argv", "code", "first"), [
    ("cheng_build.cli.registry", ["verify", "--registry:fifo"], 2,
     "verify: --registry: fifo is a FIFO (named pipe)"),
    ("cheng_build.cli.pkg", ["resolve", "--manifest:fifo"], 2,
     "resolve: --manifest: fifo is a FIFO (named pipe)"),
    ("cheng_build.cli.chengc", ["adir"], 2, "chengc: source is a directory: adir"),
    ("cheng_build.cli.registry", ["prove", "--line:1", "--registry:r.jsonl", "--out:adir"], 2,
     "prove: --out: adir is a directory"),
])
def test_real_entry_points(world: Path, tool: str, argv: list[str], code: int, first: str) -> None:
    """The console entry points as a person runs them (a FIFO read would hang until the timeout)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", tool, *argv], cwd=world, env=env, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == code, p.stderr
    assert p.stderr.splitlines()[0] == first
    assert "Traceback" not in p.stderr


def test_lock_hook_names_a_broken_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A staged manifest that does not parse is reported as such, not as 'has dependencies'."""
    from cheng_build.cli.lock_hook import main as hook_main

    (tmp_path / "cheng-package.toml").write_bytes(b"garbage [[ \xff")
    rc = hook_main([str(tmp_path / "cheng-package.toml")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.splitlines()[0] == "verify: load manifest failed"
    assert "has dependencies" not in err


def test_registry_verify_store_says_what_it_checked(world: Path) -> None:
    """--store with none of the snapshots must not look like a full content check."""
    rc, out, err = invoke("registry", ["verify", "--registry:r.jsonl", "--store:adir"], world)
    assert rc == 0, err
    assert "store: 0 snapshot(s) hash to their signed CIDs; 1 not in adir" in out
    rc, out, err = invoke("registry", ["verify", "--registry:r.jsonl", "--store:st"], world)
    assert rc == 0, err
    assert "store: 1 snapshot(s) hash to their signed CIDs; 0 not in st" in out
