"""``cis verify-sandbox``: prove each sandbox property by trying to break it.

Each probe is a small Python program started exactly as a task would be (same
:func:`sandbox.launch`, same rlimits, same cleared env) that attempts one escape and exits
``0`` when the escape *worked* and ``3`` when it was stopped. The host side prepares the bait
(a file in ``$HOME``, a variable in the engine's env, a listening socket on 127.0.0.1, a
directory outside the task's) and checks the result itself where it can (a file written outside
is looked for on the host, not trusted from the probe).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cheng_build.cis.dag.model import Isolation, SandboxConfig
from cheng_build.cis.sandbox import launch as sandbox

ESCAPED = 0
HELD = 3


@dataclass(frozen=True, slots=True)
class PropertyResult:
    """One row of the table: did the sandbox hold against this attempt?"""

    name: str
    attempt: str
    held: bool | None  # None: the bait could not be set up here, so nothing was proved
    detail: str


_STARTED = "probe-started"
# Write its own pid into the root of the pids hierarchy (v1) or the unified one (v2): leaving the
# task's pids cgroup this way lifts the process limit (issue 13, hole 6).
_ESCAPE = (
    "import os\n"
    "moved, why = [], ''\n"
    "for f in ('/sys/fs/cgroup/pids/cgroup.procs', '/sys/fs/cgroup/unified/cgroup.procs',\n"
    "          '/sys/fs/cgroup/cgroup.procs'):\n"
    "    try:\n        fd = os.open(f, os.O_WRONLY)\n"
    "    except OSError as e:\n        why = why or f + ': ' + (e.strerror or str(e)); continue\n"
    "    try:\n        os.write(fd, str(os.getpid()).encode()); moved.append(f)\n"
    "    except OSError as e:\n        why = why or f + ': ' + (e.strerror or str(e))\n"
    "    finally:\n        os.close(fd)\n")
_PROBES: dict[str, str] = {
    "read-home": (
        "import sys\n"
        "try:\n    data = open(sys.argv[1]).read()\nexcept OSError as e:\n"
        "    print('blocked:', e.strerror); sys.exit(3)\n"
        "print('read', len(data), 'bytes'); sys.exit(0 if data == sys.argv[2] else 3)\n"),
    # Its own env, then every /proc/<pid>/environ it can read (the engine's among them).
    "host-env": (
        "import os, sys\n"
        "if os.environ.get(sys.argv[1]):\n    print('seen in its own env'); sys.exit(0)\n"
        "for pid in (p for p in os.listdir('/proc') if p.isdigit()):\n"
        "    try:\n        data = open('/proc/' + pid + '/environ', 'rb').read()\n"
        "    except OSError:\n        continue\n"
        "    if sys.argv[2].encode() in data:\n"
        "        print('read from /proc/' + pid + '/environ'); sys.exit(0)\n"
        "print('not seen (own env, nor any readable /proc/<pid>/environ)'); sys.exit(3)\n"),
    "network": (
        "import socket, sys\n"
        "s = socket.socket()\ns.settimeout(2)\n"
        "try:\n    s.connect(('127.0.0.1', int(sys.argv[1])))\nexcept OSError as e:\n"
        "    print('blocked:', e.strerror or e); sys.exit(3)\n"
        "print('connected'); sys.exit(0)\n"),
    "write-outside": (
        "import sys\n"
        "try:\n    open(sys.argv[1], 'w').write('escaped')\nexcept OSError as e:\n"
        "    print('blocked:', e.strerror); sys.exit(3)\n"
        "print('wrote (maybe into a private view)'); sys.exit(0)\n"),
    "cgroup-escape": (
        "import sys\n" + _ESCAPE +
        "if moved:\n    print('moved itself into', moved[0]); sys.exit(0)\n"
        "print('blocked:', why or 'no cgroup.procs visible'); sys.exit(3)\n"),
    # The escape first (as an attacker would), then the forks.
    "fork-bomb": (
        "import os, sys, time\n" + _ESCAPE +
        "n = 0\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    try:\n        pid = os.fork()\n    except OSError as e:\n"
        "        print('fork refused after', n, ':', e.strerror); sys.exit(3)\n"
        "    if pid == 0:\n        time.sleep(5); os._exit(0)\n"
        "    n += 1\n"
        "print('forked', n, *(['after moving into', moved[0]] if moved else [])); sys.exit(0)\n"),
    "unix-socket": (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\ns.settimeout(2)\n"
        "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n"
        "    print('blocked:', e.strerror or e); sys.exit(3)\n"
        "print('connected'); sys.exit(0)\n"),
    "memory": (
        "import sys\n"
        "try:\n    b = bytearray(int(sys.argv[1]) * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])\n"
        "except MemoryError:\n    print('allocation refused'); sys.exit(3)\n"
        "print('allocated'); sys.exit(0)\n"),
}


def _run_probe(name: str, args: list[str], cfg: SandboxConfig, mode: sandbox.SandboxMode,
               work: Path, env: dict[str, str], read_only: tuple[str, ...] = ()) -> tuple[int, str]:
    task_dir = work / name
    task_dir.mkdir(parents=True, exist_ok=True)
    code = f"print({_STARTED!r}, flush=True)\n" + _PROBES[name]
    spec = sandbox.LaunchSpec(argv=(sys.executable, "-S", "-c", code, *args), env=env,
                              cwd=str(task_dir), task_dir=str(task_dir), sandbox=cfg,
                              read_only=read_only)
    out_path = work / f"{name}.out"
    with open(out_path, "wb") as out:
        proc = sandbox.launch(spec, mode, stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            rc = proc.wait()
        sandbox.release(proc, wait=True)
    text = out_path.read_text(errors="replace").strip().splitlines()
    detail = (text[-1] if text else f"exit {rc}")[:120]
    if _STARTED not in text:
        # The probe never ran: that proves nothing either way, so it is not a pass.
        return -1, f"probe did not start: {detail}"
    return rc, detail


def verify(mode: sandbox.SandboxMode | None = None) -> tuple[sandbox.SandboxMode, list[PropertyResult]]:
    """Run every probe in ``mode`` (default: the best this machine has) and report each."""
    mode = mode or sandbox.detect_mode()
    results: list[PropertyResult] = []
    base = SandboxConfig(isolation=Isolation.PREFERRED)
    home = Path.home()
    canary_val = secrets.token_hex(8)
    canary = home / f".cis-verify-canary-{os.getpid()}"
    env_name = f"CIS_VERIFY_CANARY_{secrets.token_hex(4).upper()}"
    os.environ[env_name] = canary_val
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    outside_dir = Path(tempfile.mkdtemp(prefix="cis-verify-outside-", dir=str(home)
                                        if os.access(home, os.W_OK) else None))
    work = Path(tempfile.mkdtemp(prefix="cis-verify-"))
    os.chmod(work, 0o755)
    env = {"LANG": "C.UTF-8"}  # what a task would declare; the canary is *not* passed
    try:
        try:
            canary.write_text(canary_val)
        except OSError as exc:
            results.append(PropertyResult("home hidden", f"read {canary}", None,
                                          f"could not plant the bait in $HOME: {exc.strerror}"))
        else:
            rc, detail = _run_probe("read-home", [str(canary), canary_val], base, mode, work, env)
            results.append(PropertyResult("home hidden", f"read {canary}", rc == HELD, detail))

        # The bait: a process of this user that holds the canary in its environment from its
        # start, as the engine holds its own secrets (a later putenv would not show in
        # /proc/<pid>/environ, so this process's own env would prove nothing).
        holder = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(60)"],
                                  env={env_name: canary_val}, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rc, detail = _run_probe("host-env", [env_name, canary_val], base, mode, work, env)
        finally:
            holder.kill()
            holder.wait()
        results.append(PropertyResult("env cleared", f"see ${env_name} of the engine (own env "
                                      "or /proc/<pid>/environ)", rc == HELD, detail))

        rc, detail = _run_probe("network", [str(port)], base, mode, work, env)
        results.append(PropertyResult("no network", f"connect to 127.0.0.1:{port} on the host",
                                      rc == HELD, detail))

        target = outside_dir / "escaped.txt"
        rc, detail = _run_probe("write-outside", [str(target)], base, mode, work, env)
        escaped = target.exists()
        results.append(PropertyResult("writes confined", f"write {target}", rc >= 0 and not escaped,
                                      detail + ("; file is on the host" if escaped
                                                else "; host file absent")))

        results.append(_unix_socket_row(base, mode, work, env))

        cfg = SandboxConfig(isolation=Isolation.PREFERRED, processes=32)
        rc, detail = _run_probe("cgroup-escape", [], cfg, mode, work, env)
        results.append(PropertyResult("cgroups locked", "write its pid to the root pids "
                                      "cgroup.procs", rc == HELD, detail))
        rc, detail = _run_probe("fork-bomb", ["400"], cfg, mode, work, env)
        results.append(PropertyResult("process limit", "leave its pids cgroup, then fork 400 "
                                      "processes (limit 32)", rc == HELD, detail))

        cfg = SandboxConfig(isolation=Isolation.PREFERRED, memory_mib=256)
        rc, detail = _run_probe("memory", ["1024"], cfg, mode, work, env)
        results.append(PropertyResult("memory limit", "allocate 1024 MiB (limit 256)",
                                      rc == HELD, detail))
    finally:
        os.environ.pop(env_name, None)
        listener.close()
        canary.unlink(missing_ok=True)
        shutil.rmtree(outside_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return mode, results


def _unix_socket_row(base: SandboxConfig, mode: sandbox.SandboxMode, work: Path,
                     env: dict[str, str]) -> PropertyResult:
    """A host process listens on a UNIX socket inside the DAG directory (visible to the task)."""
    dag_dir = Path(tempfile.mkdtemp(prefix="cis-verify-dag-"))
    os.chmod(dag_dir, 0o755)
    path = str(dag_dir / "host.sock")
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(path)
        listener.listen(4)
        rc, detail = _run_probe("unix-socket", [path], base, mode, work, env,
                                read_only=(str(dag_dir),))
    finally:
        listener.close()
        shutil.rmtree(dag_dir, ignore_errors=True)
    limit = ("; sockets in the DAG and writable directories are hidden, those elsewhere on the "
             "read-only system (outside $HOME, /tmp, /run) are not") \
        if mode is sandbox.SandboxMode.BUBBLEWRAP else ""
    return PropertyResult("unix sockets hidden", "connect to a host UNIX socket in the DAG "
                          "directory", rc == HELD, detail + limit)
