"""Acting on live runs from another process: levels, amendment, retry, ambiguity, detach/attach.

The engine runs detached (its own process, as `cis run --detach` starts it); the test acts
through the real CLI or the control API, exactly as a person or the web view would.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import tomlkit
from helpers_cis import cis, make_dag, run_dag, sh, task, wait_for

from cheng_build.cis.dag.model import Action, AmbiguityPolicy, RunState, TaskLevel, TaskState
from cheng_build.cis.dag.toml_io import dump_dag
from cheng_build.cis.run import control
from cheng_build.cis.run.store import Store


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> Store:
    s = control.open_store(home)
    yield s
    s.close()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    b = tmp_path / "proj"
    b.mkdir()
    return b


def start_detached(store: Store, dag: object) -> str:
    rid = control.create_run(store, dag)  # type: ignore[arg-type]
    control.spawn_engine(store, rid)
    wait_for(lambda: store.engine_alive(rid), what="engine start")
    return rid


def task_state(store: Store, rid: str, idx: int) -> TaskState:
    return store.tasks(rid)[idx].state


def finished(store: Store, rid: str) -> bool:
    return store.get_run(rid).state.finished


def test_confirmed_waits_for_cis_confirm(store: Store, home: Path, base: Path) -> None:
    dag = make_dag(base, [task(0, "build", ["true"]),
                          task(1, "deploy", sh("echo deployed > deployed"), deps=[0], cwd=".",
                               level=TaskLevel.confirmed())])
    rid = start_detached(store, dag)
    wait_for(lambda: store.tasks(rid)[1].gate == "confirm", what="confirm gate")
    assert store.get_run(rid).state is RunState.WAITING
    assert not (base / "deployed").exists()
    r = cis(home, "confirm", rid, "deploy")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: finished(store, rid), what="run end")
    assert task_state(store, rid, 1) is TaskState.COMPLETED
    assert (base / "deployed").read_text() == "deployed\n"


def test_arbitrated_pauses_dag_until_resolve(store: Store, home: Path, base: Path) -> None:
    dag = make_dag(base, [task(0, "release", ["true"], level=TaskLevel.arbitrated(("ops",))),
                          task(1, "independent", ["true"])])
    rid = start_detached(store, dag)
    wait_for(lambda: task_state(store, rid, 0) is TaskState.ARBITRATED, what="arbitrated")
    time.sleep(0.3)
    # The whole DAG is paused: even the independent task has not started.
    assert task_state(store, rid, 1) is TaskState.PENDING
    r = cis(home, "resolve", rid, "0", "--action:run")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: finished(store, rid), what="run end")
    assert [t.state for t in store.tasks(rid)] == [TaskState.COMPLETED, TaskState.COMPLETED]


def test_recommended_countdown_default_skip_and_run_now(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "optional", ["true"], level=TaskLevel.recommended(Action.SKIP, 0)),
                          task(1, "bench", ["true"], level=TaskLevel.recommended(Action.RUN, 0))])
    _rid, view = run_dag(store, dag)
    assert [t.state for t in view.tasks] == [TaskState.SKIPPED, TaskState.COMPLETED]

    dag = make_dag(base, [task(0, "slowcount", ["true"],
                               level=TaskLevel.recommended(Action.RUN, 600))])
    rid = start_detached(store, dag)
    wait_for(lambda: store.tasks(rid)[0].gate == "countdown", what="countdown")
    cid = control.run_now(store, rid, 0)
    assert control.wait_result(store, cid) == "ok"
    wait_for(lambda: finished(store, rid), what="run end")
    assert task_state(store, rid, 0) is TaskState.COMPLETED


def test_amend_running_task_restarts_with_change(store: Store, home: Path, base: Path) -> None:
    script = 'echo "$MODE" >> modes; [ "$MODE" = fast ] || sleep 60'
    dag = make_dag(base, [task(0, "work", sh(script), cwd=".", env={"MODE": "slow"})])
    rid = start_detached(store, dag)
    wait_for(lambda: (base / "modes").exists(), what="first start")
    r = cis(home, "amend", rid, "--task:0", "--env:MODE=fast")
    assert r.returncode == 0, r.stderr
    assert "restarts" in r.stdout
    wait_for(lambda: finished(store, rid), what="run end")
    t = store.tasks(rid)[0]
    assert t.state is TaskState.COMPLETED and t.attempt == 2
    assert (base / "modes").read_text() == "slow\nfast\n"
    assert t.spec["exec"]["env"] == {"MODE": "fast"}


def test_amend_pending_and_completed(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "done", ["true"]),
                          task(1, "gate", ["true"], deps=[0], level=TaskLevel.confirmed()),
                          task(2, "later", sh('echo "$X" > x.txt'), deps=[1], cwd=".",
                               env={"X": "old"})])
    rid = start_detached(store, dag)
    wait_for(lambda: store.tasks(rid)[1].gate == "confirm", what="confirm gate")
    assert control.wait_result(store, control.amend(store, rid, 2, env={"X": "new"})) == "ok: updated"
    res = control.wait_result(store, control.amend(store, rid, 0, timeout=5))
    assert res is not None and "needs-rerun" in res
    assert store.tasks(rid)[0].needs_rerun and task_state(store, rid, 0) is TaskState.COMPLETED
    control.confirm(store, rid, 1)
    wait_for(lambda: finished(store, rid), what="run end")
    assert (base / "x.txt").read_text() == "new\n"
    assert store.tasks(rid)[0].attempt == 1  # a completed task is not rerun by itself


def test_amend_rejects_rule_breaking_change(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "gate", ["true"], level=TaskLevel.confirmed())])
    rid = start_detached(store, dag)
    wait_for(lambda: store.tasks(rid)[0].gate == "confirm", what="confirm gate")
    res = control.wait_result(store, control.amend(store, rid, 0, cmd=["make all"]))
    assert res is not None and res.startswith("rejected") and "shell string" in res
    control.resolve(store, rid, 0, action="skip")
    wait_for(lambda: finished(store, rid), what="run end")


def test_retry_from_failed_task(store: Store, home: Path, base: Path) -> None:
    dag = make_dag(base, [task(0, "ok", sh("echo x >> zero.log"), cwd="."),
                          task(1, "needs-file", sh("[ -e fixed ]"), deps=[0], cwd="."),
                          task(2, "after", sh("echo y >> two.log"), deps=[1], cwd=".")])
    rid, view = run_dag(store, dag)
    assert view.run.state is RunState.FAILED and view.tasks[2].state is TaskState.SKIPPED
    (base / "fixed").write_text("")
    r = cis(home, "retry", rid, "--from:needs-file", "--quiet")
    assert r.returncode == 0, r.stderr
    view = control.get_run(store, rid)
    assert [t.state for t in view.tasks] == [TaskState.COMPLETED] * 3
    assert (base / "zero.log").read_text() == "x\n"  # the completed task was not rerun
    assert (base / "two.log").read_text() == "y\n"


def test_ambiguity_autobest_picks_newest_and_logs(store: Store, base: Path) -> None:
    (base / "dist").mkdir()
    old, new = base / "dist" / "a-1.tar", base / "dist" / "a-2.tar"
    old.write_text("old")
    new.write_text("new")
    os.utime(old, (1000, 1000))
    dag = make_dag(base, [task(0, "unpack", ["cp", "dist/*.tar", "chosen"], cwd=".",
                               inputs=["dist/*.tar"])])
    _rid, view = run_dag(store, dag)
    t = view.tasks[0]
    assert t.state is TaskState.COMPLETED
    assert (base / "chosen").read_text() == "new"
    assert any("chose the newest" in line for line in t.choice["log"])


def test_ambiguity_ask_waits_for_answer(store: Store, home: Path, base: Path) -> None:
    (base / "one.cfg").write_text("1")
    (base / "two.cfg").write_text("2")
    dag = make_dag(base, [task(0, "configure", ["cp", "*.cfg", "used.cfg"], cwd=".",
                               inputs=["*.cfg"], on_ambiguity=AmbiguityPolicy.ASK)])
    rid = start_detached(store, dag)
    wait_for(lambda: store.tasks(rid)[0].gate == "answer", what="question")
    r = cis(home, "resolve", rid, "configure", f"--value:{base / 'one.cfg'}")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: finished(store, rid), what="run end")
    assert (base / "used.cfg").read_text() == "1"


def test_preflight_missing_input_names_task(home: Path, base: Path) -> None:
    dag = make_dag(base, [task(0, "compile", ["true"], inputs=["Cargo.toml"])])
    p = base / "cis.toml"
    p.write_text(dump_dag(dag))
    r = cis(home, "run", str(p))
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == "run: task 0 'compile': input 'Cargo.toml' does not exist"


def test_detach_then_attach(home: Path, base: Path) -> None:
    doc = {"name": "bg", "tasks": [{"idx": 0, "name": "nap", "exec": {"cmd": ["sleep", "0.5"]}},
                                   {"idx": 1, "name": "end", "deps": [0], "exec": {"cmd": ["true"]}}]}
    p = base / "cis.toml"
    p.write_text(tomlkit.dumps(doc))
    r = cis(home, "run", str(p), "--detach")
    assert r.returncode == 0, r.stderr
    rid = r.stdout.strip()
    a = cis(home, "attach", rid)
    assert a.returncode == 0, a.stderr
    assert "1:end completed" in a.stdout and "Succeeded" in a.stdout
    s = cis(home, "status", rid, "--format:json")
    import json

    data = json.loads(s.stdout)
    assert data["state"] == "Succeeded" and [t["state"] for t in data["tasks"]] == ["Completed"] * 2


def test_cli_amend_cmd_of_pending_task(store: Store, home: Path, base: Path) -> None:
    dag = make_dag(base, [task(0, "ship", sh("echo old > out.txt"), cwd=".",
                               level=TaskLevel.confirmed())])
    rid = start_detached(store, dag)
    wait_for(lambda: store.tasks(rid)[0].gate == "confirm", what="confirm gate")
    r = cis(home, "amend", rid, "--task:ship", "--cmd:sh -c 'echo new > out.txt'", "--timeout:30")
    assert r.returncode == 0 and "updated" in r.stdout, r.stdout + r.stderr
    r = cis(home, "amend", rid, "--task:ship")
    assert r.returncode == 2 and r.stderr.startswith("amend: nothing to amend")
    assert cis(home, "confirm", rid, "0").returncode == 0
    wait_for(lambda: finished(store, rid), what="run end")
    assert (base / "out.txt").read_text() == "new\n"
    assert store.tasks(rid)[0].spec["exec"]["timeout"] == 30


def test_ambiguity_suggest_takes_newest_when_countdown_ends(store: Store, base: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from cheng_build.cis.dag import ambiguity

    monkeypatch.setattr(ambiguity, "SUGGEST_COUNTDOWN_S", 0)
    old, new = base / "a.dat", base / "b.dat"
    old.write_text("old")
    new.write_text("new")
    os.utime(old, (1000, 1000))
    dag = make_dag(base, [task(0, "pick", ["cp", "*.dat", "picked"], cwd=".", inputs=["*.dat"],
                               on_ambiguity=AmbiguityPolicy.SUGGEST)])
    _rid, view = run_dag(store, dag)
    assert view.tasks[0].state is TaskState.COMPLETED
    assert (base / "picked").read_text() == "new"


def test_ambiguity_escalate_pauses_dag_until_answered(store: Store, base: Path) -> None:
    dag = make_dag(base, [task(0, "needs-token", sh('echo "$TOKEN" > token.txt'), cwd=".",
                               env={"TOKEN": "${CIS_TEST_UNSET_VARIABLE_XYZ}"},
                               on_ambiguity=AmbiguityPolicy.ESCALATE),
                          task(1, "other", ["true"])])
    rid = start_detached(store, dag)
    wait_for(lambda: task_state(store, rid, 0) is TaskState.ARBITRATED, what="escalation")
    assert store.tasks(rid)[0].choice["open"] == ["env:TOKEN"]
    assert task_state(store, rid, 1) is TaskState.PENDING  # the DAG is paused
    res = control.wait_result(store, control.resolve(store, rid, "needs-token", value="s3cret"))
    assert res == "ok"
    wait_for(lambda: finished(store, rid), what="run end")
    assert (base / "token.txt").read_text() == "s3cret\n"
    assert task_state(store, rid, 1) is TaskState.COMPLETED
