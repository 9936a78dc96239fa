"""The CIS model: *what* a pipeline is (the seed's Dag, Task, Exec, SandboxConfig, TaskLevel,
AmbiguityPolicy, DagPolicy) and the states a task moves through.

Everything here is a frozen value; nothing does I/O. A DAG is a fixed-length list of tasks whose
index is their identity and whose dependencies point only to lower indexes, so it has no cycles
and cannot grow while it runs. :mod:`~cheng_build.cis.dag.toml_io` reads it from ``cis.toml``;
Python callers build it directly and pass it to :func:`~cheng_build.cis.dag.validate.validate_dag`.

The state machine (seed section 4.2)::

    Pending -> Running -> Completed
       |          |
    Skipped    Failed --(ignorable)--> Debt
                  |
                  +--(blocking, Arbitrated level)--> Arbitrated --(resolve)--> Completed/Skipped/Pending
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

MAX_TASKS = 256


class DagPolicy(enum.Enum):
    """When a run counts as a success."""

    ALL_SUCCESS = "AllSuccess"  # every task must complete; the first blocking failure stops new work
    FIRST_SUCCESS = "FirstSuccess"  # alternatives: the run succeeds as soon as one sink task completes
    ALLOW_DEBT = "AllowDebt"  # failures that block nothing become debt and the run goes on


class TaskState(enum.Enum):
    """The seed's seven task states."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    SKIPPED = "Skipped"
    FAILED = "Failed"
    DEBT = "Debt"
    ARBITRATED = "Arbitrated"

    @property
    def terminal(self) -> bool:
        """A state the engine never leaves by itself."""
        return self in (TaskState.COMPLETED, TaskState.SKIPPED, TaskState.FAILED, TaskState.DEBT)


class RunState(enum.Enum):
    """The state of a whole run."""

    RUNNING = "Running"  # an engine is driving it (or was, until it died: see store.engine_alive)
    WAITING = "Waiting"  # nothing can move until a person acts (confirm / resolve / answer)
    SUCCEEDED = "Succeeded"
    SUCCEEDED_WITH_DEBT = "SucceededWithDebt"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        """The run will not move again unless retried."""
        return self in (RunState.SUCCEEDED, RunState.SUCCEEDED_WITH_DEBT, RunState.FAILED)


class Action(enum.Enum):
    """What a countdown does when it ends (Recommended level, Suggest ambiguity policy)."""

    RUN = "run"
    SKIP = "skip"


class LevelKind(enum.Enum):
    """The seed's four decision levels."""

    MECHANICAL = "Mechanical"
    RECOMMENDED = "Recommended"
    CONFIRMED = "Confirmed"
    ARBITRATED = "Arbitrated"


class AmbiguityPolicy(enum.Enum):
    """What to do when an input is missing or ambiguous or an env value cannot be resolved."""

    AUTO_BEST = "AutoBest"  # pick the best candidate (newest matching file) and log the choice
    SUGGEST = "Suggest"  # propose the best candidate, take it when a countdown ends
    ASK = "Ask"  # wait for a person to answer (`cis resolve --value:`)
    ESCALATE = "Escalate"  # arbitrate: the whole DAG pauses


class Isolation(enum.Enum):
    """How much isolation a task demands."""

    REQUIRED = "required"  # refuse to run the task without a real sandbox (bubblewrap / namespaces)
    PREFERRED = "preferred"  # sandbox when the machine allows, else run with rlimits + cleared env
    NONE = "none"  # rlimits + cleared env only (fast path; still no inherited env)


@dataclass(frozen=True, slots=True)
class TaskLevel:
    """A decision level with its parameters (only the ones of ``kind`` are meaningful)."""

    kind: LevelKind = LevelKind.MECHANICAL
    retry: int = 0  # Mechanical: extra attempts after the first failure
    default: Action = Action.RUN  # Recommended: what happens when the countdown ends
    timeout: int = 30  # Recommended: countdown seconds
    stakeholders: tuple[str, ...] = ()  # Arbitrated: who decides

    @staticmethod
    def mechanical(retry: int = 0) -> TaskLevel:
        return TaskLevel(LevelKind.MECHANICAL, retry=retry)

    @staticmethod
    def recommended(default: Action = Action.RUN, timeout: int = 30) -> TaskLevel:
        return TaskLevel(LevelKind.RECOMMENDED, default=default, timeout=timeout)

    @staticmethod
    def confirmed() -> TaskLevel:
        return TaskLevel(LevelKind.CONFIRMED)

    @staticmethod
    def arbitrated(stakeholders: tuple[str, ...] = ()) -> TaskLevel:
        return TaskLevel(LevelKind.ARBITRATED, stakeholders=tuple(stakeholders))


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Isolation and resource limits of one task (seed: ``Exec.sandbox``).

    Limits of 0 mean "no limit beyond the machine's". ``writable`` names extra directories,
    relative to the DAG's directory, the task may write (its own task directory always is).
    """

    isolation: Isolation = Isolation.PREFERRED
    network: bool = False
    cpu_seconds: int = 0
    memory_mib: int = 0
    open_files: int = 1024
    processes: int = 4096  # a fork-bomb stop that ordinary desktops never reach
    file_size_mib: int = 1024
    writable: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Exec:
    """How to run a task: an argv list (never a shell string), explicit env, timeout, sandbox."""

    cmd: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # sorted (name, value) pairs; nothing is inherited
    timeout: int = 0  # seconds, 0 = no limit
    cwd: str | None = None  # relative to the DAG's directory; None = the task's own directory
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)

    @property
    def env_map(self) -> dict[str, str]:
        return dict(self.env)


@dataclass(frozen=True, slots=True)
class Task:
    """One node of the DAG; ``idx`` is its identity and its position."""

    idx: int
    name: str
    exec: Exec
    deps: tuple[int, ...] = ()
    level: TaskLevel = field(default_factory=TaskLevel)
    on_ambiguity: AmbiguityPolicy = AmbiguityPolicy.AUTO_BEST
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    rollback: tuple[str, ...] | None = None
    idempotent: bool = True
    ignorable: bool = False  # the task says its failure never blocks the run (becomes Debt)
    # What the machine must have (seed: Task.capabilities): "cuda", "metal", ...; empty: any.
    # Locally an absent one skips the task; across nodes only a node that has them claims it.
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Dag:
    """A whole pipeline. ``base_dir`` anchors relative inputs, outputs and ``cwd``."""

    name: str
    tasks: tuple[Task, ...]
    policy: DagPolicy = DagPolicy.ALL_SUCCESS
    allow: tuple[str, ...] | None = None
    base_dir: str = "."

    def task(self, idx: int) -> Task:
        return self.tasks[idx]

    def with_task(self, task: Task) -> Dag:
        """A copy with ``task`` replacing the one at its index (hot amendment)."""
        tasks = list(self.tasks)
        tasks[task.idx] = task
        return replace(self, tasks=tuple(tasks))

    def dependents(self) -> list[list[int]]:
        """For each task, the tasks that depend on it directly."""
        out: list[list[int]] = [[] for _ in self.tasks]
        for t in self.tasks:
            for d in t.deps:
                if 0 <= d < len(out):
                    out[d].append(t.idx)
        return out


# --- JSON form (what the store keeps) ----------------------------------------------------------


def level_to_json(level: TaskLevel) -> Any:
    """The TOML/JSON shape of a level: ``"Confirmed"`` or ``{"Mechanical": {"retry": 3}}``."""
    if level.kind is LevelKind.CONFIRMED:
        return "Confirmed"
    if level.kind is LevelKind.MECHANICAL:
        return {"Mechanical": {"retry": level.retry}}
    if level.kind is LevelKind.RECOMMENDED:
        return {"Recommended": {"default": level.default.value, "timeout": level.timeout}}
    return {"Arbitrated": {"stakeholders": list(level.stakeholders)}}


def sandbox_to_json(sb: SandboxConfig) -> dict[str, Any]:
    return {
        "isolation": sb.isolation.value, "network": sb.network, "cpu_seconds": sb.cpu_seconds,
        "memory_mib": sb.memory_mib, "open_files": sb.open_files, "processes": sb.processes,
        "file_size_mib": sb.file_size_mib, "writable": list(sb.writable),
    }


def exec_to_json(ex: Exec) -> dict[str, Any]:
    out: dict[str, Any] = {"cmd": list(ex.cmd), "env": dict(ex.env), "timeout": ex.timeout,
                           "sandbox": sandbox_to_json(ex.sandbox)}
    if ex.cwd is not None:
        out["cwd"] = ex.cwd
    return out


def task_to_json(t: Task) -> dict[str, Any]:
    out: dict[str, Any] = {
        "idx": t.idx, "name": t.name, "deps": list(t.deps), "exec": exec_to_json(t.exec),
        "level": level_to_json(t.level), "on_ambiguity": t.on_ambiguity.value,
        "inputs": list(t.inputs), "outputs": list(t.outputs), "idempotent": t.idempotent,
        "ignorable": t.ignorable,
    }
    if t.rollback is not None:
        out["rollback"] = list(t.rollback)
    if t.capabilities:
        out["capabilities"] = list(t.capabilities)
    return out


def dag_to_json(dag: Dag) -> dict[str, Any]:
    """The dict form of ``dag``; :func:`toml_io.dag_from_mapping` reads it back."""
    out: dict[str, Any] = {"name": dag.name, "policy": dag.policy.value,
                           "tasks": [task_to_json(t) for t in dag.tasks]}
    if dag.allow is not None:
        out["allow"] = list(dag.allow)
    return out
