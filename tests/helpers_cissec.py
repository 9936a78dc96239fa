"""Helpers for the CIS attack tests: write a cis.toml, run the real ``cis`` CLI in a forced
sandbox mode, and require the parts a mode needs (a failure under ``CI=true``, a skip locally)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from helpers_cis import cis

from cheng_build.cis.sandbox import launch as sandbox

MODES = ("bwrap", "namespaces", "unsandboxed")


def _works(mode: str) -> bool:
    true = "/bin/true"
    if mode == "bwrap":
        bw = sandbox.bwrap_path()
        return bool(bw) and subprocess.run(
            [bw, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
             "--die-with-parent", true], capture_output=True, check=False).returncode == 0
    if mode == "namespaces":
        us = sandbox.unshare_path()
        return bool(us) and subprocess.run(sandbox.namespaces_argv(us, [true], network=False),
                                           capture_output=True, check=False).returncode == 0
    return True


def need_mode(mode: str) -> None:
    """Skip (fail under ``CI=true``) when ``mode`` cannot run on this machine."""
    if _works(mode):
        return
    how = {"bwrap": "bubblewrap: scripts/test.sh installs it (apt-get install bubblewrap)",
           "namespaces": "unshare (util-linux) with unprivileged user namespaces "
                         "(sysctl kernel.unprivileged_userns_clone=1)"}[mode]
    msg = f"sandbox mode {mode} does not work here; needs {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


NSINIT_IMPLS = ("native", "python")


def nsinit_env(impl: str) -> dict[str, str]:
    """Env that makes the namespaces sandbox use the ``impl`` nsinit (the native one must have
    been built: ``pip install .`` or scripts/dev-build.sh)."""
    if impl == "python":
        return {"CIS_NSINIT": "python"}
    if not os.access(sandbox.NSINIT_NATIVE, os.X_OK):
        msg = (f"{sandbox.NSINIT_NATIVE} was not built: pip install . (or bash "
               "scripts/dev-build.sh) compiles it with the C core")
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return {"CIS_NSINIT": "native"}


def write_dag(path: Path, name: str, tasks: list[dict[str, Any]], policy: str = "AllSuccess") -> Path:
    """A cis.toml with ``tasks`` (idx filled in)."""
    doc = {"name": name, "policy": policy,
           "tasks": [{"idx": i, **t} for i, t in enumerate(tasks)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomlkit.dumps(doc))
    return path


def run_in(mode: str, home: Path, *args: str, timeout: float = 120,
           **env: str) -> subprocess.CompletedProcess[str]:
    """``cis <args>`` with ``CIS_SANDBOX=mode``."""
    return cis(home, *args, timeout=timeout, CIS_SANDBOX=mode, **env)


def last_run(home: Path, mode: str) -> dict[str, Any]:
    """``cis status <newest run> --format:json``."""
    runs = json.loads(run_in(mode, home, "status", "--format:json").stdout)
    out: dict[str, Any] = json.loads(run_in(mode, home, "status", runs[0]["run_id"],
                                            "--format:json").stdout)
    return out
