"""Shared helpers for the CIS tests: build DAGs in Python, run the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cheng_build.cis.dag.model import (
    AmbiguityPolicy,
    Dag,
    DagPolicy,
    Exec,
    Isolation,
    SandboxConfig,
    Task,
    TaskLevel,
)
from cheng_build.cis.run import control
from cheng_build.cis.run.store import Store

REPO = Path(__file__).resolve().parents[1]


def task(idx: int, name: str, cmd: Sequence[str], *, deps: Sequence[int] = (),
         env: dict[str, str] | None = None, timeout: int = 60, cwd: str | None = None,
         level: TaskLevel | None = None, inputs: Sequence[str] = (), outputs: Sequence[str] = (),
         rollback: Sequence[str] | None = None, idempotent: bool = True, ignorable: bool = False,
         on_ambiguity: AmbiguityPolicy = AmbiguityPolicy.AUTO_BEST,
         isolation: Isolation = Isolation.PREFERRED, writable: Sequence[str] = ()) -> Task:
    return Task(idx=idx, name=name,
                exec=Exec(cmd=tuple(cmd), env=tuple(sorted((env or {}).items())), timeout=timeout,
                          cwd=cwd, sandbox=SandboxConfig(isolation=isolation,
                                                         writable=tuple(writable))),
                deps=tuple(deps), level=level or TaskLevel(), on_ambiguity=on_ambiguity,
                inputs=tuple(inputs), outputs=tuple(outputs),
                rollback=None if rollback is None else tuple(rollback), idempotent=idempotent,
                ignorable=ignorable)


def sh(script: str) -> list[str]:
    """An explicit shell (the argv names it; nothing runs through an implicit one)."""
    return ["sh", "-c", script]


def make_dag(base: Path, tasks: Sequence[Task], policy: DagPolicy = DagPolicy.ALLOW_DEBT,
             name: str = "t") -> Dag:
    return Dag(name=name, tasks=tuple(tasks), policy=policy, base_dir=str(base))


def run_dag(store: Store, dag: Dag, **kw: Any) -> tuple[str, control.RunView]:
    rid = control.create_run(store, dag)
    control.drive(store, rid, **kw)
    return rid, control.get_run(store, rid)


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["CIS_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def cis(home: Path, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``cis`` CLI in a subprocess."""
    return subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", *args], capture_output=True,
                          text=True, env=cli_env(home, **extra), timeout=timeout, check=False)


def wait_for(pred: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def in_new_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a new thread (a fresh worker: the node's per-thread store, environment and
    program lookups start empty), its result returned here."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]
