"""Missing or ambiguous inputs and env values that cannot be resolved (seed section 5.2).

Inputs are paths relative to the DAG's directory, or glob patterns. Env values are literal,
except ``${NAME}`` / ``${NAME:-default}``, which explicitly copy one variable from the engine's
environment (still explicit: nothing else is inherited).

An input is *resolved* when it names an existing path or a glob matching exactly one; it is
*ambiguous* when a glob matches several, *missing* when nothing matches (then files with the same
name elsewhere under the DAG's directory are the candidates). The task's ``on_ambiguity`` decides:

AutoBest   take the newest candidate and log the choice; no candidate -> the task fails.
Suggest    propose the newest candidate, take it when a 30 s countdown ends (a person may answer).
Ask        wait for ``cis resolve <run> <task> --value:<path-or-value>``.
Escalate   the task becomes Arbitrated and the whole DAG pauses until a person resolves it.

A chosen input replaces every argv element equal to its pattern, so ``cmd = ["tar", "xf",
"dist/*.tar"]`` runs on the file that was chosen.
"""

from __future__ import annotations

import enum
import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cheng_build.cis.dag.errors import DagError
from cheng_build.cis.dag.model import AmbiguityPolicy, Dag, Task

SUGGEST_COUNTDOWN_S = 30
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_GLOB_CHARS = re.compile(r"[*?\[]")
_MAX_CANDIDATES = 50


class Verdict(enum.Enum):
    OK = "ok"
    FAIL = "fail"
    SUGGEST = "suggest"
    ASK = "ask"
    ESCALATE = "escalate"


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome for one task: chosen inputs and env, or what is still open."""

    verdict: Verdict
    inputs: dict[str, str] = field(default_factory=dict)  # pattern -> chosen path
    env: dict[str, str] = field(default_factory=dict)  # the task's final env
    open_items: list[str] = field(default_factory=list)  # what a person must decide
    suggestion: dict[str, str] = field(default_factory=dict)  # item -> proposed value
    log: list[str] = field(default_factory=list)  # choices made automatically


def is_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


def _abs(base: str, p: str) -> str:
    return p if os.path.isabs(p) else os.path.join(base, p)


def candidates(base_dir: str, pattern: str) -> list[str]:
    """Existing paths that could stand for ``pattern``, newest first."""
    full = _abs(base_dir, pattern)
    if is_glob(pattern):
        found = glob.glob(full, recursive=True)
    elif os.path.exists(full):
        return [full]
    else:
        name = os.path.basename(pattern.rstrip("/"))
        found = []
        for root, dirs, files in os.walk(base_dir):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            if root[len(base_dir):].count(os.sep) > 4:
                dirs[:] = []
            if name in files or name in dirs:
                found.append(os.path.join(root, name))
            if len(found) >= _MAX_CANDIDATES:
                break

    def mtime(p: str) -> float:
        try:
            return os.stat(p).st_mtime
        except OSError:
            return 0.0

    return sorted(found, key=lambda p: (-mtime(p), p))


def _produced(dag: Dag, task: Task) -> set[str]:
    """Paths declared as outputs by earlier tasks that run in the DAG's tree (``exec.cwd`` set),
    normalised relative to base_dir (outputs are relative to the task's working directory)."""
    return {os.path.normpath(os.path.join(t.exec.cwd, o)) for t in dag.tasks[: task.idx]
            if t.exec.cwd is not None for o in t.outputs}


def expand_env(env: Mapping[str, str], host: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Expand ``${NAME}`` references from ``host``; return the env and the names left open."""
    out: dict[str, str] = {}
    missing: list[str] = []
    for k, v in env.items():
        unresolved = False

        def sub(m: re.Match[str]) -> str:
            nonlocal unresolved
            if m.group(1) in host:
                return host[m.group(1)]
            if m.group(2) is not None:
                return m.group(2)
            unresolved = True
            return ""

        val = _VAR.sub(sub, v)
        if unresolved:
            missing.append(k)
        else:
            out[k] = val
    return out, missing


def resolve(dag: Dag, task: Task, *, host_env: Mapping[str, str],
            answers: Mapping[str, str] | None = None) -> Resolution:
    """Resolve ``task``'s inputs and env under its ambiguity policy.

    ``answers`` holds what a person decided (item name -> value); item names are
    ``input:<pattern>`` and ``env:<NAME>``.
    """
    answers = answers or {}
    if not task.inputs and "${" not in "".join(v for _k, v in task.exec.env):
        return Resolution(Verdict.OK, {}, task.exec.env_map)  # the common case, kept cheap
    base = dag.base_dir
    produced = _produced(dag, task)
    chosen: dict[str, str] = {}
    open_items: list[str] = []
    suggestion: dict[str, str] = {}
    log: list[str] = []
    fail: list[str] = []
    policy = task.on_ambiguity
    for pattern in task.inputs:
        item = f"input:{pattern}"
        if item in answers:
            chosen[pattern] = answers[item]
            continue
        full = _abs(base, pattern)
        if not is_glob(pattern) and os.path.exists(full):
            chosen[pattern] = full
            continue
        cands = candidates(base, pattern)
        if is_glob(pattern) and len(cands) == 1:
            chosen[pattern] = cands[0]
            continue
        if not cands and os.path.normpath(pattern) in produced:
            fail.append(f"input {pattern!r} should have been produced by an earlier task")
            continue
        kind = "ambiguous" if len(cands) > 1 else "missing"
        if policy is AmbiguityPolicy.AUTO_BEST:
            if cands:
                chosen[pattern] = cands[0]
                log.append(f"input {pattern!r} {kind}: chose the newest candidate {cands[0]} "
                           f"of {len(cands)}")
            else:
                fail.append(f"input {pattern!r} is missing and nothing under {base} matches it")
        else:
            open_items.append(item)
            if cands:
                suggestion[item] = cands[0]
    env, missing = expand_env(task.exec.env_map, host_env)
    for name in missing:
        item = f"env:{name}"
        if item in answers:
            env[name] = answers[item]
        elif policy is AmbiguityPolicy.AUTO_BEST:
            log.append(f"env {name} could not be resolved from the engine's environment: left unset")
        else:
            open_items.append(item)
            suggestion.setdefault(item, "")
    if fail:
        return Resolution(Verdict.FAIL, chosen, env, fail, suggestion, log)
    if not open_items:
        return Resolution(Verdict.OK, chosen, env, [], {}, log)
    if policy is AmbiguityPolicy.SUGGEST:
        verdict = Verdict.SUGGEST if all(i in suggestion for i in open_items) else Verdict.ASK
    elif policy is AmbiguityPolicy.ASK:
        verdict = Verdict.ASK
    else:
        verdict = Verdict.ESCALATE
    return Resolution(verdict, chosen, env, open_items, suggestion, log)


def substitute(argv: tuple[str, ...], chosen: Mapping[str, str]) -> tuple[str, ...]:
    """Replace argv elements equal to an input pattern by the path chosen for it."""
    return tuple(chosen.get(a, a) if is_glob(a) or a in chosen else a for a in argv)


def preflight(dag: Dag) -> None:
    """Before a run: every input that no earlier task produces must exist or be resolvable.

    Raises:
        DagError: an AutoBest task's input is missing with no candidate at all (names the task).
    """
    for task in dag.tasks:
        produced = _produced(dag, task)
        for pattern in task.inputs:
            if os.path.normpath(pattern) in produced:
                continue
            if candidates(dag.base_dir, pattern):
                continue
            if task.on_ambiguity is AmbiguityPolicy.AUTO_BEST:
                raise DagError(f"task {task.idx} {task.name!r}: input {pattern!r} does not exist",
                               why=f"looked in {Path(dag.base_dir)}; no earlier task declares it "
                                   "as an output",
                               how="create it, fix the path, or declare the task that makes it "
                                   "as a dependency with this path in its outputs")
