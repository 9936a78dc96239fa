"""A node's one-task run is *fresh* (issue 18: a node's CPU per task down to the engine's).

The engine stores the run with its task's first transition, already marked as driven by it,
reads nothing back and writes the run's end in its task's last transaction, the task directory sits in the
run's directory, and that directory is the engine's lock (no lock file). What must not change:
the records (differential against the plain ``create_run`` + ``Engine.run`` path), ``cis status``
on the node, ``engine_alive`` while the engine lives and after it is killed, and ``cis resume``
of a run whose engine was killed mid-task.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_cis import cis, cli_env, in_new_thread, wait_for

from cheng_build.cis.dag.model import RunState, TaskState
from cheng_build.cis.node.localrun import parse_run, run_task
from cheng_build.cis.run import control
from cheng_build.cis.run.engine import Engine
from cheng_build.cis.run.store import Store
from cheng_build.core.errors import StoreError


@pytest.fixture(autouse=True)
def _unsandboxed_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIS_SANDBOX", "unsandboxed")  # tasks write markers into the test's dir


def _toml(cmd: str, retry: int = 0) -> str:
    return "\n".join([
        'name = "fresh"', 'policy = "AllowDebt"', "[[tasks]]", "idx = 0", 'name = "t0"',
        f'exec = {{ cmd = ["sh", "-c", {json.dumps(cmd)}] }}',
        f"level = {{ Mechanical = {{ retry = {retry} }} }}"]) + "\n"


def _records(store: Store, rid: str) -> dict[str, Any]:
    """What `cis status` and `cis debt` read of a run, with its own run id taken out."""
    view = control.get_run(store, rid)
    t = view.tasks[0]

    def plain(v: Any) -> Any:
        return None if v is None else re.sub(rid, "<run>", str(v))

    return {"run": (view.run.state, plain(view.run.note), view.run.engine_pid,
                    view.run.finished is not None, view.engine_alive),
            "task": (t.state, t.attempt, t.exit_code, plain(t.note),
                     plain((t.error or {}).get("what")), t.finished is not None, t.pid),
            "events": [(idx, kind, (data or {}).get("state")) for _, idx, _, kind, data
                       in store.events(rid)]}


# (command, retries): completes; fails; fails once then completes on its retry; no program.
CASES = [("echo out; echo err >&2", 0), ("exit 3", 0),
         ('test -e ../M || { touch ../M; exit 1; }', 1), ("no-such-program-cisfresh", 0)]


@pytest.mark.parametrize(("cmd", "retry"), CASES)
def test_a_fresh_run_records_what_a_plain_run_records(tmp_path: Path, cmd: str, retry: int) -> None:
    """Differential: the node's fresh one-task run against the same one-task DAG stored by
    ``create_run`` and driven by a plain ``Engine.run`` (which reads the run back, writes
    engine-started and run-finished in transactions of their own)."""
    home = tmp_path / "home"
    out = in_new_thread(lambda: run_task(home, parse_run(_toml(cmd, retry), tmp_path).dag, 0, "@n:x"))
    store = control.open_store(home)
    try:
        fresh_dag = store.get_run(out.local_run).dag
        plain = control.create_run(store, fresh_dag, jobs=1, check_inputs=False)
        Engine(store, plain, jobs=1).run()
        assert _records(store, out.local_run) == _records(store, plain)
        kinds = [k for _, k, _ in _records(store, out.local_run)["events"]]
        assert kinds[:2] == ["run-created", "engine-started"] and kinds[-1] == "run-finished"
        assert kinds.count("run-finished") == 1
        rec = store.tasks(out.local_run)[0]
        if rec.attempt:  # the task directory, one level up, is where the row says
            run_dir = home / "runs" / out.local_run
            assert rec.task_dir == str(run_dir / f"000-a{rec.attempt}")
            assert not (run_dir / "engine.lock").exists() and not (run_dir / "tasks").exists()
        if cmd.startswith("echo"):
            assert Path(rec.task_dir or "", "stdout.log").read_text() == "out\n"
            assert Path(rec.task_dir or "", "stderr.log").read_text() == "err\n"
    finally:
        store.close()


def test_cis_status_on_the_node_shows_its_fresh_runs(tmp_path: Path) -> None:
    """The node's own `cis status` lists the run and shows its task's end (a failure's `what`)."""
    home = tmp_path / "home"
    dag = parse_run(_toml("echo nope >&2; exit 4"), tmp_path).dag
    out = in_new_thread(lambda: run_task(home, dag, 0, "@n:x"))
    listed = cis(home, "status", "--format:json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["run_id"], r["state"]) for r in json.loads(listed.stdout)] == [(out.local_run, "Failed")]
    shown = cis(home, "status", out.local_run, "--format:json")
    assert shown.returncode == 0, shown.stderr
    got = json.loads(shown.stdout)
    assert got["state"] == "Failed" and got["engine_alive"] is False
    assert got["tasks"][0]["state"] == "Failed" and got["tasks"][0]["exit_code"] == 4
    assert "exited with status 4" in got["tasks"][0]["error"]["what"]
    assert any("nope" in line for line in got["tasks"][0]["error"]["why"])  # the log tail


_CHILD = """
import sys
from pathlib import Path
from cheng_build.cis.node.localrun import parse_run, run_task
run_task(Path(sys.argv[1]), parse_run(Path(sys.argv[2]).read_text(), Path(sys.argv[3])).dag, 0, "@n:x")
"""


def test_a_node_killed_mid_task_leaves_a_run_cis_resume_finishes(tmp_path: Path) -> None:
    """kill -9 of the node while its fresh run's task runs: the run directory's lock was the
    engine's (engine_alive until the kill, a second engine refused), the task dies with the
    engine, and `cis resume` reruns the idempotent task to the end."""
    home, marker = tmp_path / "home", tmp_path / "ran-once"
    dag_file = tmp_path / "dag.toml"
    dag_file.write_text(_toml(f"test -e {marker} && exit 0; touch {marker}; exec sleep 60"))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(home), str(dag_file), str(tmp_path)],
                             env=cli_env(home, CIS_SANDBOX="unsandboxed"))
    try:
        wait_for(lambda: (home / "state.db").exists(), what="the node's store")
        store = control.open_store(home)
        try:
            def running() -> str | None:
                runs = control.list_runs(store)
                if runs and store.tasks(runs[0][0])[0].state is TaskState.RUNNING:
                    return runs[0][0]
                return None

            wait_for(lambda: running() is not None and marker.exists(), what="the task running")
            rid = running()
            assert rid is not None
            assert store.engine_alive(rid)
            with pytest.raises(StoreError, match="already being driven"):
                Engine(store, rid, jobs=1).run()
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            assert not store.engine_alive(rid)
            assert control.get_run(store, rid).run.state is RunState.RUNNING  # as it was left
        finally:
            store.close()
        resumed = cis(home, "resume", rid, "--quiet", CIS_SANDBOX="unsandboxed")
        assert resumed.returncode == 0, resumed.stderr
        shown = json.loads(cis(home, "status", rid, "--format:json").stdout)
        assert shown["state"] == "Succeeded" and shown["engine_alive"] is False
        assert shown["tasks"][0]["state"] == "Completed" and shown["tasks"][0]["attempt"] == 2
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_the_run_directory_and_a_left_lock_file_both_keep_a_second_engine_off(tmp_path: Path) -> None:
    """An engine holds the run's directory; one of an earlier version held ``engine.lock`` in
    it: either way ``engine_alive`` says so and a new engine refuses the run."""
    store = control.open_store(tmp_path / "home")
    try:
        dag = parse_run(_toml("true"), tmp_path).dag
        for held in ("directory", "engine.lock"):
            rid = control.create_run(store, dag, jobs=1, check_inputs=False)
            run_dir = store.run_dir(rid)
            run_dir.mkdir(parents=True)
            assert not store.engine_alive(rid)
            path = run_dir if held == "directory" else run_dir / "engine.lock"
            fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if held == "directory" else os.O_CREAT))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                assert store.engine_alive(rid)
                with pytest.raises(StoreError, match="already being driven"):
                    Engine(store, rid, jobs=1).run()
            finally:
                os.close(fd)
            assert not store.engine_alive(rid)
            assert Engine(store, rid, jobs=1).run() is RunState.SUCCEEDED
    finally:
        store.close()


def test_a_fresh_run_reopened_after_its_end_is_running_again(tmp_path: Path) -> None:
    """The run is stored with its first transition and its row ends with its last task's
    transition; a request that reopens the task
    before the engine's loop ends (a retry) makes the row Running again, driven by this
    process, and the task's next end ends it again."""
    store = control.open_store(tmp_path / "home")
    try:
        dag = parse_run(_toml("true"), tmp_path).dag
        new = control.new_run(store, dag, jobs=1, check_inputs=False, engine_pid=os.getpid())
        rid = new.run_id
        eng = Engine(store, rid, fresh=new)
        with store.engine_lock(rid):
            eng._load()
            assert control.list_runs(store) == []  # stored with its first transition
            eng.transition(0, "completed", None, state=TaskState.COMPLETED, exit_code=0)
            run = store.get_run(rid)
            assert (run.state, run.engine_pid, run.finished is not None) == (RunState.SUCCEEDED, None, True)
            eng.transition(0, "retry", None, state=TaskState.PENDING)
            run = store.get_run(rid)
            assert (run.state, run.engine_pid, run.finished) == (RunState.RUNNING, os.getpid(), None)
            eng.transition(0, "failed", None, state=TaskState.FAILED, exit_code=1)
            assert store.get_run(rid).state is RunState.FAILED
        kinds = [k for _, idx, _, k, _ in store.events(rid) if idx is None]
        assert kinds == ["run-created", "engine-started", "run-finished", "running", "run-finished"]
    finally:
        store.close()
