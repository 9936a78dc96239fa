"""Helpers for the compute tests: DAG directories, keys, CIDs, executor nodes on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cheng_build
from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import cid_str
from cheng_build.cas.importer import import_path
from cheng_build.trust.keys import KeyPair, write_keyfile

# Where the cheng_build this test process runs lives: the checkout (PYTHONPATH) or the installed
# wheel; child processes get the same one.
PKG_PARENT = Path(cheng_build.__file__).resolve().parents[1]
PY = sys.executable


def keyfile(path: Path, author: str) -> KeyPair:
    key = KeyPair.generate(author)
    write_keyfile(key, path)
    return key


def code_dir(path: Path, cmd: list[str], *, extra: str = "") -> Path:
    """A code directory whose cis.toml runs ``cmd`` as its one task."""
    path.mkdir(parents=True)
    (path / "cis.toml").write_text(
        f'name = "job"\npolicy = "AllSuccess"\n{extra}\n[[tasks]]\nidx = 0\nname = "run"\n'
        f"exec = {{ cmd = {json.dumps(cmd)}, timeout = 120 }}\n")
    return path


def put(root: Path, path: Path) -> str:
    return cid_str(import_path(Blockstore(root), path, pin=True).root)


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(PKG_PARENT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


class Executor:
    """An executor node in a child process, stopped (by its pid) when the test ends."""

    def __init__(self, root: Path, key: Path, *extra: str, log: Path) -> None:
        self.log = log
        self.fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [PY, "-m", "cheng_build.cli.storage", "executor", "--listen:/ip4/127.0.0.1/tcp/0",
             f"--priv:{key}", f"--root:{root}", *extra],
            stdout=self.fh, stderr=subprocess.STDOUT, env=env(), start_new_session=True)
        deadline = time.monotonic() + 60
        self.addr = ""
        while time.monotonic() < deadline and self.proc.poll() is None:
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("executor listening: "):
                    self.addr = line.split(": ", 1)[1]
            if self.addr:
                break
            time.sleep(0.1)
        if not self.addr:
            self.stop()
            raise RuntimeError(f"executor did not start: {log.read_text(errors='replace')}")

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.fh.close()


def storage(*argv: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "cheng_build.cli.storage", *argv], capture_output=True,
                          text=True, env=env(), cwd=cwd, timeout=timeout)


def ledger_events(path: Path) -> list[dict[str, object]]:
    from cheng_build.ledger.log import iter_events

    return list(iter_events(path))
