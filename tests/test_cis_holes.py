"""The CIS holes of issue 13, each performed end to end through ``cis`` (and ``cis web``) and
shown refused: #4 a log link, #5 a task approving its own gate, #6 leaving the pids cgroup,
#9 a NUL byte, #13 malformed requests to ``cis web``, #14 a host UNIX socket, #15 an honest
verify-sandbox. docs/security.md (its CIS section) lists them with these tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from helpers_cis import cli_env, wait_for
from helpers_cissec import NSINIT_IMPLS, last_run, need_mode, nsinit_env, run_in, write_dag
from helpers_cisweb import login

from cheng_build.cis.dag.toml_io import load_dag
from cheng_build.cis.run import control
from cheng_build.cis.sandbox import launch as sandbox

PATH_ENV = {"PATH": "/usr/bin:/bin"}


# --- #4: a task replaces its log by a link (or a FIFO) -------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize("mode", ["bwrap", "namespaces"])
def test_a_log_link_does_not_make_cis_read_the_file(tmp_path: Path, mode: str) -> None:
    need_mode(mode)
    key = f"PRIVATE-KEY-{secrets.token_hex(8)}"
    secret = tmp_path / "dot-ssh" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text(key + "\n")
    script = 'rm -f stderr.log stdout.log; ln -s "$0" stderr.log; ln -s "$0" stdout.log; exit 1'
    dag = write_dag(tmp_path / "dag" / "cis.toml", "leak", [
        {"name": "leak", "exec": {"cmd": ["sh", "-c", script, str(secret)], "env": PATH_ENV}}])
    home = tmp_path / "home"
    r = run_in(mode, home, "run", str(dag))
    assert r.returncode == 1
    assert key not in r.stdout + r.stderr
    assert "log not read: stderr.log is a symbolic link" in r.stdout, r.stdout
    d = run_in(mode, home, "debt")
    assert key not in d.stdout and "log not read: stderr.log is a symbolic link" in d.stdout
    s = run_in(mode, home, "status", last_run(home, mode)["run_id"], "--format:json")
    assert key not in s.stdout
    # The web view's log endpoint refuses it too.
    from helpers_cisweb import get, web_server

    rid = last_run(home, mode)["run_id"]
    with web_server(home) as srv:
        for stream in ("stderr", "stdout"):
            status, body = get(srv, f"/api/runs/{rid}/tasks/leak/log?stream={stream}")
            assert status == 403 and key.encode() not in body
            assert b"symbolic link" in body


@pytest.mark.parametrize(("script", "said"), [
    ("rm -f stderr.log; mkfifo stderr.log; exit 1", "stderr.log is a FIFO"),  # would hang cis
    ('rm -f stderr.log; ln "$0" stderr.log; exit 1', "stderr.log has 2 hard links")])
def test_a_log_fifo_or_hard_link_is_not_read(tmp_path: Path, script: str, said: str) -> None:
    key = f"PRIVATE-KEY-{secrets.token_hex(8)}"
    secret = tmp_path / "id_ed25519"
    secret.write_text(key + "\n")
    dag = write_dag(tmp_path / "dag" / "cis.toml", "fifo", [
        {"name": "fifo", "exec": {"cmd": ["sh", "-c", script, str(secret)], "env": PATH_ENV}}])
    r = run_in("unsandboxed", tmp_path / "home", "run", str(dag), timeout=60)
    assert r.returncode == 1
    assert f"log not read: {said}" in r.stdout, r.stdout
    assert key not in r.stdout + run_in("unsandboxed", tmp_path / "home", "debt").stdout


def test_a_link_planted_where_the_next_log_goes_is_not_truncated(tmp_path: Path) -> None:
    # Attempt 1 plants a link where attempt 2's stdout.log will be created (a task that can
    # write the run's directory: unsandboxed); the engine must not truncate the link's target.
    victim = tmp_path / "notes.txt"
    victim.write_text("keep me\n")
    script = 'd="$(dirname "$PWD")/000-a2"; mkdir -p "$d"; ln -s "$0" "$d/stdout.log"; exit 1'
    dag = write_dag(tmp_path / "dag" / "cis.toml", "plant", [
        {"name": "plant", "level": {"Mechanical": {"retry": 1}},
         "exec": {"cmd": ["sh", "-c", script, str(victim)], "env": PATH_ENV}}])
    r = run_in("unsandboxed", tmp_path / "home", "run", str(dag), timeout=60)
    assert r.returncode == 1
    assert victim.read_text() == "keep me\n"
    assert "task plant: cannot create its logs in" in r.stdout, r.stdout


# --- #5: a task with network = true approves its own gate ----------------------------------------


@contextlib.contextmanager
def cis_web(home: Path) -> Iterator[tuple[str, str]]:
    """The real ``cis web`` on a free port: (base URL, the one-time login link it printed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "cheng_build.cli.cis", "web", f"--port:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(home))
    try:
        assert proc.stdout is not None
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert first.startswith("cis web: serving http://127.0.0.1:"), first + proc.stderr.read()
        base = first.split("serving ", 1)[1].split()[0]
        link = second.split("open ", 1)[1].strip()
        assert link.startswith(base + "login?code="), second
        yield base, link
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)


# What a malicious task does: read the page for its token, find the run, press confirm.
_ATTACK = r"""
import json, re, sys, urllib.request, urllib.error
base = sys.argv[1]
def call(path, data=None, headers={}):
    req = urllib.request.Request(base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
status, page = call("")
m = re.search(r'name="cis-token" content="([^"]+)"', page)
token = m.group(1) if m else ""
print("GET / ->", status, "token found" if token else "no token")
status, runs = call("api/runs")
print("GET /api/runs ->", status)
ids = [r["run_id"] for r in json.loads(runs)] if status == 200 else [sys.argv[2]]
for rid in ids:
    status, body = call(f"api/runs/{rid}/tasks/deploy/confirm", b"{}",
                        {"X-CIS-Token": token, "Content-Type": "application/json"})
    print("POST confirm ->", status, body[:80])
"""


@pytest.mark.network
@pytest.mark.parametrize("mode", ["bwrap", "namespaces", "unsandboxed"])
def test_a_networked_task_cannot_approve_its_own_gate(tmp_path: Path, mode: str) -> None:
    need_mode(mode)
    home = tmp_path / "home"
    with cis_web(home) as (base, link):
        dag = write_dag(tmp_path / "dag" / "cis.toml", "gate", [
            {"name": "attacker", "exec": {"cmd": [sys.executable, "-c", _ATTACK, base, "?"],
                                          "sandbox": {"network": True}, "timeout": 60}},
            {"name": "deploy", "deps": [0], "level": "Confirmed",
             "exec": {"cmd": ["sh", "-c", "echo deployed > deployed.txt"], "cwd": ".",
                      "env": PATH_ENV}}])
        r = run_in(mode, home, "run", str(dag), "--detach")
        rid = r.stdout.strip().splitlines()[0]
        assert r.returncode == 0, r.stdout + r.stderr

        def gate() -> dict:
            s = json.loads(run_in(mode, home, "status", rid, "--format:json").stdout)
            return {t["name"]: t for t in s["tasks"]}

        wait_for(lambda: gate()["deploy"]["gate"] == "confirm", timeout=60, what="deploy gate")
        time.sleep(1.0)  # let any request the attacker queued reach the engine
        assert gate()["deploy"]["state"] == "Pending" and gate()["deploy"]["gate"] == "confirm"
        assert not (tmp_path / "dag" / "deployed.txt").exists()
        out = next((home / "runs" / rid / "tasks").glob("000-a*/stdout.log")).read_text()
        assert "GET / -> 401 no token" in out, out
        assert "GET /api/runs -> 401" in out and "POST confirm -> 403" in out, out
        # The person who ran `cis web` opens its link (once) and confirms.
        cookie, token = login(link)
        with pytest.raises(urllib.error.HTTPError) as again:
            urllib.request.urlopen(link, timeout=10)
        assert again.value.code == 403  # a used link opens nothing
        req = urllib.request.Request(f"{base}api/runs/{rid}/tasks/deploy/confirm", data=b"{}",
                                     headers={"Cookie": cookie, "X-CIS-Token": token,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as resp:
            assert resp.status == 200
        wait_for(lambda: gate()["deploy"]["state"] == "Completed", timeout=60, what="deploy")


# --- #6: namespaces as root, the task leaves its pids cgroup -------------------------------------

_ESCAPE = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
# First lift the cover (uid 0 of its user namespace; every capability should be gone).
if libc.umount2(b"/sys/fs/cgroup", 2) == 0:
    print("unmounted the cover")
else:
    print("umount blocked:", os.strerror(ctypes.get_errno()))
try:
    with open("/sys/fs/cgroup/pids/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
    print("escaped the pids cgroup")
except OSError as e:
    print("escape blocked:", e.strerror)
n = 0
for _ in range(60):
    try:
        if os.fork() == 0:
            time.sleep(3); os._exit(0)
        n += 1
    except OSError:
        break
print("forked", n)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not sandbox.pids_cgroup_available(),
                    reason="the attack needs an engine running as root with cgroup v1 pids")
@pytest.mark.parametrize("impl", NSINIT_IMPLS)
def test_namespaces_task_as_root_cannot_leave_its_pids_cgroup(tmp_path: Path, impl: str) -> None:
    need_mode("namespaces")
    env = nsinit_env(impl)
    dag = write_dag(tmp_path / "dag" / "cis.toml", "bomb", [
        {"name": "bomb", "exec": {"cmd": [sys.executable, "-c", _ESCAPE], "timeout": 60,
                                  "sandbox": {"processes": 20}}}])
    home = tmp_path / "home"
    r = run_in("namespaces", home, "run", str(dag), **env)
    assert r.returncode == 0, r.stdout + r.stderr
    out = next((home / "runs").glob("*/tasks/000-a1/stdout.log")).read_text()
    assert "umount blocked: Operation not permitted" in out, out
    assert "escape blocked" in out, out
    forked = int(re.search(r"forked (\d+)", out).group(1))  # type: ignore[union-attr]
    assert forked < 20, out
    v = json.loads(run_in("namespaces", home, "verify-sandbox", "--format:json", **env).stdout)
    rows = {p["name"]: p for p in v["properties"]}
    assert rows["cgroups locked"]["held"] is True, rows["cgroups locked"]
    assert rows["process limit"]["held"] is True, rows["process limit"]


# --- #9: a NUL byte in cmd or env ------------------------------------------------------------------


def test_nul_in_cmd_or_env_is_refused_naming_the_task(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for what, exec_ in (("'exec.cmd' argument 1 holds a NUL byte", {"cmd": ["echo", "a\0b"]}),
                        ("env TOKEN holds a NUL byte", {"cmd": ["true"], "env": {"TOKEN": "x\0y"}})):
        dag = write_dag(tmp_path / "cis.toml", "nul", [{"name": "ok", "exec": {"cmd": ["true"]}},
                                                       {"name": "bad", "exec": exec_}])
        for extra in (["--dry-run"], []):
            r = run_in("unsandboxed", home, "run", str(dag), *extra)
            assert r.returncode == 2, r.stdout + r.stderr
            first = r.stderr.splitlines()[0]
            assert first == f"run: task 1 'bad': {what}: " + first.split(": ")[-1], first
            assert "Traceback" not in r.stderr and "why: " in r.stderr and "how: " in r.stderr
    assert not (home / "runs").exists() or not list((home / "runs").iterdir())


def test_a_stored_run_with_a_nul_fails_the_task_instead_of_crashing(tmp_path: Path) -> None:
    # A run stored before validation refused NULs (or edited in the database): resume it.
    home = tmp_path / "home"
    dag = load_dag(write_dag(tmp_path / "cis.toml", "old", [
        {"name": "bad", "exec": {"cmd": ["echo", "fine"]}}]))
    store = control.open_store(home)
    rid = control.create_run(store, dag)
    bad = dag.tasks[0]
    store.set_spec(rid, replace(bad, exec=replace(bad.exec, cmd=("echo", "a\0b"))))
    r = run_in("unsandboxed", home, "resume", rid)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "task bad: argument 1 holds a NUL byte" in r.stdout
    assert last_run(home, "unsandboxed")["state"] == "Failed"  # not left "Running"


# --- #13: malformed requests to cis web ------------------------------------------------------------


def _raw_post(base: str, head: str, body: bytes = b"") -> tuple[int, dict]:
    host, port = base.split("//", 1)[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data:
                hdr, _, rest = data.partition(b"\r\n\r\n")
                n = int(re.search(rb"Content-Length: (\d+)", hdr).group(1))  # type: ignore[union-attr]
                if len(rest) >= n:
                    return int(hdr.split()[1]), json.loads(rest[:n])
    raise AssertionError(f"no answer: {data!r}")


@pytest.mark.network
def test_web_answers_400_with_a_reason_to_malformed_requests(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dag = write_dag(tmp_path / "cis.toml", "w", [
        {"name": "a", "level": "Confirmed", "exec": {"cmd": ["true"]}}])
    rid = control.create_run(control.open_store(home), load_dag(dag))
    with cis_web(home) as (base, link):
        cookie, token = login(link)
        path = f"/api/runs/{rid}/tasks/a"
        for length in ("abc", "-5", "1e3"):
            status, body = _raw_post(base, f"POST {path}/confirm HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     f"Cookie: {cookie}\r\nX-CIS-Token: {token}\r\n"
                                     f"Content-Length: {length}\r\n")
            assert status == 400 and body["error"] == f"bad Content-Length {length!r}", body
            assert "decimal number" in body["why"]
        for action, payload, error in (
                ("change", {"timeout": True}, "change: timeout must be an integer, not true"),
                ("change", {"timeout": "30"}, 'change: timeout must be an integer, not "30"'),
                ("change", {"cmd": "rm -rf /"}, 'change: cmd must be a list, not "rm -rf /"'),
                ("change", {"env": ["A=1"]}, 'change: env must be an object, not ["A=1"]'),
                ("change", {"timeout": 99999}, "change: timeout 99999 out of range 0..65535 seconds"),
                ("resolve", {"value": 5}, "resolve: value must be a string, not 5"),
                ("confirm", {"force": True}, "confirm: unknown field 'force'")):
            raw = json.dumps(payload).encode()
            status, body = _raw_post(base, f"POST {path}/{action} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     f"Cookie: {cookie}\r\nX-CIS-Token: {token}\r\n"
                                     f"Content-Type: application/json\r\n"
                                     f"Content-Length: {len(raw)}\r\n", raw)
            assert status == 400 and body["error"] == error, (payload, body)
        deep = b"[" * 30000 + b"]" * 30000  # RecursionError in the JSON decoder
        status, body = _raw_post(base, f"POST {path}/change HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 f"Cookie: {cookie}\r\nX-CIS-Token: {token}\r\n"
                                 f"Content-Length: {len(deep)}\r\n", deep)
        assert status == 400 and body["error"] == "request body is not JSON", body
        # Still serving, and nothing was queued for the run.
        req = urllib.request.Request(f"{base}api/runs/{rid}", headers={"Cookie": cookie})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read())["tasks"][0]["state"] == "Pending"
    assert control.events(control.open_store(home), rid) == [] or all(
        kind != "amended" for *_x, kind, _d in control.events(control.open_store(home), rid))


# --- #14: a host UNIX socket inside the DAG directory ---------------------------------------------

_CONNECT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); s.sendall(b"hello host"); print("connected")
except OSError as e:
    print("blocked:", e.strerror)
"""


@pytest.mark.network
def test_bwrap_task_cannot_reach_a_host_unix_socket_in_its_dag_dir(tmp_path: Path) -> None:
    need_mode("bwrap")
    dag_dir = tmp_path / "dag"
    dag_dir.mkdir()
    sock_path = dag_dir / "agent.sock"
    host = socket.socket(socket.AF_UNIX)
    host.bind(str(sock_path))
    host.listen(1)
    try:
        dag = write_dag(dag_dir / "cis.toml", "sock", [
            {"name": "sock", "exec": {"cmd": [sys.executable, "-c", _CONNECT, str(sock_path)],
                                      "timeout": 60}}])
        r = run_in("bwrap", tmp_path / "home", "run", str(dag))
    finally:
        host.close()
    assert r.returncode == 0, r.stdout + r.stderr
    out = next((tmp_path / "home" / "runs").glob("*/tasks/000-a1/stdout.log")).read_text()
    assert out.startswith("blocked:"), out
    v = json.loads(run_in("bwrap", tmp_path / "home", "verify-sandbox", "--format:json").stdout)
    row = next(p for p in v["properties"] if p["name"] == "unix sockets hidden")
    assert row["held"] is True
    assert "those elsewhere on the read-only system (outside $HOME, /tmp, /run) are not" in \
        row["detail"]  # the limit, stated


# --- #15: verify-sandbox tells the truth per mode --------------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize(("mode", "held"), [("unsandboxed", False), ("namespaces", True),
                                            ("bwrap", True)])
def test_verify_sandbox_env_row_matches_what_a_task_can_read(tmp_path: Path, mode: str,
                                                              held: bool) -> None:
    need_mode(mode)
    r = run_in(mode, tmp_path / "home", "verify-sandbox", "--format:json")
    row = next(p for p in json.loads(r.stdout)["properties"] if p["name"] == "env cleared")
    assert row["held"] is held, row
    if not held:
        assert row["detail"].startswith("read from /proc/") and row["detail"].endswith("/environ")
        text = run_in(mode, tmp_path / "home", "verify-sandbox").stdout
        assert re.search(r"^env cleared .* NOT HELD  read from /proc/\d+/environ$", text, re.M), text
