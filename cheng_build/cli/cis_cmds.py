"""``cis`` subcommands (all but ``web``): thin wrappers over :mod:`cheng_build.cis.run.control`.

Exit codes: 0 the run succeeded (with or without debt) or the request was accepted; 1 the run
failed or a check failed; 2 bad usage or a missing run/task/file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from typing import Any

from cheng_build.cis.dag.model import Dag, RunState, TaskState
from cheng_build.cis.run import control
from cheng_build.cis.run.requests import Outcome
from cheng_build.cis.run.store import Store
from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.core.errors import ChengError, UsageError

_OK_STATES = (RunState.SUCCEEDED, RunState.SUCCEEDED_WITH_DEBT)


def register(name: str, p: Parser) -> None:
    """Add ``name``'s flags to ``p``."""
    if name == "run":
        p.add_argument("target", help="a cis.toml path, a directory holding one, or a named target")
        p.add_argument("--dry-run", action="store_true", help="validate and print the plan only")
        p.add_argument("--workdir", default=None,
                       help="a named target's work directory / the project a sketch reads")
        from cheng_build.cli.cis_node import add_connection_flags

        add_connection_flags(p, run=True)  # --room: post the run to a Matrix room for cis nodes to run
    if name in ("run", "resume", "retry"):
        p.add_argument("--jobs", type=int, default=None, help="tasks at once (default: core count)")
        p.add_argument("--detach", action="store_true", help="run in the background; see cis attach")
        p.add_argument("--quiet", action="store_true", help="no progress output")
    if name in ("status", "attach", "amend", "confirm", "resolve", "retry", "resume"):
        p.add_argument("run_id", nargs="?" if name == "status" else None,
                       help="a run id (a unique prefix is enough)")
    if name in ("confirm", "resolve"):
        p.add_argument("task", help="task index or name")
    if name == "confirm":
        from cheng_build.cli.cis_node import add_connection_flags

        add_connection_flags(p)  # --room: confirm a task of a room run, from any machine
    if name == "resolve":
        p.add_argument("--action", choices=["run", "retry", "skip", "complete", "fail", "rollback"],
                       default=None, help="how to settle the task")
        p.add_argument("--value", default=None, help="answer to the task's open question")
        p.add_argument("--item", default=None, help="which question (input:<pattern> | env:<NAME>)")
    if name == "amend":
        p.add_argument("--task", required=True, help="task index or name")
        p.add_argument("--env", action="append", default=[], metavar="K=V", help="set an env var")
        p.add_argument("--cmd", default=None, help="new argv, split like a shell would (no shell runs)")
        p.add_argument("--timeout", type=int, default=None, help="new timeout in seconds")
    if name == "retry":
        p.add_argument("--from", dest="from_task", required=True, help="task index or name")
    if name == "doctor":
        p.add_argument("dags", nargs="*", help="cis.toml files whose programs to check")
    if name in ("status", "debt", "doctor", "verify-sandbox", "run", "confirm", "resolve", "amend"):
        add_format_flag(p)


def run(name: str, args: argparse.Namespace) -> int:
    """Do ``name``; return the exit code."""
    handler = {"run": _run, "status": _status, "attach": _attach, "amend": _amend,
               "confirm": _confirm, "resolve": _resolve, "retry": _retry, "resume": _resume,
               "debt": _debt, "doctor": _doctor, "verify-sandbox": _verify}[name]
    return int(handler(args))


# --- run / resume / attach ------------------------------------------------------------------------


def _view(store: Store, run_id: str, quiet: bool) -> Any:
    if quiet:
        return None
    if sys.stdout.isatty():
        from cheng_build.cis.view.tui import LiveView

        # With a terminal a person can answer from the view itself (y / s); without one,
        # countdowns end by themselves and Confirmed / Arbitrated tasks wait for `cis confirm`.
        return LiveView(store, run_id, keys_fd=sys.stdin.fileno() if sys.stdin.isatty() else None)
    from cheng_build.cis.view.tui import EventLines

    return EventLines(store, run_id, sys.stdout)


def _drive(store: Store, run_id: str, jobs: int | None, quiet: bool) -> int:
    view = _view(store, run_id, quiet)
    if view is not None and hasattr(view, "__enter__"):
        with view:
            state = control.drive(store, run_id, jobs=jobs, observer=view)
    else:
        state = control.drive(store, run_id, jobs=jobs, observer=view)
        if view is not None:
            view()
    if not quiet:
        _print_summary(store, run_id)
    return 0 if state in _OK_STATES else 1


def run_dag(dag: Dag, *, jobs: int | None = None, detach: bool = False, dry_run: bool = False,
            quiet: bool = False, fmt: str = "text", store: Store | None = None) -> int:
    """``cis run`` for a DAG built in Python (sketches, named targets): same checks and output."""
    store = store or control.open_store()
    if dry_run:
        from cheng_build.cis.dag.validate import validate_dag

        validate_dag(dag, check_inputs=True)
        _print_plan(dag, fmt)
        return 0
    run_id = control.create_run(store, dag, jobs=jobs)
    from cheng_build.cis.targets.registry import prepare_run

    prepare_run(store, run_id, dag)  # a sketch: tasks whose capability is absent -> Skipped
    if detach:
        pid = control.spawn_engine(store, run_id, jobs=jobs)
        print(run_id)
        print(f"detached (engine pid {pid}); follow it with: cis attach {run_id}", file=sys.stderr)
        return 0
    if not quiet:
        print(f"run {run_id}: {dag.name}, {len(dag.tasks)} tasks, sandbox "
              f"{store.get_run(run_id).sandbox}", file=sys.stderr)
    return _drive(store, run_id, jobs, quiet)


def _run(args: argparse.Namespace) -> int:
    if args.room:
        from cheng_build.cli.cis_node import run_in_room

        return run_in_room(args)
    from cheng_build.cis.targets.preview import preview_lines
    from cheng_build.cis.targets.registry import no_match_error, resolve_target

    dag = resolve_target(args.target, workdir=args.workdir)
    if dag is None:
        raise no_match_error(args.target, args.workdir)
    if not args.quiet and args.format != "json":
        for line in preview_lines(dag):  # a sketch's preview: capabilities, skipped tasks
            print(line, file=sys.stderr)
    return run_dag(dag, jobs=args.jobs, detach=args.detach, dry_run=args.dry_run,
                   quiet=args.quiet, fmt=args.format)


def _print_plan(dag: Dag, fmt: str) -> None:
    from cheng_build.cis.dag.model import dag_to_json
    from cheng_build.cis.sandbox.launch import detect_mode

    if fmt == "json":
        print(json.dumps(dag_to_json(dag), indent=2))
        return
    print(f"dry run: {dag.name} ({dag.policy.value}), {len(dag.tasks)} tasks, "
          f"sandbox {detect_mode().value}")
    for t in dag.tasks:
        deps = ",".join(map(str, t.deps)) or "-"
        print(f"  {t.idx:>3} {t.name:<24} deps {deps:<10} {t.level.kind.value:<11} "
              f"{shlex.join(t.exec.cmd)}")


def _resume(args: argparse.Namespace) -> int:
    store = control.open_store()
    _refuse_room_run(store, args.run_id, "resume")
    rid = store.resolve_run_id(args.run_id)
    if args.detach:
        print(f"resuming {rid} in the background (engine pid {control.spawn_engine(store, rid)})",
              file=sys.stderr)
        return 0
    run = store.get_run(rid)
    if run.state.finished and not store.pending_controls(rid):
        if not args.quiet:
            print(f"run {rid} already finished: {run.state.value}", file=sys.stderr)
        return 0 if run.state in _OK_STATES else 1
    return _drive(store, rid, args.jobs, args.quiet)


def _attach(args: argparse.Namespace) -> int:
    store = control.open_store()
    rid = store.resolve_run_id(args.run_id)
    view = _view(store, rid, False)
    entered = hasattr(view, "__enter__")
    if entered:
        view.__enter__()
    try:
        while True:
            view()
            v = control.get_run(store, rid)
            if v.run.state.finished or (not v.engine_alive and v.run.state is not RunState.WAITING
                                        and time.time() - v.run.updated > 2):
                break
            time.sleep(0.1)
        view()
    finally:
        if entered:
            view.__exit__(None, None, None)
    _print_summary(store, rid)
    state = store.get_run(rid).state
    if not state.finished:
        print(f"the run's engine is not running; continue it with: cis resume {rid}",
              file=sys.stderr)
        return 1
    return 0 if state in _OK_STATES else 1


def _print_summary(store: Store, run_id: str) -> None:
    v = control.get_run(store, run_id)
    print(f"{v.run.name} [{v.run.run_id}]: {v.run.state.value} ({v.run.note or ''})")
    for t in v.tasks:
        if t.state in (TaskState.DEBT, TaskState.FAILED, TaskState.ARBITRATED) and t.error:
            _print_error(t.idx, t.name, t.state.value, t.error)


def _print_error(idx: int, name: str, state: str, err: dict[str, Any]) -> None:
    print(f"  {state.lower()}: task {idx} {name}: {err.get('what', '')}")
    for w in err.get("why", [])[:5]:
        print(f"    why: {w}")
    for h in err.get("how", [])[:5]:
        print(f"    how: {h}")
    if err.get("rollback"):
        print(f"    rollback: {err['rollback']}")


# --- status / debt --------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    store = control.open_store()
    if not args.run_id:
        runs = control.list_runs(store)
        if args.format == "json":
            print(json.dumps([{"run_id": r, "name": n, "state": s.value, "created": c,
                               "finished": f} for r, n, s, c, f in runs]))
            return 0
        if not runs:
            print("no runs yet (start one with: cis run <cis.toml>)")
        for r, n, s, c, _f in runs:
            print(f"{r}  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(c))}  "
                  f"{s.value:<17} {n}")
        return 0
    v = control.get_run(store, args.run_id)
    from cheng_build.cis.node.mirror import task_nodes

    nodes = task_nodes(store, v.run.run_id)  # a room run: which node ran each task
    if args.format == "json":
        print(json.dumps({
            "run_id": v.run.run_id, "name": v.run.name, "state": v.run.state.value,
            "engine_alive": v.engine_alive, "sandbox": v.run.sandbox,
            "eta_s": control.eta_seconds(store, v),
            "tasks": [{"idx": t.idx, "name": t.name, "state": t.state.value, "attempt": t.attempt,
                       "gate": t.gate, "needs_rerun": t.needs_rerun, "exit_code": t.exit_code,
                       "note": t.note, "error": t.error, "started": t.started,
                       "finished": t.finished, "node": nodes.get(t.idx)} for t in v.tasks]}, indent=2))
        return 0
    from cheng_build.cis.view.tui import summary_line, task_line

    print(summary_line(v, control.eta_seconds(store, v)))
    if not v.engine_alive and not v.run.state.finished:
        print(f"  no engine is driving this run: continue it with 'cis resume {v.run.run_id}'")
    now = time.time()
    for t in v.tasks:
        print(task_line(t, now) + (f"  [{nodes[t.idx]}]" if t.idx in nodes else ""))
    return 0


def _debt(args: argparse.Namespace) -> int:
    from cheng_build.cis.run.debt import list_debt

    store = control.open_store()
    items = list_debt(store)
    if args.format == "json":
        print(json.dumps([i.__dict__ if hasattr(i, "__dict__") else
                          {k: getattr(i, k) for k in i.__slots__} for i in items], indent=2))
        return 0
    if not items:
        print("no debt: every run's tasks completed or were skipped")
        return 0
    print(f"{len(items)} item(s) of debt across runs:")
    for i in items:
        print(f"[{i.run_id}] {i.dag}")
        _print_error(i.idx, i.task, i.state, {"what": i.what, "why": i.why, "how": i.how})
    return 0


# --- actions on live runs -------------------------------------------------------------------------


def _report(store: Store, run_id: str, cid: int, what: str, fmt: str = "text") -> int:
    rid = store.resolve_run_id(run_id)

    def say(state: str, text: str) -> int:
        print(json.dumps({"run_id": rid, "command": what, "state": state, "result": text})
              if fmt == "json" else f"{what}: {text}")
        return 0

    if not store.engine_alive(rid):
        return say("queued", f"queued; the run has no live engine, it applies on 'cis resume {rid}'")
    result = control.wait_result(store, cid, timeout=10)
    if result is None:
        return say("queued", "queued (the engine has not answered yet)")
    if Outcome.parse(result).rejected:
        raise ChengError(f"{what} {result}", how=f"see the run with 'cis status {rid}'")
    return say("done", result)



def _refuse_room_run(store: Any, run_id: str, verb: str) -> None:
    """A room run mirrored in this store is driven by the nodes, not by a local engine: acting on
    it locally would run the room's DAG on this machine (a second execution of every task)."""
    from cheng_build.cis.node.mirror import room_of

    ref = room_of(store, store.resolve_run_id(run_id))
    if ref is not None:
        how = (f"cis confirm {run_id} <task> --room:{ref.room} (with the connection flags)"
               if verb == "confirm" else "decide it in the room: cis confirm --room:, or the web view")
        raise UsageError(f"run {run_id} lives in room {ref.room}: 'cis {verb}' here would run it "
                         "on this machine", how=how)


def _confirm(args: argparse.Namespace) -> int:
    if args.room:
        from cheng_build.cli.cis_node import confirm_in_room

        return confirm_in_room(args)
    store = control.open_store()
    _refuse_room_run(store, args.run_id, "confirm")
    cid = control.confirm(store, args.run_id, args.task)
    return _report(store, args.run_id, cid, f"confirm task {args.task}", args.format)


def _resolve(args: argparse.Namespace) -> int:
    if args.action is None and args.value is None:
        raise UsageError("give --action:<run|retry|skip|complete|fail|rollback> or --value:<answer>")
    store = control.open_store()
    _refuse_room_run(store, args.run_id, "resolve")
    cid = control.resolve(store, args.run_id, args.task, action=args.action, value=args.value,
                          item=args.item)
    return _report(store, args.run_id, cid, f"resolve task {args.task}", args.format)


def _amend(args: argparse.Namespace) -> int:
    env: dict[str, str] = {}
    for kv in args.env:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise UsageError(f"--env expects K=V, got {kv!r}")
        env[k] = v
    cmd = shlex.split(args.cmd) if args.cmd else None
    if not env and cmd is None and args.timeout is None:
        raise UsageError("nothing to amend", how="give --env:K=V, --cmd:'...' or --timeout:N")
    store = control.open_store()
    cid = control.amend(store, args.run_id, args.task, env=env, cmd=cmd, timeout=args.timeout)
    return _report(store, args.run_id, cid, f"amend task {args.task}", args.format)


def _retry(args: argparse.Namespace) -> int:
    store = control.open_store()
    _refuse_room_run(store, args.run_id, "retry")
    rid = store.resolve_run_id(args.run_id)
    cid = control.retry(store, rid, args.from_task)
    if store.engine_alive(rid):
        return _report(store, rid, cid, f"retry from {args.from_task}")
    if args.detach:
        print(f"retrying {rid} in the background (engine pid {control.spawn_engine(store, rid)})",
              file=sys.stderr)
        return 0
    return _drive(store, rid, args.jobs, args.quiet)


# --- machine checks -------------------------------------------------------------------------------


def _doctor(args: argparse.Namespace) -> int:
    from cheng_build.cis.dag.toml_io import load_dag
    from cheng_build.cis.doctor import check

    dags = [load_dag(p) for p in args.dags]
    if not dags and os.path.isfile("cis.toml"):
        dags = [load_dag("cis.toml")]
    findings = check(dags)
    if args.format == "json":
        print(json.dumps([{k: getattr(f, k) for k in f.__slots__} for f in findings], indent=2))
    else:
        for f in findings:
            mark = "ok " if f.ok else ("-- " if not f.required else "!! ")
            print(f"{mark} {f.name:<22} {f.detail}")
            if not f.ok and f.fix:
                print(f"    fix: {f.fix}")
    return 0 if all(f.ok or not f.required for f in findings) else 1


def _verify(args: argparse.Namespace) -> int:
    from cheng_build.cis.sandbox.probe import verify

    mode, results = verify()
    if args.format == "json":
        print(json.dumps({"mode": mode.value, "properties": [
            {"name": r.name, "attempt": r.attempt, "held": r.held, "detail": r.detail}
            for r in results]}, indent=2))
    else:
        print(f"sandbox mode: {mode.value}"
              + ("  (unsandboxed: tasks run with a cleared env and rlimits only)"
                 if mode.value == "unsandboxed" else ""))
        w = max(len(r.name) for r in results)
        a = max(len(r.attempt) for r in results)
        print(f"{'property'.ljust(w)}  {'attempt'.ljust(a)}  {'result':<8}  detail")
        for r in results:
            verdict = "UNTESTED" if r.held is None else ("HELD    " if r.held else "NOT HELD")
            print(f"{r.name.ljust(w)}  {r.attempt.ljust(a)}  {verdict}  {r.detail}")
    return 0 if all(r.held is not False for r in results) else 1
