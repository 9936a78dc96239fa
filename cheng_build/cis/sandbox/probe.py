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
_PROBES: dict[str, str] = {
    "read-home": (
        "import sys\n"
        "try:\n    data = open(sys.argv[1]).read()\nexcept OSError as e:\n"
        "    print('blocked:', e.strerror); sys.exit(3)\n"
        "print('read', len(data), 'bytes'); sys.exit(0 if data == sys.argv[2] else 3)\n"),
    "host-env": (
        "import os, sys\n"
        "v = os.environ.get(sys.argv[1])\n"
        "print('seen' if v else 'not seen'); sys.exit(0 if v else 3)\n"),
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
    "fork-bomb": (
        "import os, sys, time\n"
        "n = 0\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    try:\n        pid = os.fork()\n    except OSError as e:\n"
        "        print('fork refused after', n, ':', e.strerror); sys.exit(3)\n"
        "    if pid == 0:\n        time.sleep(5); os._exit(0)\n"
        "    n += 1\n"
        "print('forked', n); sys.exit(0)\n"),
    "memory": (
        "import sys\n"
        "try:\n    b = bytearray(int(sys.argv[1]) * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])\n"
        "except MemoryError:\n    print('allocation refused'); sys.exit(3)\n"
        "print('allocated'); sys.exit(0)\n"),
}


def _run_probe(name: str, args: list[str], cfg: SandboxConfig, mode: sandbox.SandboxMode,
               work: Path, env: dict[str, str]) -> tuple[int, str]:
    task_dir = work / name
    task_dir.mkdir(parents=True, exist_ok=True)
    code = f"print({_STARTED!r}, flush=True)\n" + _PROBES[name]
    spec = sandbox.LaunchSpec(argv=(sys.executable, "-S", "-c", code, *args), env=env,
                              cwd=str(task_dir), task_dir=str(task_dir), sandbox=cfg)
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

        rc, detail = _run_probe("host-env", [env_name], base, mode, work, env)
        results.append(PropertyResult("env cleared", f"see ${env_name} of the engine",
                                      rc == HELD, detail))

        rc, detail = _run_probe("network", [str(port)], base, mode, work, env)
        results.append(PropertyResult("no network", f"connect to 127.0.0.1:{port} on the host",
                                      rc == HELD, detail))

        target = outside_dir / "escaped.txt"
        rc, detail = _run_probe("write-outside", [str(target)], base, mode, work, env)
        escaped = target.exists()
        results.append(PropertyResult("writes confined", f"write {target}", rc >= 0 and not escaped,
                                      detail + ("; file is on the host" if escaped
                                                else "; host file absent")))

        cfg = SandboxConfig(isolation=Isolation.PREFERRED, processes=32)
        rc, detail = _run_probe("fork-bomb", ["400"], cfg, mode, work, env)
        results.append(PropertyResult("process limit", "fork 400 processes (limit 32)",
                                      rc == HELD, detail))

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
