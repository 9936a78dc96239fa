"""build/spawn.run_captured: the posix_spawn path against subprocess (the oracle) on the same
programs: output of any size on both streams, exit codes and signals, exactly the given
environment and directory, stdin at /dev/null, the errors of a program that cannot start, and
the fallback to subprocess while another thread runs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cheng_build.build import spawn

pytestmark = pytest.mark.skipif(not hasattr(os, "posix_spawn") or not hasattr(os, "memfd_create"),
                                reason="posix_spawn/memfd_create: Linux")

PROBE = r"""
import os, sys
sys.stdout.write("cwd=" + os.getcwd() + "\n")
sys.stdout.write("env=" + ",".join(sorted(k for k in os.environ if k != "LC_CTYPE")) + "\n")
sys.stdout.write("stdin=" + repr(sys.stdin.read()) + "\n")
sys.stdout.write("fds=" + ",".join(sorted(os.listdir("/proc/self/fd"))) + "\n")
n = int(sys.argv[1])
sys.stdout.write("o" * n)
sys.stderr.write("e" * n)
sys.stdout.flush(); sys.stderr.flush()
code = int(sys.argv[2])
if code < 0:
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def _oracle(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    p = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize(("size", "code"), [(0, 0), (10, 3), (300_000, 0), (5, -9), (5, -15)])
def test_same_as_subprocess(tmp_path: Path, size: int, code: int) -> None:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ONLY_THIS": "1"}
    argv = [sys.executable, str(script), str(size), str(code)]
    assert spawn._can_spawn()
    got = spawn.run_captured(argv, str(work), env)
    want = _oracle(argv, work, env)
    assert got[0] == want[0] == code
    assert got[1] == want[1] and got[2] == want[2]
    assert f"cwd={work}".encode() in got[1] and b"stdin=''" in got[1]
    assert os.getcwd() != str(work)  # the parent is back where it was


def test_relative_program_is_found_from_the_new_directory(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    prog = tmp_path / "bin" / "hello"
    prog.write_text("#!/bin/sh\necho hi from $(pwd)\n")
    prog.chmod(0o755)
    argv = ["bin/hello"]
    assert spawn.run_captured(argv, str(tmp_path), {}) == _oracle(argv, tmp_path, {})


def test_a_bare_program_name_is_looked_up_on_path(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    assert spawn.run_captured(["sh", "-c", "echo $0"], str(tmp_path), env) == (0, b"sh\n", b"")


def test_programs_that_cannot_start_raise_as_subprocess_does(tmp_path: Path) -> None:
    no_exec = tmp_path / "noexec"
    no_exec.write_text("#!/bin/sh\necho x\n")
    no_exec.chmod(stat.S_IRUSR)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x7fELF\x00\x00garbage")
    garbage.chmod(0o755)
    for prog in (tmp_path / "missing", no_exec, garbage):
        with pytest.raises(OSError) as want:
            _oracle([str(prog)], tmp_path, {})
        with pytest.raises(OSError) as got:
            spawn.run_captured([str(prog)], str(tmp_path), {})
        assert type(got.value) is type(want.value) and got.value.errno == want.value.errno
    here = os.getcwd()
    with pytest.raises(FileNotFoundError):
        spawn.run_captured(["/bin/true"], str(tmp_path / "no-such-dir"), {})
    assert os.getcwd() == here


def test_another_thread_means_subprocess(tmp_path: Path) -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        assert not spawn._can_spawn()
        assert spawn.run_captured(["/bin/sh", "-c", "pwd; echo e >&2; exit 4"], str(tmp_path), {}) == \
            (4, f"{tmp_path}\n".encode(), b"e\n")
    finally:
        stop.set()
        t.join()
