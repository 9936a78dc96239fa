"""Rollback: the undo script written before a run, and running one task's rollback argv.

``undo-<run_id>.sh`` (in the run's directory, ``$CIS_HOME/runs/<run_id>/``) is a POSIX shell
script with every task's ``rollback`` argv in reverse index order, each quoted with
:func:`shlex.quote` and run from the directory the task ran in. It is for a person to read and run
by hand; the engine itself never runs a shell, it runs one failed task's ``rollback`` argv
directly (see :func:`rollback_argv`).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from cheng_build.cis.dag.model import Dag, Task
from cheng_build.core.atomic import atomic_write_text


def task_cwd(dag: Dag, task: Task, task_dir: str | None) -> str:
    """The directory a task runs in: its ``exec.cwd`` under the DAG's directory, else its own."""
    if task.exec.cwd is not None:
        return os.path.normpath(os.path.join(dag.base_dir, task.exec.cwd))
    return task_dir or dag.base_dir


def undo_script(dag: Dag, run_id: str, run_dir: Path) -> str:
    """The text of ``undo-<run_id>.sh``."""
    lines = ["#!/bin/sh", f"# undo-{run_id}.sh: rollback steps of DAG {dag.name!r}, last task first.",
             "# Written by cis before the run started; run it by hand to undo the run's effects.",
             "set -u", ""]
    steps = 0
    for task in reversed(dag.tasks):
        if task.rollback is None:
            continue
        cwd = task_cwd(dag, task, None)
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in task.exec.env)
        cmd = " ".join(shlex.quote(a) for a in task.rollback)
        lines.append(f"# task {task.idx} {task.name}")
        lines.append(f"(cd {shlex.quote(cwd)} 2>/dev/null || cd {shlex.quote(dag.base_dir)}; "
                     f"env -i {env + ' ' if env else ''}{cmd}) || "
                     f"echo 'undo: task {task.idx} rollback failed' >&2")
        steps += 1
    if not steps:
        lines.append("# no task declares a rollback")
    return "\n".join(lines) + "\n"


def write_undo_script(dag: Dag, run_id: str, run_dir: Path) -> Path:
    """Write ``run_dir/undo-<run_id>.sh`` atomically (mode 0755) and return its path."""
    path = run_dir / f"undo-{run_id}.sh"
    atomic_write_text(path, undo_script(dag, run_id, run_dir), mode=0o755)
    return path
