"""Durability: `kill -9` the engine process mid-run; `cis resume` continues from the frontier and
never reruns a task that was recorded Completed."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
from helpers_cis import cis, make_dag, sh, task, wait_for

from cheng_build.cis.dag.model import RunState, TaskState
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


def _kill_engine(store: Store, rid: str) -> None:
    pid = store.get_run(rid).engine_pid
    assert pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not store.engine_alive(rid), what="engine death")


@pytest.mark.parametrize("kill_after", [1, 4, "random"])
def test_kill_9_then_resume_never_reruns_completed(store: Store, home: Path, tmp_path: Path,
                                                   kill_after: int | str) -> None:
    base = tmp_path / "proj"
    base.mkdir()
    n = 10
    tasks = [task(i, f"step{i}", sh(f"echo step{i} >> ran.log; sleep 0.1"), cwd=".",
                  deps=[i - 1] if i % 3 else []) for i in range(n)]
    rid = control.create_run(store, make_dag(base, tasks))
    control.spawn_engine(store, rid, jobs=2)
    wait_for(lambda: store.engine_alive(rid), what="engine start")
    if kill_after == "random":
        import time

        time.sleep(random.uniform(0.0, 0.6))
    else:
        wait_for(lambda: sum(t.state is TaskState.COMPLETED for t in store.tasks(rid)) >= kill_after,
                 what=f"{kill_after} completed")
    _kill_engine(store, rid)
    done_at_kill = {t.name for t in store.tasks(rid) if t.state is TaskState.COMPLETED}

    r = cis(home, "resume", rid, "--quiet")
    assert r.returncode == 0, r.stderr
    view = control.get_run(store, rid)
    assert view.run.state is RunState.SUCCEEDED
    assert all(t.state is TaskState.COMPLETED for t in view.tasks)
    ran = (base / "ran.log").read_text().split()
    for name in done_at_kill:
        assert ran.count(name) == 1, (name, ran)
    assert set(ran) == {f"step{i}" for i in range(n)}


def test_orphan_dies_and_non_idempotent_task_waits(store: Store, home: Path, tmp_path: Path) -> None:
    base = tmp_path / "proj"
    base.mkdir()
    dag = make_dag(base, [task(0, "migrate", sh("echo started >> m.log; sleep 30"), cwd=".",
                               idempotent=False)])
    rid = control.create_run(store, dag)
    control.spawn_engine(store, rid)
    wait_for(lambda: store.tasks(rid)[0].state is TaskState.RUNNING and (base / "m.log").exists(),
             what="task running")
    pid = store.tasks(rid)[0].pid
    _kill_engine(store, rid)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie left for init to reap counts as gone
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    wait_for(gone, what="the task to die with its engine")
    control.spawn_engine(store, rid)
    wait_for(lambda: store.tasks(rid)[0].gate == "confirm", what="confirm gate")
    t = store.tasks(rid)[0]
    assert t.state is TaskState.PENDING and "not idempotent" in (t.note or "")
    assert (base / "m.log").read_text() == "started\n"  # not rerun by itself
    control.resolve(store, rid, 0, action="skip")
    wait_for(lambda: store.get_run(rid).state.finished, what="run end")


def test_two_engines_cannot_drive_one_run(store: Store, home: Path, tmp_path: Path) -> None:
    base = tmp_path / "proj"
    base.mkdir()
    rid = control.create_run(store, make_dag(base, [task(0, "nap", ["sleep", "2"])]))
    control.spawn_engine(store, rid)
    wait_for(lambda: store.engine_alive(rid), what="engine start")
    r = cis(home, "resume", rid)
    assert r.returncode == 1
    assert "already being driven by a live engine" in r.stderr.splitlines()[0]
    wait_for(lambda: store.get_run(rid).state.finished, what="run end")
