"""The rules every DAG obeys, whether read from ``cis.toml`` or built in Python.

* at most 256 tasks, and at least one;
* ``idx`` equals the task's position; names are unique and non-empty;
* deps point only to lower indexes (so no cycles and no task can appear at run time);
* ``cmd`` and ``rollback`` are argv lists run directly, never a shell string;
* when ``allow`` is given, every program (``cmd[0]``, ``rollback[0]``) is on it;
* env names are plain identifiers (values are explicit; nothing is inherited);
* timeouts and limits are within range.

Each violation is a :class:`~cheng_build.cis.dag.errors.DagError` naming the task. Inputs are
checked against the file system before a run by :func:`cheng_build.cis.dag.ambiguity.preflight`.
"""

from __future__ import annotations

import os
import re

from cheng_build.cis.dag.errors import DagError
from cheng_build.cis.dag.model import MAX_TASKS, Dag, Task

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHELL_CHARS = re.compile(r"[\s|&;<>()$`\\\"'*?]")


def _ctx(t: Task) -> str:
    return f"task {t.idx} {t.name!r}"


def program_allowed(program: str, allow: tuple[str, ...] | None) -> bool:
    """Is ``program`` on the allow list? A bare name matches an entry or an entry's basename."""
    if allow is None:
        return True
    return program in allow or os.path.basename(program) in allow or any(
        os.path.basename(a) == program for a in allow if "/" in a)


_NUL_WHY = "the operating system passes arguments and environment as C strings, which end at NUL"


def _check_argv(t: Task, argv: tuple[str, ...], key: str, allow: tuple[str, ...] | None) -> None:
    if not argv or not argv[0]:
        raise DagError(f"{_ctx(t)}: '{key}' must name a program")
    for i, arg in enumerate(argv):
        if "\0" in arg:
            raise DagError(f"{_ctx(t)}: '{key}' argument {i} holds a NUL byte: {arg!r}",
                           why=_NUL_WHY, how=f"remove the NUL (\\u0000) from {key}[{i}]")
    prog = argv[0]
    if _SHELL_CHARS.search(prog):
        raise DagError(f"{_ctx(t)}: '{key}' looks like a shell string: {prog!r}",
                       why="commands are argv lists executed directly, never through a shell",
                       how=f"split it into one element per argument, e.g. {prog.split()!r}")
    if not program_allowed(prog, allow):
        raise DagError(f"{_ctx(t)}: program {prog!r} is not on the allow list",
                       why=f"allow = {list(allow or ())!r}",
                       how=f"add {prog!r} to 'allow' or use an allowed program")


def validate_dag(dag: Dag, *, check_inputs: bool = False) -> None:
    """Check every rule; raise on the first violation.

    Args:
        dag: the DAG to check.
        check_inputs: also run :func:`ambiguity.preflight` (inputs exist or can be resolved).

    Raises:
        DagError: a rule is broken; ``what`` names the task.
    """
    if not dag.name:
        raise DagError("dag: 'name' must not be empty")
    n = len(dag.tasks)
    if n == 0:
        raise DagError("dag: no tasks", how="add at least one [[tasks]] entry")
    if n > MAX_TASKS:
        raise DagError(f"dag: {n} tasks, at most {MAX_TASKS} allowed",
                       why="a DAG is a fixed array indexed by a byte (seed: idx: u8)",
                       how="split the pipeline into several DAGs")
    seen: dict[str, int] = {}
    for pos, t in enumerate(dag.tasks):
        if t.idx != pos:
            raise DagError(f"task {pos} {t.name!r}: idx {t.idx} does not equal its position {pos}",
                           how=f"set idx = {pos} (tasks are numbered 0, 1, 2, ... in file order)")
        if not t.name:
            raise DagError(f"task {pos}: 'name' must not be empty")
        if t.name in seen:
            raise DagError(f"{_ctx(t)}: name already used by task {seen[t.name]}",
                           how="give every task a unique name")
        seen[t.name] = pos
        for d in t.deps:
            if d >= t.idx or d < 0:
                raise DagError(f"{_ctx(t)}: depends on task {d}, but deps may only point to "
                               f"lower indexes (0..{t.idx - 1})",
                               why="a DAG is ordered: forward or self dependencies would allow cycles",
                               how="move the dependency before this task or drop it")
        if len(set(t.deps)) != len(t.deps):
            raise DagError(f"{_ctx(t)}: a dependency is listed twice")
        _check_argv(t, t.exec.cmd, "exec.cmd", dag.allow)
        if t.rollback is not None:
            _check_argv(t, t.rollback, "rollback", dag.allow)
        for k, v in t.exec.env:
            if not _ENV_NAME.match(k):
                raise DagError(f"{_ctx(t)}: env name {k!r} is not a plain identifier")
            if "\0" in v:
                raise DagError(f"{_ctx(t)}: env {k} holds a NUL byte: {v!r}", why=_NUL_WHY,
                               how=f"remove the NUL (\\u0000) from the value of {k}")
        if t.exec.cwd is not None and "\0" in t.exec.cwd:
            raise DagError(f"{_ctx(t)}: exec.cwd holds a NUL byte: {t.exec.cwd!r}", why=_NUL_WHY,
                           how="remove the NUL (\\u0000) from exec.cwd")
        if not 0 <= t.exec.timeout <= 65535:
            raise DagError(f"{_ctx(t)}: timeout {t.exec.timeout} out of range 0..65535 seconds")
        if t.level.retry < 0 or t.level.retry > 255:
            raise DagError(f"{_ctx(t)}: retry {t.level.retry} out of range 0..255")
        for key, paths in (("inputs", t.inputs), ("outputs", t.outputs),
                           ("exec.sandbox.writable", t.exec.sandbox.writable)):
            for p in paths:
                if not p or "\0" in p:
                    raise DagError(f"{_ctx(t)}: empty or invalid path in '{key}'")
    if check_inputs:
        from cheng_build.cis.dag.ambiguity import preflight

        preflight(dag)
