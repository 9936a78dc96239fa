"""``cis doctor``: find what this machine lacks for CIS and the DAGs it is given, and how to fix it."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from cheng_build.cis.dag.model import Dag
from cheng_build.cis.sandbox import launch as sandbox


@dataclass(frozen=True, slots=True)
class Finding:
    """One check: ``ok`` or not, what was seen, and how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True  # a missing optional part (GPU) is reported but does not fail doctor


def _gpu() -> Finding:
    smi = shutil.which("nvidia-smi")
    version = None
    try:
        with open("/proc/driver/nvidia/version") as fh:
            version = fh.readline().strip()
    except OSError:
        pass
    if version or smi:
        return Finding("GPU driver", True, version or f"nvidia-smi at {smi}", required=False)
    return Finding("GPU driver", False, "no NVIDIA driver found (/proc/driver/nvidia absent)",
                   "only needed by GPU tasks: install the NVIDIA driver for this machine",
                   required=False)


def check(dags: Sequence[Dag] = (), home: str | None = None) -> list[Finding]:
    """Run every check; ``dags`` adds one check per program their tasks run."""
    out: list[Finding] = []
    bw = sandbox.bwrap_path()
    mode = sandbox.detect_mode(refresh=True)
    if bw:
        works = mode is sandbox.SandboxMode.BUBBLEWRAP or os.environ.get("CIS_SANDBOX")
        out.append(Finding("bubblewrap", bool(works), f"{bw}" + ("" if works else " (does not start)"),
                           "" if works else "allow unprivileged user namespaces "
                           "(sysctl kernel.unprivileged_userns_clone=1) or run in a VM"))
    else:
        out.append(Finding("bubblewrap", False, "bwrap not found",
                           "apt-get install bubblewrap (Debian/Ubuntu) or dnf install bubblewrap"))
    us = sandbox.unshare_path()
    # The namespaces sandbox exactly as tasks get it (user/mount/pid/net + nsinit's lo, cover).
    true = shutil.which("true") or "/bin/true"
    ns_ok = us is not None and sandbox._probe(sandbox.namespaces_argv(us, [true], network=False))
    out.append(Finding("user namespaces", ns_ok, "unshare -U works" if ns_ok else "unshare -U fails",
                       "" if ns_ok else "enable user namespaces: sysctl user.max_user_namespaces=15000",
                       required=False))
    out.append(Finding("sandbox mode", mode is not sandbox.SandboxMode.UNSANDBOXED,
                       mode.value, "" if mode is not sandbox.SandboxMode.UNSANDBOXED else
                       "tasks run unsandboxed (cleared env + rlimits only); install bubblewrap"))
    out.append(Finding("pidfd (Linux >= 5.3)", hasattr(os, "pidfd_open"),
                       os.uname().release, "upgrade the kernel/Python (3.9+) for pidfd_open"))
    out.append(Finding("SQLite WAL", sqlite3.sqlite_version_info >= (3, 7, 0),
                       f"SQLite {sqlite3.sqlite_version}", "install a newer SQLite"))
    from cheng_build.cis.run.store import cis_home

    h = home or str(cis_home())
    writable = os.access(h if os.path.exists(h) else os.path.dirname(h) or ".", os.W_OK)
    out.append(Finding("CIS_HOME", writable, h, "" if writable else
                       "set CIS_HOME to a writable directory"))
    out.append(_gpu())
    seen: set[str] = set()
    for dag in dags:
        for t in dag.tasks:
            for argv in (t.exec.cmd, t.rollback or ()):
                if not argv or argv[0] in seen:
                    continue
                seen.add(argv[0])
                path = sandbox.resolve_program(argv[0], t.exec.env_map)
                out.append(Finding(f"program {argv[0]}", path is not None,
                                   path or f"not found (needed by {dag.name}: task {t.idx} {t.name})",
                                   "" if path else f"install {argv[0]!r} or put it on PATH"))
    return out
