"""Helpers for the multi-node CIS tests: node processes, a DAG in a workspace, a cuttable proxy."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers_synapse import Synapse


def cis_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIS_")}
    env.update(CIS_HOME=str(home), CIS_SANDBOX="unsandboxed", **extra)
    return env


def conn_flags(hs: Synapse, user: str, room: str, where: Path, url: str | None = None) -> list[str]:
    return [f"--homeserver:{url or hs.url}", f"--user:{user}",
            f"--password-file:{hs.password_file(user, where)}", f"--room:{room}"]


@dataclass
class Node:
    user: str
    proc: subprocess.Popen[bytes]
    home: Path
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def start_node(hs: Synapse, user: str, room: str, ws: Path, tmp: Path, caps: Sequence[str], *,
               jobs: int = 2, lease: float = 10.0, url: str | None = None,
               extra: Sequence[str] = ()) -> Node:
    home = tmp / f"home-{user}"
    home.mkdir(parents=True, exist_ok=True)
    log = tmp / f"node-{user}.log"
    argv = [sys.executable, "-m", "cheng_build.cli.cis", "node", *conn_flags(hs, user, room, tmp, url),
            f"--workspace:{ws}", f"--caps:{','.join(caps)}", "--no-detect", "--no-mdns",
            f"--jobs:{jobs}", f"--lease:{lease}", *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=cis_env(home),
                                start_new_session=True)
    return Node(user, proc, home, log)


def wait_for(cond: Callable[[], bool], timeout: float, what: str, logs: Sequence[Node] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    detail = "\n".join(f"--- {n.user}\n{n.text()[-2500:]}" for n in logs)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail}")


def write_dag(ws: Path, name: str, tasks: Sequence[dict[str, Any]], policy: str = "AllowDebt") -> Path:
    """A cis.toml from plain dicts (TOML written by hand: inline tables only)."""
    lines = [f'name = "{name}"', f'policy = "{policy}"']
    for i, t in enumerate(tasks):
        lines += ["[[tasks]]", f"idx = {i}", f'name = "{t["name"]}"']
        if t.get("deps"):
            lines.append(f"deps = {json.dumps(t['deps'])}")
        parts = [f"cmd = {json.dumps(t['cmd'])}"]
        if t.get("env"):
            parts.append("env = { " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in t["env"].items())
                         + " }")
        if t.get("cwd"):
            parts.append(f"cwd = {json.dumps(t['cwd'])}")
        lines.append(f"exec = {{ {', '.join(parts)} }}")
        if t.get("caps"):
            lines.append(f"capabilities = {json.dumps(t['caps'])}")
        if t.get("level"):
            lines.append(f'level = "{t["level"]}"')
        if t.get("ignorable"):
            lines.append("ignorable = true")
    p = ws / "cis.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def origin_run(hs: Synapse, user: str, room: str, dag: Path, tmp: Path, home: Path,
               *extra: str) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    out = open(tmp / "origin.log", "wb")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen([sys.executable, "-m", "cheng_build.cli.cis", "run", str(dag),
                                 *conn_flags(hs, user, room, tmp), "--format:json", *extra],
                                stdout=subprocess.PIPE, stderr=out, env=cis_env(home),
                                start_new_session=True)
    finally:
        out.close()


def cis(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", *args], capture_output=True,
                          text=True, timeout=timeout, env=cis_env(home))


@dataclass
class Proxy:
    """A TCP forwarder to ``target`` on 127.0.0.1 that the test can cut (connections refused and
    dropped: the node behind it is an island) and heal (same port)."""

    target: int
    port: int = 0
    _listener: socket.socket | None = None
    _conns: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        self.port = s.getsockname()[1]
        s.listen(64)
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                c.close()
                continue
            with self._lock:
                self._conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self._conns.clear()

    def heal(self) -> None:
        self.open()
