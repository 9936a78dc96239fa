"""What the 6767 web view shows and what its buttons do, without HTTP: run summaries and
details (with each task's CPU and memory from ``/proc``), the debt board, and the checked actions
that go through the control API (:mod:`cheng_build.cis.run.control`). :mod:`.web` serves these.
"""

from __future__ import annotations

import json
import os
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cheng_build.cis.dag.model import TaskState
from cheng_build.cis.run import control
from cheng_build.cis.run.store import Store, TaskRecord
from cheng_build.core.errors import ChengError

# The debt board's fix-time estimate: minutes per item (a rule of thumb, shown as such).
FIX_MINUTES = {"auto": 1, "person": 10}


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, utime+stime ticks, rss pages) for every process we can read."""
    out: dict[int, tuple[int, int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2:].split()  # fields after "(comm)"; comm may hold spaces
        try:
            out[int(name)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[21]))
        except (IndexError, ValueError):
            continue
    return out


def tree_usage(root: int, table: dict[int, tuple[int, int, int]]) -> tuple[int, int, int] | None:
    """(CPU ticks, RSS bytes, process count) of ``root`` and its descendants; None if gone."""
    if root not in table:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _t, _r) in table.items():
        children.setdefault(ppid, []).append(pid)
    ticks = rss = n = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        _ppid, t, r = table[pid]
        ticks, rss, n = ticks + t, rss + r * _PAGE, n + 1
        todo.extend(children.get(pid, ()))
    return ticks, rss, n


@dataclass
class Sampler:
    """CPU percentages from successive /proc readings (shared by all streams, thread-safe)."""

    last: dict[int, tuple[float, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def usage(self, pids: list[int]) -> dict[int, dict[str, Any]]:
        if not pids or not os.path.isdir("/proc"):
            return {}
        table = _proc_table()
        now = time.monotonic()
        out: dict[int, dict[str, Any]] = {}
        with self.lock:
            for pid in pids:
                u = tree_usage(pid, table)
                if u is None:
                    continue
                ticks, rss, n = u
                cpu = None
                prev = self.last.get(pid)
                if prev is not None and now - prev[0] > 0.05:
                    cpu = max(0.0, (ticks - prev[1]) / _CLK_TCK / (now - prev[0]) * 100.0)
                if prev is None or now - prev[0] > 0.05:
                    self.last[pid] = (now, ticks)
                out[pid] = {"cpu_percent": None if cpu is None else round(cpu, 1),
                            "cpu_seconds": round(ticks / _CLK_TCK, 2), "rss_bytes": rss,
                            "processes": n}
        return out


def _dependents(spec_deps: list[list[int]], idx: int) -> list[int]:
    out, todo = set(), [idx]
    while todo:
        i = todo.pop()
        for j, deps in enumerate(spec_deps):
            if i in deps and j not in out:
                out.add(j)
                todo.append(j)
    return sorted(out)


def risk_summary(t: TaskRecord, names: list[str], spec_deps: list[list[int]], sandbox: str,
                 base_dir: str) -> list[str]:
    """What confirming this task lets happen, in plain lines (shown beside confirm/cancel)."""
    ex = t.spec.get("exec", {})
    sb = ex.get("sandbox", {})
    cwd = ex.get("cwd")
    lines = [f"runs: {shlex.join(ex.get('cmd', []))}"]
    writes = [os.path.normpath(os.path.join(base_dir, cwd))] if cwd is not None else []
    writes += [os.path.normpath(os.path.join(base_dir, w)) for w in sb.get("writable", [])]
    lines.append("writes: " + (", ".join(writes) if writes else "only its own task directory"))
    lines.append("network: " + ("allowed" if sb.get("network") else "none"))
    lines.append(f"sandbox: {'none (isolation = none)' if sb.get('isolation') == 'none' else sandbox}")
    if ex.get("env"):
        lines.append("env: " + ", ".join(f"{k}={v}" for k, v in sorted(ex["env"].items()))[:300])
    down = _dependents(spec_deps, t.idx)
    lines.append(f"unblocks: {len(down)} task(s)" + (f" ({', '.join(names[d] for d in down[:6])})"
                                                     if down else ""))
    lines.append("rollback: " + (" ".join(t.spec["rollback"]) if t.spec.get("rollback") else "none"))
    lines.append("rerun-safe (idempotent): " + ("yes" if t.spec.get("idempotent", True) else "no"))
    if ex.get("timeout"):
        lines.append(f"timeout: {ex['timeout']} s")
    return lines


def _level(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    lv = spec.get("level", "Confirmed")
    if isinstance(lv, str):
        return lv, {}
    (kind, params), = lv.items()
    return kind, dict(params or {})


def _auto_fixable(t: TaskRecord) -> bool:
    """A retry alone may fix it: killed by a timeout or a signal, or a task marked needs-rerun."""
    what = (t.error or {}).get("what", "")
    return t.spec.get("idempotent", True) and ("timed out" in what or "killed by signal" in what
                                               or "timeout" in what)


def task_view(t: TaskRecord, names: list[str], spec_deps: list[list[int]], run_sandbox: str,
              base_dir: str, usage: dict[int, dict[str, Any]], now: float) -> dict[str, Any]:
    kind, params = _level(t.spec)
    v: dict[str, Any] = {
        "idx": t.idx, "name": t.name, "state": t.state.value, "level": kind, "level_params": params,
        "deps": t.spec.get("deps", []), "cmd": t.spec.get("exec", {}).get("cmd", []),
        "attempt": t.attempt, "gate": t.gate, "gate_until": t.gate_until or None,
        "needs_rerun": t.needs_rerun, "note": t.note, "exit_code": t.exit_code,
        "started": t.started, "finished": t.finished, "error": t.error,
        "elapsed": (now - t.started) if t.state is TaskState.RUNNING and t.started else
                   ((t.finished - t.started) if t.started and t.finished else None),
        "outputs": t.spec.get("outputs", []), "ignorable": t.spec.get("ignorable", False),
        "pid": t.pid, "usage": usage.get(t.pid) if t.pid else None, "choice": t.choice,
    }
    if t.state is TaskState.PENDING and t.gate in ("confirm", "answer"):
        v["risk"] = risk_summary(t, names, spec_deps, run_sandbox, base_dir)
    if t.state is TaskState.ARBITRATED or (kind == "Arbitrated" and t.state is TaskState.FAILED):
        v["side_by_side"] = _side_by_side(t)
    return v


def _side_by_side(t: TaskRecord) -> dict[str, Any]:
    """Left: what the task was asked to do. Right: what happened (or what it asks)."""
    ex = t.spec.get("exec", {})
    left = {"cmd": ex.get("cmd", []), "env": ex.get("env", {}), "inputs": t.spec.get("inputs", []),
            "outputs": t.spec.get("outputs", []),
            "stakeholders": _level(t.spec)[1].get("stakeholders", [])}
    err = t.error or {}
    right = {"what": err.get("what") or t.note or "waiting for a decision",
             "why": err.get("why", []), "how": err.get("how", []),
             "exit_code": err.get("context", {}).get("exit_code", t.exit_code),
             "open": (t.choice or {}).get("open") or [],
             "suggestion": (t.choice or {}).get("suggestion") or {}}
    return {"asked": left, "happened": right}


def run_summary(store: Store, run_id: str) -> dict[str, Any]:
    v = control.get_run(store, run_id)
    counts = {s.value: n for s, n in v.counts.items()}
    return {"run_id": v.run.run_id, "name": v.run.name, "state": v.run.state.value,
            "created": v.run.created, "finished": v.run.finished, "engine_alive": v.engine_alive,
            "counts": counts, "total": len(v.tasks),
            "waiting": sum(1 for t in v.tasks if t.state is TaskState.ARBITRATED or
                           (t.state is TaskState.PENDING and t.gate in ("confirm", "answer")))}


_PREVIEWS: dict[str, list[str]] = {}  # run id -> the preview ``cis run`` printed (never changes)


def _preview(store: Store, run_id: str) -> list[str]:
    """The lines ``cis run`` printed before starting the run (a sketch's intent, capabilities,
    skips; closedloop's work directory and compiler), kept as the run's ``preview`` event."""
    if run_id not in _PREVIEWS:
        lines: list[str] = []
        for _id, _idx, _ts, kind, data in control.events(store, run_id):
            if kind == "preview" and isinstance(data, dict):
                lines = [str(x) for x in data.get("lines", [])]
                break
            if kind in ("engine-started", "started"):
                break  # the preview is written before the engine starts
        _PREVIEWS[run_id] = lines
    return _PREVIEWS[run_id]


def run_detail(store: Store, run_id: str, sampler: Sampler) -> dict[str, Any]:
    v = control.get_run(store, run_id)
    now = time.time()
    names = [t.name for t in v.tasks]
    spec_deps = [list(t.spec.get("deps", [])) for t in v.tasks]
    usage = sampler.usage([t.pid for t in v.tasks if t.state is TaskState.RUNNING and t.pid])
    tasks = [task_view(t, names, spec_deps, v.run.sandbox, v.run.dag.base_dir, usage, now)
             for t in v.tasks]
    from cheng_build.cis.node.mirror import room_of, task_nodes

    for t, node in task_nodes(store, v.run.run_id).items():  # a room run: who ran each task
        tasks[t]["node"] = node
    ref = room_of(store, v.run.run_id)  # a room run: its buttons post to this room
    done = sum(1 for t in v.tasks if t.state.terminal)
    running = [t for t in tasks if t["state"] == TaskState.RUNNING.value]
    decisions = {
        "recommended": [t for t in tasks if t["state"] == "Pending" and t["gate"] == "countdown"],
        "confirmed": [t for t in tasks if t["state"] == "Pending" and t["gate"] in ("confirm", "answer")],
        "arbitrated": [t for t in tasks if "side_by_side" in t],
    }
    eta = control.eta_seconds(store, v)
    return {**run_summary(store, run_id), "now": now, "sandbox": v.run.sandbox,
            "preview": _preview(store, v.run.run_id), "room": ref.room if ref else None,
            "note": v.run.note, "base_dir": v.run.dag.base_dir, "policy": v.run.dag.policy.value,
            "eta_s": eta, "progress": done / len(tasks) if tasks else 1.0,
            "current": [{"idx": t["idx"], "name": t["name"], "note": t["note"],
                         "elapsed": t["elapsed"], "usage": t["usage"]} for t in running],
            "tasks": tasks, "decisions": decisions}


def debt_board(store: Store) -> dict[str, Any]:
    """Accumulated debt of all runs, split into auto-fixable (a retry may do) and needs-a-person."""
    items = []
    for run_id, dag, idx, task, err in store.all_debt():
        rec = next((t for t in store.tasks(run_id) if t.idx == idx), None)
        if rec is None:
            continue
        err = err or {}
        items.append({"run_id": run_id, "dag": dag, "idx": idx, "task": task,
                      "state": rec.state.value, "what": err.get("what", "failed"),
                      "why": err.get("why", []), "how": err.get("how", []),
                      "kind": "auto" if _auto_fixable(rec) else "person"})
    auto = sum(1 for i in items if i["kind"] == "auto")
    person = len(items) - auto
    return {"items": items, "total": len(items), "auto_fixable": auto, "needs_person": person,
            "estimate_minutes": auto * FIX_MINUTES["auto"] + person * FIX_MINUTES["person"],
            "estimate_rule": f"{FIX_MINUTES['auto']} min per auto-fixable item, "
                             f"{FIX_MINUTES['person']} min per item needing a person"}


def snapshot(store: Store, run_id: str | None, sampler: Sampler) -> dict[str, Any]:
    runs = [run_summary(store, r) for r, *_ in control.list_runs(store, limit=30)]
    detail = None
    if run_id:
        try:
            detail = run_detail(store, run_id, sampler)
        except ChengError:
            detail = None
    from cheng_build.cis.coffee import read_status

    return {"runs": runs, "run": detail, "debt": debt_board(store), "now": time.time(),
            "coffee": read_status(store.home)}


ACTIONS = ("confirm", "cancel", "run-now", "skip", "change", "continue", "resolve", "retry")


# The fields each action's JSON body may hold, with their types (bool is refused where an int is
# asked: JSON true is not a number of seconds).
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "resolve": {"action": (str,), "value": (str,), "item": (str,)},
    "change": {"env": (dict,), "cmd": (list,), "timeout": (int,)},
}


def check_body(action: str, body: dict[str, Any]) -> None:
    """Refuse unknown fields and fields of the wrong type before anything acts on them.

    Raises:
        ChengError: exit code 2 (the server answers 400 with the reason).
    """
    fields = _FIELDS.get(action, {})
    for key, value in body.items():
        if key not in fields:
            allowed = ", ".join(fields) or "none (send {})"
            raise ChengError(f"{action}: unknown field {key!r}", why=f"fields: {allowed}",
                             exit_code=2)
        if value is None:
            continue
        types = fields[key]
        if isinstance(value, bool) or not isinstance(value, types):
            want = {str: "a string", dict: "an object", list: "a list", int: "an integer"}[types[0]]
            raise ChengError(f"{action}: {key} must be {want}, not {json.dumps(value)[:40]}",
                             exit_code=2)


def act(store: Store, run_id: str, task: str, action: str, body: dict[str, Any]) -> int:
    """Apply a button press through the control API; return the control id.

    Raises:
        ChengError: bad action or arguments (NotFoundError for an unknown run or task).
    """
    if action not in ACTIONS:
        raise ChengError(f"unknown action {action!r}", why=f"actions: {', '.join(ACTIONS)}",
                         exit_code=2)
    check_body(action, body)
    if action == "confirm":
        return control.confirm(store, run_id, task)
    if action == "run-now":
        return control.run_now(store, run_id, task)
    if action in ("skip", "cancel"):  # cancel a Confirmed task = do not run it
        return control.skip(store, run_id, task)
    if action == "continue":
        return control.resolve(store, run_id, task, action="run")
    if action == "resolve":
        choice = body.get("action")
        if choice not in (None, "run", "retry", "skip", "complete", "fail", "rollback"):
            raise ChengError(f"unknown resolve action {choice!r}", exit_code=2)
        return control.resolve(store, run_id, task, action=choice, value=body.get("value"),
                               item=body.get("item"))
    if action == "retry":
        return control.retry(store, run_id, task)
    env = body.get("env") or {}
    cmd = body.get("cmd")
    timeout = body.get("timeout")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ChengError("change: env must map names to strings", exit_code=2)
    if cmd is not None and (not cmd or not all(isinstance(a, str) for a in cmd)):
        raise ChengError("change: cmd must be a non-empty list of strings (argv)", exit_code=2)
    if timeout is not None and not 0 <= timeout <= 65535:
        raise ChengError(f"change: timeout {timeout} out of range 0..65535 seconds", exit_code=2)
    if not env and cmd is None and timeout is None:
        raise ChengError("change: nothing to change", how="give env, cmd or timeout", exit_code=2)
    return control.change(store, run_id, task, env=env, cmd=cmd, timeout=timeout)


__all__ = ["ACTIONS", "FIX_MINUTES", "Sampler", "act", "check_body", "debt_board", "risk_summary",
           "run_detail", "run_summary", "snapshot", "task_view", "tree_usage"]
