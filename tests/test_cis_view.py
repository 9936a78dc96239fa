"""Run ids (checked against python-ulid), the terminal view and the status/debt commands."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import tomlkit
from helpers_cis import cis, make_dag, run_dag, sh, task
from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

from cheng_build.cis import control
from cheng_build.cis.model import TaskState


@settings(max_examples=50, deadline=None)
@given(st.just(None))
def test_run_id_is_a_ulid(_: None) -> None:
    before = int(time.time() * 1000)
    rid = control.new_run_id()
    after = int(time.time() * 1000)
    parsed = ULID.from_str(rid)  # the reference implementation accepts it
    assert str(parsed) == rid and len(rid) == 26
    assert before <= parsed.milliseconds <= after


def test_run_ids_sort_by_time() -> None:
    a = control.new_run_id()
    time.sleep(0.002)
    b = control.new_run_id()
    assert a < b


def test_live_view_renders_progress_and_running_lines(tmp_path: Path) -> None:
    from rich.console import Console

    from cheng_build.cis.tui import LiveView

    store = control.open_store(tmp_path / "home")
    base = tmp_path / "p"
    base.mkdir()
    rid = control.create_run(store, make_dag(base, [task(0, "quick", ["true"]),
                                                    task(1, "second", ["true"], deps=[0])]))
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with LiveView(store, rid, console=console) as view:
        control.drive(store, rid, observer=view)
    text = out.getvalue()
    assert "Completed   0 quick" in text and "Completed   1 second" in text
    frame = LiveView(store, rid, console=Console(file=io.StringIO(), width=120)).render(
        control.get_run(store, rid), time.time())
    rendered = io.StringIO()
    Console(file=rendered, width=120).print(frame)
    assert "2/2 done" in rendered.getvalue() and "ETA" in rendered.getvalue()


def test_status_and_debt_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = tmp_path / "p"
    base.mkdir()
    store = control.open_store(home)
    rid, view = run_dag(store, make_dag(base, [task(0, "ok", ["true"]),
                                               task(1, "flaky", sh("echo boom >&2; exit 9"),
                                                    deps=[0])], name="sd"))
    assert view.tasks[1].state is TaskState.DEBT
    r = cis(home, "status")
    assert rid in r.stdout and "SucceededWithDebt" in r.stdout
    r = cis(home, "status", rid[:12])
    assert "Debt   1 flaky" in r.stdout and "exited with status 9" in r.stdout
    r = cis(home, "debt")
    assert "why: boom" in r.stdout and f"cis retry {rid} --from:flaky" in r.stdout
    r = cis(home, "debt", "--format:json")
    items = json.loads(r.stdout)
    assert items[0]["task"] == "flaky" and items[0]["why"] == ["boom"]
    r = cis(home, "status", "NOPE")
    assert r.returncode == 2 and r.stderr.startswith("status: no run 'NOPE'")


def test_dry_run_prints_plan_and_runs_nothing(tmp_path: Path) -> None:
    doc = {"name": "dry", "tasks": [{"idx": 0, "name": "touch", "exec": {
        "cmd": ["sh", "-c", "touch made"], "cwd": "."}}]}
    p = tmp_path / "cis.toml"
    p.write_text(tomlkit.dumps(doc))
    r = cis(tmp_path / "home", "run", str(p), "--dry-run")
    assert r.returncode == 0 and "dry run: dry" in r.stdout and "0 touch" in r.stdout
    assert not (tmp_path / "made").exists()


def test_events_feed_for_live_views(tmp_path: Path) -> None:
    store = control.open_store(tmp_path / "home")
    base = tmp_path / "p"
    base.mkdir()
    rid, _view = run_dag(store, make_dag(base, [task(0, "a", ["true"]), task(1, "b", ["true"])]))
    evs = control.events(store, rid)
    ids = [e[0] for e in evs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    kinds = [e[3] for e in evs]
    assert kinds[0] == "run-created" and kinds[-1] == "run-finished"
    assert kinds.count("started") == 2 and kinds.count("completed") == 2
    assert control.events(store, rid, after=ids[-1]) == []
