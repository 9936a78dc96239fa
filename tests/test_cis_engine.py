"""The engine with real processes: parallelism, timeouts, retries, policies, debt, rollback,
checkpoints, outputs, friendly errors with context snapshots."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from helpers_cis import make_dag, run_dag, sh, task

from cheng_build.cis.dag.model import DagPolicy, RunState, TaskLevel, TaskState
from cheng_build.cis.run import control
from cheng_build.cis.run.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = control.open_store(tmp_path / "home")
    yield s
    s.close()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    b = tmp_path / "proj"
    b.mkdir()
    return b


def states(view: control.RunView) -> list[TaskState]:
    return [t.state for t in view.tasks]


def test_parallel_tasks_meet(store: Store, base: Path) -> None:
    # Each task waits for the other's file: only possible if both run at once.
    a = sh("touch a; i=0; while [ ! -e b ] && [ $i -lt 300 ]; do sleep 0.02; i=$((i+1)); done; [ -e b ]")
    b = sh("touch b; i=0; while [ ! -e a ] && [ $i -lt 300 ]; do sleep 0.02; i=$((i+1)); done; [ -e a ]")
    dag = make_dag(base, [task(0, "a", a, cwd="."), task(1, "b", b, cwd=".")])
    _rid, view = run_dag(store, dag, jobs=2)
    assert states(view) == [TaskState.COMPLETED, TaskState.COMPLETED]
    assert view.run.state is RunState.SUCCEEDED


def test_deps_order_and_env_is_explicit(store: Store, base: Path) -> None:
    os.environ["CIS_TEST_HOST_SECRET"] = "leak"
    try:
        dag = make_dag(base, [
            task(0, "first", sh("echo one > order"), cwd="."),
            task(1, "second", sh('echo two >> order; echo "$GREETING|$CIS_TEST_HOST_SECRET|$HOME" > env.txt'),
                 deps=[0], cwd=".", env={"GREETING": "hi"}),
        ])
        _rid, view = run_dag(store, dag)
    finally:
        del os.environ["CIS_TEST_HOST_SECRET"]
    assert view.run.state is RunState.SUCCEEDED
    assert (base / "order").read_text() == "one\ntwo\n"
    assert (base / "env.txt").read_text() == "hi||\n"  # nothing inherited, not even HOME


def test_timeout_kills_and_fails_with_friendly_error(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "slow", ["sleep", "30"], timeout=1)], policy=DagPolicy.ALL_SUCCESS)
    _rid, view = run_dag(store, dag)
    t = view.tasks[0]
    assert t.state is TaskState.FAILED and view.run.state is RunState.FAILED
    assert "timed out after 1s" in t.error["what"]
    assert t.error["how"] and t.error["context"]["cwd"]


def test_mechanical_retry_then_success(store: Store, base: Path) -> None:
    flaky = sh("n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]")
    dag = make_dag(base, [task(0, "flaky", flaky, cwd=".", level=TaskLevel.mechanical(3))])
    _rid, view = run_dag(store, dag)
    t = view.tasks[0]
    assert t.state is TaskState.COMPLETED and t.attempt == 3
    assert (base / "count").read_text().strip() == "3"


def test_retries_exhausted_fail(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "bad", ["false"], level=TaskLevel.mechanical(1)),
                          task(1, "after", ["true"], deps=[0])])
    _rid, view = run_dag(store, dag)
    assert view.tasks[0].state is TaskState.FAILED and view.tasks[0].attempt == 2
    assert view.tasks[1].state is TaskState.SKIPPED and "blocked by failed task 0" in view.tasks[1].note
    assert view.run.state is RunState.FAILED


def test_allow_debt_ignorable_failure_goes_on(store: Store, base: Path) -> None:
    dag = make_dag(base, [
        task(0, "build", ["true"]),
        task(1, "lint", sh("echo 'style: line too long' >&2; exit 4"), deps=[0], ignorable=True),
        task(2, "test", ["true"], deps=[1]),
        task(3, "docs", ["false"], deps=[0]),  # a leaf: nothing needs it
    ])
    _rid, view = run_dag(store, dag)
    assert states(view) == [TaskState.COMPLETED, TaskState.DEBT, TaskState.COMPLETED, TaskState.DEBT]
    assert view.run.state is RunState.SUCCEEDED_WITH_DEBT
    err = view.tasks[1].error
    assert err["what"] == "task lint exited with status 4"
    assert "style: line too long" in err["why"]
    from cheng_build.cis.run.debt import list_debt

    assert {(d.idx, d.state) for d in list_debt(store)} == {(1, "Debt"), (3, "Debt")}


def test_all_success_stops_at_first_failure(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "bad", ["false"]), task(1, "later", ["true"], deps=[0]),
                          task(2, "other", ["true"])], policy=DagPolicy.ALL_SUCCESS)
    _rid, view = run_dag(store, dag, jobs=1)
    assert view.tasks[0].state is TaskState.FAILED
    assert view.tasks[1].state is TaskState.SKIPPED
    assert view.run.state is RunState.FAILED


def test_first_success_skips_the_rest(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "cuda", ["false"], ignorable=True),
                          task(1, "metal", ["true"]),
                          task(2, "cpu", ["sleep", "20"])], policy=DagPolicy.FIRST_SUCCESS)
    _rid, view = run_dag(store, dag, jobs=1)
    assert view.tasks[1].state is TaskState.COMPLETED
    assert view.tasks[2].state is TaskState.SKIPPED
    assert view.run.state in (RunState.SUCCEEDED, RunState.SUCCEEDED_WITH_DEBT)


def test_missing_output_fails(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "make", ["true"], outputs=["app.bin"])])
    _rid, view = run_dag(store, dag)
    assert view.tasks[0].state is TaskState.DEBT
    assert "did not produce app.bin" in view.tasks[0].error["what"]


def test_rollback_runs_and_undo_script_reverse_order(store: Store, base: Path) -> None:
    dag = make_dag(base, [
        task(0, "one", ["true"], rollback=sh("echo undo-one >> undo.log"), cwd="."),
        task(1, "two", sh("echo partial > partial; exit 1"), deps=[0], cwd=".",
             rollback=sh("rm -f partial; echo undo-two >> undo.log")),
        task(2, "three", ["true"], deps=[1]),
    ])
    rid, view = run_dag(store, dag)
    assert view.tasks[1].state is TaskState.FAILED
    assert view.tasks[1].error["rollback"] == "rollback ran"
    assert not (base / "partial").exists()
    assert (base / "undo.log").read_text() == "undo-two\n"
    script = (store.run_dir(rid) / f"undo-{rid}.sh").read_text()
    assert script.index("undo-two") < script.index("undo-one")
    assert os.stat(store.run_dir(rid) / f"undo-{rid}.sh").st_mode & stat.S_IXUSR


def test_checkpoint_dir_kept_read_only(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "crash", sh("echo scene > evidence.txt; exit 2"))])
    _rid, view = run_dag(store, dag)
    d = Path(view.tasks[0].task_dir)
    assert (d / "evidence.txt").read_text() == "scene\n"
    assert not os.stat(d).st_mode & 0o222 and not os.stat(d / "evidence.txt").st_mode & 0o222


def test_context_snapshot_digests_inputs(store: Store, base: Path) -> None:
    (base / "in.txt").write_bytes(b"payload")
    dag = make_dag(base, [task(0, "use", ["false"], inputs=["in.txt"], env={"K": "v"})])
    _rid, view = run_dag(store, dag)
    ctx = view.tasks[0].error["context"]
    assert ctx["env"] == {"K": "v"}
    assert ctx["inputs"][str(base / "in.txt")] == "sha256:" + hashlib.sha256(b"payload").hexdigest()
    assert ctx["exit_code"] == 1


def test_program_not_found_is_friendly(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "nvcc", ["nvcc-does-not-exist", "-c", "k.cu"])])
    _rid, view = run_dag(store, dag)
    err = view.tasks[0].error
    assert "program 'nvcc-does-not-exist' not found" in err["what"]
    assert any("cis doctor" in h for h in err["how"])


def test_eta_from_earlier_runs(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "a", ["sleep", "0.2"]), task(1, "b", ["true"], deps=[0])],
                   name="eta")
    run_dag(store, dag)
    rid = control.create_run(store, dag)
    view = control.get_run(store, rid)
    eta = control.eta_seconds(store, view)
    assert eta is not None and eta > 0
    first = control.create_run(store, make_dag(base, [task(0, "zzz", ["true"])], name="never"))
    assert control.eta_seconds(store, control.get_run(store, first)) is None
