"""Hole 8 of issue 13: a failed append never leaves a torn registry; a crash's torn tail is
repaired by one command.

The disk filling up is reproduced for real with the file-size limit (``RLIMIT_FSIZE``): the
kernel writes as much of the line as fits, then fails the write, exactly as a full disk does.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_trust import Cli, key, publish_dir

FS = "pkg://cheng/fs"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, monkeypatch, capfd)


def _registry(cli: Cli) -> Path:
    reg = cli.tmp / "registry.jsonl"
    publish_dir(cli.tmp, reg, key("node:alice"), FS, {"src/fs.cheng": "fn Read(): int32 = 1\n"})
    assert cli.registry("keygen", "--out:op.json", "--author:op:main")[0] == 0
    return reg


def _env() -> dict[str, str]:
    import cheng_build

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(cheng_build.__file__).resolve().parent.parent)
    return env


def test_append_that_runs_out_of_space_is_rolled_back(cli: Cli) -> None:
    reg = _registry(cli)
    before = reg.read_bytes()
    limit = len(before) + 40  # room for part of the checkpoint line, not all of it

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = subprocess.run([sys.executable, "-m", "cheng_build.cli.registry", "checkpoint",
                        f"--registry:{reg}", "--priv:op.json"], cwd=cli.tmp, env=_env(),
                       preexec_fn=cap, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert p.stderr.splitlines()[0] == "checkpoint: cannot append to the registry: File too large"
    assert "rolled back" in p.stderr and "how:" in p.stderr
    assert reg.read_bytes() == before  # not one byte of the failed line is left
    # The log is not wedged: verify and the next append work.
    assert cli.registry("verify", f"--registry:{reg}")[0] == 0
    rc, _, err = cli.registry("checkpoint", f"--registry:{reg}", "--priv:op.json")
    assert rc == 0, err


def test_repair_cuts_only_a_torn_tail_and_says_what(cli: Cli) -> None:
    reg = _registry(cli)
    good = reg.read_bytes()
    with reg.open("ab") as f:  # what a publisher killed mid-write leaves
        f.write(b'{"type":"publish","seq":2,"prev":"sha256:00')
    rc, _, err = cli.registry("verify", f"--registry:{reg}")
    assert rc == 1 and err.splitlines()[0] == "verify: line 2: truncated last line (no newline at the end)"
    assert "cheng-registry repair" in err
    rc, out, err = cli.registry("repair", f"--registry:{reg}")
    assert rc == 0, err
    assert out.splitlines()[0] == ('repair: removed 43 bytes of unterminated line 2: '
                                   '{"type":"publish","seq":2,"prev":"sha256:00')
    assert reg.read_bytes() == good
    assert cli.registry("verify", f"--registry:{reg}")[0] == 0
    rc, out, _ = cli.registry("repair", f"--registry:{reg}", "--format:json")
    assert rc == 0 and '"removed_bytes": 0' in out
    # A complete line is never touched, however wrong: that is verify's to name.
    with reg.open("ab") as f:
        f.write(b"garbage\n")
    rc, out, _ = cli.registry("repair", f"--registry:{reg}")
    assert rc == 0 and out.startswith("repair: nothing to repair")
    assert reg.read_bytes() == good + b"garbage\n"
    rc, _, err = cli.registry("repair", "--registry:missing.jsonl")
    assert rc == 2 and err.splitlines()[0] == "repair: registry missing.jsonl not found"
