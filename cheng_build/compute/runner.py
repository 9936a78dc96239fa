"""Run one request's DAG with the CIS engine, meter it, and store its result.

:func:`execute` does the work in the calling process; the executor node runs it in a fresh child
process (``python -m cheng_build.compute.runner``, the request as JSON on stdin, the outcome as
JSON on stdout), so the metering covers exactly that process tree (a cgroup of its own where one
can be made) and a timeout can kill all of it. Steps:

1. export the code and input CIDs into a workspace (:mod:`cheng_build.compute.workspace`);
2. load and validate ``cis.toml``; refuse tasks that wait for a person (Confirmed, Arbitrated):
   nobody is there to answer on an executor;
3. run every task with the workspace as its working directory, in the CIS sandbox;
4. check ``input/`` is unchanged, import ``out/`` into the CAS: its root CID is the result.

Statuses: ``ok`` (the run succeeded, possibly with debt), ``err`` (bad code, an invalid DAG, a
failed task, a changed input: the error says which).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cheng_build.compute.metering import Measured, TreeMeter
from cheng_build.compute.records import ExecRequest
from cheng_build.core.errors import ChengError


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What one execution produced."""

    status: str
    error: str = ""
    result_cid: str = ""
    measured: Measured = field(default_factory=Measured)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error, "result_cid": self.result_cid,
                "measured": self.measured.to_json()}

    @classmethod
    def from_json(cls, obj: Any) -> ExecResult:
        if not isinstance(obj, dict):
            return cls("err", "runner: no result")
        m = obj.get("measured")
        return cls(str(obj.get("status") or "err"), str(obj.get("error") or ""),
                   str(obj.get("result_cid") or ""),
                   Measured.from_json(m if isinstance(m, dict) else {}))


def _unattended(dag: Any) -> Any:
    """The DAG with every task working in the workspace; refuses tasks that wait for a person."""
    from cheng_build.cis.dag.errors import DagError
    from cheng_build.cis.dag.model import LevelKind

    tasks = []
    for t in dag.tasks:
        if t.level.kind in (LevelKind.CONFIRMED, LevelKind.ARBITRATED):
            raise DagError(f"task {t.name} waits for a person ({t.level.kind.value})",
                           why="an executor runs requests unattended")
        tasks.append(replace(t, exec=replace(t.exec, cwd=".")))
    return replace(dag, tasks=tuple(tasks))


def _failure(store: Any, run_id: str) -> str:
    for t in store.tasks(run_id):
        if t.state.value in ("Failed",) and t.error:
            return f"task {t.name} failed: {t.error.get('what', '')}"[:300]
    return "the run failed"


def execute(store_root: Path, request: ExecRequest, ws_path: Path, *,
            use_cgroup: bool = True) -> ExecResult:
    """Run ``request`` in a fresh workspace at ``ws_path`` (removed afterwards)."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cis.dag.model import RunState
    from cheng_build.cis.dag.toml_io import load_dag
    from cheng_build.compute import workspace as wsp

    store = Blockstore(store_root)
    meter = TreeMeter(use_cgroup=use_cgroup)
    ws: wsp.Workspace | None = None
    try:
        try:
            ws = wsp.prepare(store, request.code_cid, request.input_cid, ws_path)
            dag = _unattended(load_dag(ws.dag_file))
        except ChengError as exc:
            return ExecResult("err", exc.what if exc.what.startswith("code ")
                              else f"DAG fails validation: {exc.what}")
        from cheng_build.cis.run import control

        cis = control.open_store(ws.cis_home)
        try:
            run_id = control.create_run(cis, dag)
            meter.start()
            state = control.drive(cis, run_id)
            measured = meter.stop()
            if state not in (RunState.SUCCEEDED, RunState.SUCCEEDED_WITH_DEBT):
                return ExecResult("err", _failure(cis, run_id), measured=measured)
        finally:
            cis.close()
        if not wsp.check_input_unchanged(ws, request.input_cid):
            return ExecResult("err", "a task changed input/ (it is read-only)", measured=measured)
        return ExecResult("ok", "", wsp.store_result(store, ws), measured)
    except ChengError as exc:
        return ExecResult("err", exc.what)
    finally:
        if ws is not None:
            wsp.remove(ws)
        elif ws_path.exists():
            wsp.remove(wsp.Workspace(ws_path))


def _die_with_parent(parent: int, interval: float = 0.5) -> None:
    """Exit when the executor that started this runner is gone (checked every ``interval`` s).

    Not ``PR_SET_PDEATHSIG``: trio starts processes from a worker thread, and the signal fires
    when that *thread* exits (trio retires idle threads after seconds), which would kill a long
    run. The engine's tasks die with the engine on their own (their PDEATHSIG comes from the
    engine's only thread), so a runner that exits takes its tasks with it.
    """
    import threading

    if not parent:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)  # nobody wants the answer any more

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> int:
    """``python -m cheng_build.compute.runner``: spec JSON on stdin, ExecResult JSON on stdout."""
    spec = json.loads(sys.stdin.read())
    _die_with_parent(int(spec.get("parent") or 0))
    req = ExecRequest.from_event(spec["request"])
    result = execute(Path(spec["store"]), req, Path(spec["workspace"]),
                     use_cgroup=bool(spec.get("cgroup", True)))
    sys.stdout.write(json.dumps(result.to_json()))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    raise SystemExit(main())
