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

from cheng_build.cis.dag.model import TaskState
from cheng_build.cis.run import control


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

    from cheng_build.cis.view.tui import LiveView

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


def test_named_target_and_python_dag_route_through_cis_run(tmp_path: Path, monkeypatch) -> None:
    from cheng_build.cis.targets import registry as targets
    from cheng_build.cli import cis_cmds

    base = tmp_path / "p"
    base.mkdir()
    monkeypatch.setitem(targets.TARGETS, "hello",
                        lambda: make_dag(base, [task(0, "hi", sh("echo hi > hi.txt"), cwd=".")]))
    assert targets.resolve_target("no-such-target") is None
    dag = targets.resolve_target("hello")
    assert dag is not None and dag.tasks[0].name == "hi"
    store = control.open_store(tmp_path / "home")
    assert cis_cmds.run_dag(dag, quiet=True, store=store) == 0
    assert (base / "hi.txt").read_text() == "hi\n"
    assert store.list_runs()[0][1] == "t"


def test_terminal_keys_confirm_a_waiting_task(tmp_path: Path) -> None:
    import os
    import pty
    import select
    import subprocess
    import sys

    from helpers_cis import cli_env

    doc = {"name": "keys", "tasks": [{"idx": 0, "name": "deploy", "level": "Confirmed",
                                      "exec": {"cmd": ["sh", "-c", "echo done > deployed"],
                                               "cwd": "."}}]}
    p = tmp_path / "cis.toml"
    p.write_text(tomlkit.dumps(doc))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cheng_build.cli.cis", "run", str(p)],
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            env=cli_env(tmp_path / "home", TERM="xterm", COLUMNS="120"))
    os.close(slave)
    seen = b""
    sent = False
    try:
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
            if not sent and b"waits for you" in seen:
                os.write(master, b"y")
                sent = True
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert sent, seen[-500:]
    assert proc.returncode == 0
    assert (tmp_path / "deployed").read_text() == "done\n"
