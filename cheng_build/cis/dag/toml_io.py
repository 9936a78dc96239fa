"""Read a DAG from ``cis.toml`` (or the same shape as a dict) and write it back.

The format (the issue's, plus the optional ``exec.cwd``, ``exec.sandbox`` and ``ignorable``)::

    name = "demo"
    policy = "AllowDebt"                      # AllSuccess | FirstSuccess | AllowDebt
    allow = ["cargo", "/bin/sh"]              # optional: the only programs tasks may run
    [[tasks]]
    idx = 0
    name = "build"
    deps = []
    exec = { cmd = ["cargo", "build"], env = { RUST_LOG = "info" }, timeout = 600 }
    level = { Mechanical = { retry = 3 } }    # { Recommended = { default = "run", timeout = 30 } },
                                              # "Confirmed", { Arbitrated = { stakeholders = ["ops"] } }
    on_ambiguity = "AutoBest"                 # Suggest / Ask / Escalate
    inputs = ["Cargo.toml"]
    outputs = ["target/debug/app"]
    rollback = ["cargo", "clean"]
    idempotent = true

Parsing is strict: an unknown key, a wrong type or a shell string where an argv list belongs is
an :class:`DagError` naming the task. Semantic rules (index, deps, allow list) live in
:mod:`~cheng_build.cis.dag.validate`, which :func:`load_dag` runs after parsing.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cheng_build.cis.dag.errors import DagError
from cheng_build.cis.dag.model import (
    Action,
    AmbiguityPolicy,
    Dag,
    DagPolicy,
    Exec,
    Isolation,
    LevelKind,
    SandboxConfig,
    Task,
    TaskLevel,
    dag_to_json,
)

_DAG_KEYS = {"name", "policy", "allow", "tasks"}
_TASK_KEYS = {"idx", "name", "deps", "exec", "level", "on_ambiguity", "inputs", "outputs",
              "rollback", "idempotent", "ignorable", "capabilities"}
_EXEC_KEYS = {"cmd", "env", "timeout", "cwd", "sandbox"}
_SANDBOX_KEYS = {"isolation", "network", "cpu_seconds", "memory_mib", "open_files", "processes",
                 "file_size_mib", "writable"}
_FORMAT_HOW = "see docs/cis.md for the cis.toml format"


def _where(ctx: str, msg: str) -> DagError:
    return DagError(f"{ctx}: {msg}" if ctx else msg, how=_FORMAT_HOW)


def _check_keys(ctx: str, data: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise DagError(f"{ctx}: unknown key{'s' if len(unknown) > 1 else ''} "
                       f"{', '.join(repr(k) for k in unknown)} in {what}",
                       why=f"allowed keys: {', '.join(sorted(allowed))}", how=_FORMAT_HOW)


def _str(ctx: str, v: Any, key: str) -> str:
    if not isinstance(v, str):
        raise _where(ctx, f"'{key}' must be a string, got {type(v).__name__}")
    return v


def _int(ctx: str, v: Any, key: str, lo: int = 0, hi: int = 2**31) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _where(ctx, f"'{key}' must be an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise _where(ctx, f"'{key}' must be between {lo} and {hi}, got {v}")
    return v


def _bool(ctx: str, v: Any, key: str) -> bool:
    if not isinstance(v, bool):
        raise _where(ctx, f"'{key}' must be true or false, got {type(v).__name__}")
    return v


def _str_list(ctx: str, v: Any, key: str) -> tuple[str, ...]:
    if isinstance(v, str):
        raise DagError(f"{ctx}: '{key}' is a string; it must be a list of strings",
                       why="commands are argv lists executed directly, never through a shell",
                       how=f'write {key} = {v.split()!r} (one element per argument)'.replace("'", '"'))
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _where(ctx, f"'{key}' must be a list of strings")
    return tuple(v)


def _argv(ctx: str, v: Any, key: str) -> tuple[str, ...]:
    argv = _str_list(ctx, v, key)
    if not argv or not argv[0]:
        raise _where(ctx, f"'{key}' must name a program (an empty argv list cannot run)")
    return argv


def _enum(ctx: str, cls: Any, v: Any, key: str) -> Any:
    if isinstance(v, str):
        for m in cls:
            if m.value == v:
                return m
    choices = " | ".join(m.value for m in cls)
    raise _where(ctx, f"'{key}' must be one of {choices}, got {v!r}")


def _level(ctx: str, v: Any) -> TaskLevel:
    if v == "Confirmed":
        return TaskLevel.confirmed()
    if isinstance(v, str) and v in ("Mechanical", "Recommended", "Arbitrated"):
        v = {v: {}}
    if not isinstance(v, dict) or len(v) != 1:
        raise _where(ctx, "'level' must be \"Confirmed\" or one of { Mechanical = {...} }, "
                          "{ Recommended = {...} }, { Arbitrated = {...} }")
    (kind, params), = v.items()
    if not isinstance(params, dict):
        raise _where(ctx, f"'level.{kind}' must be a table")
    if kind == LevelKind.MECHANICAL.value:
        _check_keys(ctx, params, {"retry"}, "level.Mechanical")
        return TaskLevel.mechanical(_int(ctx, params.get("retry", 0), "level.Mechanical.retry", 0, 255))
    if kind == LevelKind.RECOMMENDED.value:
        _check_keys(ctx, params, {"default", "timeout"}, "level.Recommended")
        return TaskLevel.recommended(
            _enum(ctx, Action, params.get("default", "run"), "level.Recommended.default"),
            _int(ctx, params.get("timeout", 30), "level.Recommended.timeout", 0, 65535))
    if kind == LevelKind.ARBITRATED.value:
        _check_keys(ctx, params, {"stakeholders"}, "level.Arbitrated")
        return TaskLevel.arbitrated(_str_list(ctx, params.get("stakeholders", []),
                                              "level.Arbitrated.stakeholders"))
    if kind == LevelKind.CONFIRMED.value:
        _check_keys(ctx, params, set(), "level.Confirmed")
        return TaskLevel.confirmed()
    raise _where(ctx, f"unknown level {kind!r} (Mechanical | Recommended | Confirmed | Arbitrated)")


def _sandbox(ctx: str, v: Any) -> SandboxConfig:
    if not isinstance(v, dict):
        raise _where(ctx, "'exec.sandbox' must be a table")
    _check_keys(ctx, v, _SANDBOX_KEYS, "exec.sandbox")
    d = SandboxConfig()
    return SandboxConfig(
        isolation=_enum(ctx, Isolation, v.get("isolation", d.isolation.value), "exec.sandbox.isolation"),
        network=_bool(ctx, v.get("network", d.network), "exec.sandbox.network"),
        cpu_seconds=_int(ctx, v.get("cpu_seconds", d.cpu_seconds), "exec.sandbox.cpu_seconds"),
        memory_mib=_int(ctx, v.get("memory_mib", d.memory_mib), "exec.sandbox.memory_mib"),
        open_files=_int(ctx, v.get("open_files", d.open_files), "exec.sandbox.open_files"),
        processes=_int(ctx, v.get("processes", d.processes), "exec.sandbox.processes"),
        file_size_mib=_int(ctx, v.get("file_size_mib", d.file_size_mib), "exec.sandbox.file_size_mib"),
        writable=_str_list(ctx, v.get("writable", []), "exec.sandbox.writable"),
    )


def _exec(ctx: str, v: Any) -> Exec:
    if not isinstance(v, dict):
        raise _where(ctx, "'exec' must be a table with at least 'cmd'")
    _check_keys(ctx, v, _EXEC_KEYS, "exec")
    if "cmd" not in v:
        raise _where(ctx, "'exec.cmd' is missing")
    env = v.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(x, str)
                                            for k, x in env.items()):
        raise _where(ctx, "'exec.env' must be a table of string values (nothing is inherited)")
    cwd = v.get("cwd")
    return Exec(
        cmd=_argv(ctx, v["cmd"], "exec.cmd"),
        env=tuple(sorted(env.items())),
        timeout=_int(ctx, v.get("timeout", 0), "exec.timeout", 0, 65535),
        cwd=None if cwd is None else _str(ctx, cwd, "exec.cwd"),
        sandbox=_sandbox(ctx, v.get("sandbox", {})),
    )


def task_context(pos: int, raw: Any) -> str:
    """How errors name a task: ``task 3 'build'`` (falls back to the position)."""
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"task {pos} {name!r}" if isinstance(name, str) else f"task {pos}"


def _task(pos: int, raw: Any) -> Task:
    ctx = task_context(pos, raw)
    if not isinstance(raw, dict):
        raise _where(ctx, "each [[tasks]] entry must be a table")
    _check_keys(ctx, raw, _TASK_KEYS, "[[tasks]]")
    for key in ("idx", "name", "exec"):
        if key not in raw:
            raise _where(ctx, f"'{key}' is missing")
    deps = raw.get("deps", [])
    if not isinstance(deps, list):
        raise _where(ctx, "'deps' must be a list of task indexes")
    rollback = raw.get("rollback")
    return Task(
        idx=_int(ctx, raw["idx"], "idx", -(2**31), 2**31),
        name=_str(ctx, raw["name"], "name"),
        exec=_exec(ctx, raw["exec"]),
        deps=tuple(_int(ctx, d, "deps", -(2**31), 2**31) for d in deps),
        level=_level(ctx, raw.get("level", {"Mechanical": {"retry": 0}})),
        on_ambiguity=_enum(ctx, AmbiguityPolicy, raw.get("on_ambiguity", "AutoBest"), "on_ambiguity"),
        inputs=_str_list(ctx, raw.get("inputs", []), "inputs"),
        outputs=_str_list(ctx, raw.get("outputs", []), "outputs"),
        rollback=None if rollback is None else _argv(ctx, rollback, "rollback"),
        idempotent=_bool(ctx, raw.get("idempotent", True), "idempotent"),
        ignorable=_bool(ctx, raw.get("ignorable", False), "ignorable"),
        capabilities=_capabilities(ctx, raw.get("capabilities", [])),
    )


def _capabilities(ctx: str, v: Any) -> tuple[str, ...]:
    caps = _str_list(ctx, v, "capabilities")
    for c in caps:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,31}", c):
            raise _where(ctx, f"capability {c!r} is not a lower-case name like 'cuda' or 'metal'")
    return tuple(dict.fromkeys(caps))


def dag_from_mapping(data: Mapping[str, Any], *, base_dir: str | os.PathLike[str] = ".") -> Dag:
    """Build a :class:`Dag` from parsed TOML (or :func:`model.dag_to_json` output), strictly.

    Raises:
        DagError: an unknown key, a missing key or a value of the wrong type, naming the task.
    """
    if not isinstance(data, Mapping):
        raise DagError("a DAG must be a table", how=_FORMAT_HOW)
    _check_keys("dag", data, _DAG_KEYS, "the top level")
    if "name" not in data:
        raise _where("dag", "'name' is missing")
    tasks = data.get("tasks", [])
    if not isinstance(tasks, list):
        raise _where("dag", "'tasks' must be an array of tables ([[tasks]])")
    allow = data.get("allow")
    return Dag(
        name=_str("dag", data["name"], "name"),
        tasks=tuple(_task(i, raw) for i, raw in enumerate(tasks)),
        policy=_enum("dag", DagPolicy, data.get("policy", "AllSuccess"), "policy"),
        allow=None if allow is None else _str_list("dag", allow, "allow"),
        base_dir=os.fspath(base_dir),
    )


def load_dag(path: str | os.PathLike[str], *, check_inputs: bool = False) -> Dag:
    """Read and validate ``cis.toml`` at ``path``; its directory becomes the DAG's base dir.

    Raises:
        DagError: the file is not valid TOML or breaks a rule (message names the task).
        OSError: the file cannot be read.
    """
    from cheng_build.cis.dag.validate import validate_dag

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DagError(f"{p}: not valid TOML", why=str(exc), how=_FORMAT_HOW) from None
    except UnicodeDecodeError:
        raise DagError(f"{p}: not UTF-8 text", how=_FORMAT_HOW) from None
    dag = dag_from_mapping(data, base_dir=p.resolve().parent)
    validate_dag(dag, check_inputs=check_inputs)
    return dag


def dump_dag(dag: Dag) -> str:
    """``dag`` as ``cis.toml`` text (round-trips through :func:`load_dag`)."""
    import tomlkit

    data = dag_to_json(dag)
    doc = tomlkit.document()
    doc["name"] = data["name"]
    doc["policy"] = data["policy"]
    if "allow" in data:
        doc["allow"] = data["allow"]
    aot = tomlkit.aot()
    for t in data["tasks"]:
        aot.append(tomlkit.item(t))
    doc["tasks"] = aot
    return tomlkit.dumps(doc)
