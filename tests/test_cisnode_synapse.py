"""Multi-node CIS on a real Synapse homeserver: node processes claim tasks by capability, race,
take over lapsed leases, run as islands, and the origin's `cis status` says who ran what."""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_cisnode import Node, Proxy, cis, origin_run, start_node, wait_for, write_dag
from helpers_synapse import Synapse, require_synapse, start_synapse

pytestmark = [pytest.mark.network, pytest.mark.slow]

USERS = ("alpha", "beta", "gamma", "delta", "origin", "mallory")


@pytest.fixture(scope="module")
def hs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    server = start_synapse(tmp_path_factory.mktemp("synapse"), require_synapse())
    try:
        for u in USERS:
            server.register(u)
        yield server
    finally:
        server.stop()


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for n in started:
        n.stop()


def room_events(hs: Synapse, room: str, user: str = "origin") -> list[dict[str, object]]:
    """Every event of the room, read as a member through the client API."""
    token = hs.login(user)
    alias = urllib.parse.quote(f"#{room}:cis.test")

    def get(path: str) -> dict[str, object]:
        req = urllib.request.Request(hs.url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    rid = urllib.parse.quote(str(get(f"/_matrix/client/v3/directory/room/{alias}")["room_id"]))
    out: list[dict[str, object]] = []
    frm = ""
    for _ in range(100):
        q = "dir=b&limit=1000" + (f"&from={frm}" if frm else "")
        page = get(f"/_matrix/client/v3/rooms/{rid}/messages?{q}")
        chunk = page.get("chunk") or []
        out += chunk  # type: ignore[arg-type]
        if not chunk or not page.get("end"):
            break
        frm = urllib.parse.quote(str(page["end"]))
    return out


def finish(proc: object, timeout: float = 150) -> tuple[int, dict[str, object]]:
    import subprocess

    assert isinstance(proc, subprocess.Popen)
    out, _ = proc.communicate(timeout=timeout)
    text = out.decode()
    return proc.returncode, (json.loads(text.strip().splitlines()[-1]) if text.strip() else {})


def test_three_nodes_by_capability_each_task_once(hs: Synapse, tmp_path: Path, nodes: list[Node]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    secret = secrets.token_hex(16)
    (ws / "secret.txt").write_text(secret + "\n")
    rec = {"LOG": str(runs)}
    body = 'echo "$CIS_NODE" >> "$LOG/$0"'
    dag = write_dag(ws, "three", [
        {"name": "build-cuda", "cmd": ["sh", "-c", body, "build-cuda"], "env": rec, "caps": ["cuda"]},
        {"name": "build-metal", "cmd": ["sh", "-c", body, "build-metal"], "env": rec, "caps": ["metal"]},
        {"name": "lint", "cmd": ["sh", "-c", body, "lint"], "env": rec, "caps": ["cpu"]},
        {"name": "compare", "deps": [0, 1, 2], "cmd": ["sh", "-c", body, "compare"], "env": rec,
         "caps": ["cuda", "cpu"]},
        # Prints a file's contents to stdout and stderr, then fails: none of it may reach the room.
        {"name": "leaky", "cmd": ["sh", "-c", f'{body}; cat secret.txt; cat secret.txt >&2; exit 3', "leaky"],
         "env": rec, "cwd": ".", "ignorable": True},
    ])
    caps = {"alpha": ["cuda", "cpu"], "beta": ["metal"], "gamma": ["cpu"]}
    for user, c in caps.items():
        nodes.append(start_node(hs, user, "three", ws, tmp_path, c))
    wait_for(lambda: all("caps" in n.text() for n in nodes), 60, "three nodes up", nodes)
    proc = origin_run(hs, "origin", "three", dag, tmp_path, tmp_path / "home-origin")
    rc, res = finish(proc)
    assert rc == 0, (tmp_path / "origin.log").read_text() + "\n".join(n.text() for n in nodes)
    run_id = str(res["run_id"])
    by_name = {t["name"]: t for t in res["tasks"]}  # type: ignore[union-attr, index]
    # Each task exactly once, on a node that has its capabilities.
    for name in ("build-cuda", "build-metal", "lint", "compare", "leaky"):
        ran = (runs / name).read_text().split()
        assert len(ran) == 1, (name, ran)
        assert by_name[name]["node"] == ran[0]
    assert (runs / "build-cuda").read_text().strip() == "@alpha:cis.test"
    assert (runs / "build-metal").read_text().strip() == "@beta:cis.test"
    assert (runs / "compare").read_text().strip() == "@alpha:cis.test"
    assert (runs / "lint").read_text().strip() in ("@alpha:cis.test", "@gamma:cis.test")
    assert by_name["leaky"]["state"] == "Debt"
    # `cis status` on the origin: each task's state and node.
    st = cis(tmp_path / "home-origin", "status", run_id, "--format:json")
    assert st.returncode == 0, st.stderr
    tasks = {t["name"]: t for t in json.loads(st.stdout)["tasks"]}
    assert tasks["build-metal"] == {**tasks["build-metal"], "state": "Completed", "node": "@beta:cis.test"}
    assert tasks["compare"]["node"] == "@alpha:cis.test" and tasks["compare"]["state"] == "Completed"
    assert tasks["leaky"]["state"] == "Debt"
    text_st = cis(tmp_path / "home-origin", "status", run_id)
    assert "[@beta:cis.test]" in text_st.stdout
    # The web view's run detail carries the node too.
    from cheng_build.cis.run import control
    from cheng_build.cis.view.board import Sampler, run_detail

    store = control.open_store(tmp_path / "home-origin")
    try:
        web = {t["name"]: t for t in run_detail(store, run_id, Sampler())["tasks"]}
    finally:
        store.close()
    assert web["build-metal"]["node"] == "@beta:cis.test" and web["compare"]["node"] == "@alpha:cis.test"
    # No event carries file contents (the secret the task printed and read).
    events = room_events(hs, "three")
    assert any(e["type"] == "org.cheng.cis.state" for e in events)
    assert all(secret not in json.dumps(e) for e in events)


def test_four_nodes_race_for_200_tasks_none_twice(hs: Synapse, tmp_path: Path, nodes: list[Node]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    n_tasks = 200
    # Short task lines: 200 of them must fit the run event's 16 KB.
    (ws / "r").write_text(f'echo "$CIS_NODE" >> "{runs}/$1"\n')
    dag = write_dag(ws, "race", [{"name": f"t{i}", "cmd": ["sh", "r", f"t{i}"], "cwd": "."}
                                 for i in range(n_tasks)])
    for user in ("alpha", "beta", "gamma", "delta"):
        nodes.append(start_node(hs, user, "race", ws, tmp_path, ["cpu"], jobs=3))
    wait_for(lambda: all("caps" in n.text() for n in nodes), 60, "four nodes up", nodes)
    rc, res = finish(origin_run(hs, "origin", "race", dag, tmp_path, tmp_path / "home-origin"), 240)
    assert rc == 0, (res, (tmp_path / "origin.log").read_text()[-3000:])
    files = sorted(runs.iterdir())
    assert len(files) == n_tasks
    doubles = [f.name for f in files if len(f.read_text().split()) != 1]
    assert doubles == []
    ran_on = {f.read_text().strip() for f in files}
    assert len(ran_on) >= 2  # they really raced: more than one node won tasks
    assert all(t["state"] == "Completed" for t in res["tasks"])  # type: ignore[union-attr]
    for n in nodes:
        n.stop()
    won = [int(n.text().split(" won ")[1].split(",")[0]) for n in nodes]
    assert sum(won) == n_tasks  # every claim that won ran; every other claim lost and backed off


def test_kill9_of_a_claim_holder_then_takeover_after_the_lease(hs: Synapse, tmp_path: Path,
                                                               nodes: list[Node]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    # On alpha each task hangs (alpha is killed while holding them); elsewhere it records itself.
    (ws / "r").write_text(f'[ "$CIS_NODE" = "@alpha:cis.test" ] && sleep 120\n'
                          f'echo "$CIS_NODE" >> "{runs}/$1"\n')
    dag = write_dag(ws, "kill", [{"name": f"k{i}", "cmd": ["sh", "r", f"k{i}"], "cwd": "."}
                                 for i in range(3)])
    alpha = start_node(hs, "alpha", "kill", ws, tmp_path, ["cpu"], jobs=3, lease=2)
    nodes.append(alpha)
    wait_for(lambda: "caps" in alpha.text(), 60, "alpha up", nodes)
    proc = origin_run(hs, "origin", "kill", dag, tmp_path, tmp_path / "home-origin")
    wait_for(lambda: alpha.text().count("running task") == 3, 60, "alpha holding 3 tasks", nodes)
    alpha.kill9()
    beta = start_node(hs, "beta", "kill", ws, tmp_path, ["cpu"], jobs=3, lease=2)
    nodes.append(beta)
    rc, res = finish(proc, 120)
    assert rc == 0, (res, (tmp_path / "origin.log").read_text()[-3000:], beta.text())
    for t in res["tasks"]:  # type: ignore[union-attr]
        assert t["state"] == "Completed" and t["node"] == "@beta:cis.test", t
        assert (runs / str(t["name"])).read_text().split() == ["@beta:cis.test"]
    assert beta.text().count("silent past its lease") == 3
    st = json.loads(cis(tmp_path / "home-origin", "status", str(res["run_id"]), "--format:json").stdout)
    assert {t["node"] for t in st["tasks"]} == {"@beta:cis.test"}


def test_island_finishes_its_tasks_and_duplicates_become_debt_after_the_heal(
        hs: Synapse, tmp_path: Path, nodes: list[Node]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    healed = tmp_path / "healed"
    released = tmp_path / "released"
    # Two executions of each task by construction, never by timing: on alpha a task blocks until
    # the test releases it, which it does only after beta took all three over and finished them.
    (ws / "r").write_text(f'if [ "$CIS_NODE" = "@alpha:cis.test" ]; then\n'
                          f'  while [ ! -e "{released}" ]; do sleep 0.1; done\nfi\n'
                          f'echo "$CIS_NODE" >> "{runs}/$1"\n')
    # The gate keeps the run open until the test has healed alpha. Only gamma has "gate", and
    # gamma is up before the run is posted: it claims the gate at once, so the origin never finds
    # the gate without a capable node (its grace period would otherwise race beta's start-up,
    # skip the gate and end the run before alpha's duplicates arrive).
    (ws / "gate").write_text(f'while [ ! -e "{healed}" ]; do sleep 0.1; done\n')
    tasks = [{"name": f"i{i}", "cmd": ["sh", "r", f"i{i}"], "cwd": ".", "caps": ["cpu"]}
             for i in range(3)]
    tasks.append({"name": "gate", "cmd": ["sh", "gate"], "cwd": ".", "caps": ["gate"]})
    dag = write_dag(ws, "island", tasks)
    proxy = Proxy(hs.port)
    proxy.open()
    alpha = start_node(hs, "alpha", "island", ws, tmp_path, ["cpu"], jobs=3, lease=2, url=proxy.url)
    nodes.append(alpha)
    gamma = start_node(hs, "gamma", "island", ws, tmp_path, ["gate"], jobs=1, lease=2)
    nodes.append(gamma)
    wait_for(lambda: "caps" in alpha.text() and "caps" in gamma.text(), 60, "alpha, gamma up", nodes)
    proc = origin_run(hs, "origin", "island", dag, tmp_path, tmp_path / "home-origin")
    wait_for(lambda: alpha.text().count("running task") == 3 and "running task" in gamma.text(), 60,
             "alpha holding 3 tasks, gamma the gate", nodes)
    proxy.cut()  # alpha is an island now: it keeps running, queues its events
    beta = start_node(hs, "beta", "island", ws, tmp_path, ["cpu"], jobs=4, lease=2)
    nodes.append(beta)
    wait_for(lambda: beta.text().count("silent past its lease") == 3 and
             beta.text().count(": Completed") == 3, 60, "beta taking over", nodes)
    released.write_text("")
    wait_for(lambda: alpha.text().count("[island]") == 3, 60, "alpha finishing as an island", nodes)
    assert "island mode" in alpha.text()
    online = alpha.text().count("back online")
    proxy.heal()
    # "back online" is logged once the queue reached the homeserver: wait for the one after the heal.
    wait_for(lambda: alpha.text().count("back online") > online, 60, "alpha delivering its queue",
             nodes)
    healed.write_text("")
    rc, res = finish(proc, 120)
    proxy.cut()
    assert rc == 0, (res, (tmp_path / "origin.log").read_text()[-3000:])
    by = {t["name"]: t for t in res["tasks"]}  # type: ignore[union-attr]
    for i in range(3):
        t = by[f"i{i}"]
        assert t["state"] == "Debt", t
        assert "ran more than once" in t["reason"]
        assert "@alpha:cis.test (epoch 0, as an island)" in t["reason"]
        assert "@beta:cis.test (epoch 1)" in t["reason"]
        assert sorted((runs / f"i{i}").read_text().split()) == ["@alpha:cis.test", "@beta:cis.test"]
    debt = cis(tmp_path / "home-origin", "debt", "--format:json")
    assert debt.returncode == 0
    assert sum("ran more than once" in json.dumps(d) for d in json.loads(debt.stdout)) == 3


# --- bad input and attacks, end to end ------------------------------------------------------------


def _client(hs: Synapse, user: str) -> tuple[str, object]:
    token = hs.login(user)

    def call(method: str, path: str, body: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
        req = urllib.request.Request(hs.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    return token, call


def test_bad_connections_are_one_line_errors(hs: Synapse, tmp_path: Path) -> None:
    from helpers_cisnode import conn_flags
    from helpers_synapse import free_port

    ws = tmp_path / "ws"
    ws.mkdir()
    dag = write_dag(ws, "bad", [{"name": "a", "cmd": ["true"]}])
    home = tmp_path / "home"
    r = cis(home, "run", str(dag), *conn_flags(hs, "origin", "no-such-room", tmp_path))
    assert r.returncode == 1 and r.stderr.splitlines()[0] == "run: unknown room #no-such-room:cis.test"
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password\n")
    r = cis(home, "node", f"--homeserver:{hs.url}", "--user:alpha", f"--password-file:{wrong}",
            "--room:bad", f"--workspace:{ws}", "--no-detect", "--no-mdns")
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == f"node: login as alpha refused by {hs.url}"
    down = f"http://127.0.0.1:{free_port()}"
    r = cis(home, "node", *conn_flags(hs, "alpha", "bad", tmp_path, down), f"--workspace:{ws}",
            "--no-detect", "--no-mdns")
    assert r.returncode == 1 and r.stderr.splitlines()[0] == f"node: homeserver {down} unreachable"
    r = cis(home, "node", f"--workspace:{ws}")
    assert r.returncode == 2 and r.stderr.startswith("node: no --homeserver, --user, --room given")
    assert "Traceback" not in r.stderr
    # Oversize: a DAG whose run event would pass 16 KB is refused before anything is posted.
    big = write_dag(ws, "big", [{"name": "a", "cmd": ["true"], "env": {"X": secrets.token_hex(12000)}}])
    r = cis(home, "run", str(big), *conn_flags(hs, "origin", "bad", tmp_path))
    assert r.returncode == 2 and "the run event is too large for the room" in r.stderr.splitlines()[0]


def test_forged_malformed_and_nonmember_events_change_nothing(hs: Synapse, tmp_path: Path,
                                                             nodes: list[Node]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    (ws / "r").write_text(f'echo "$CIS_NODE" >> "{runs}/$1"\n')
    dag = write_dag(ws, "forge", [{"name": f"f{i}", "cmd": ["sh", "r", f"f{i}"], "cwd": "."}
                                  for i in range(2)])
    # The room exists, the run is posted, and no node is up yet (the origin waits for one).
    _, gam = _client(hs, "gamma")
    code, made = gam("POST", "/_matrix/client/v3/createRoom",  # type: ignore[operator]
                     {"room_alias_name": "forge", "preset": "public_chat"})
    assert code == 200, made
    rid = urllib.parse.quote(str(made["room_id"]))
    proc = origin_run(hs, "origin", "forge", dag, tmp_path, tmp_path / "home-origin", "--grace:60")
    _, mal = _client(hs, "mallory")
    run_ids: list[str] = []

    def posted() -> bool:
        run_ids[:] = [str(e["content"]["run"]) for e in room_events(hs, "forge", "gamma")  # type: ignore[index]
                      if e["type"] == "org.cheng.cis.run"]
        return bool(run_ids)

    wait_for(posted, 60, "the run posted")
    run_id = run_ids[0]
    send = f"/_matrix/client/v3/rooms/{rid}/send"
    # A non-member cannot post at all: the homeserver refuses it, so nothing reaches a node.
    assert mal("PUT", f"{send}/org.cheng.cis.claim/t0", {"node": "x"})[0] == 403  # type: ignore[operator]
    # A member forging: claims in alpha's name for both tasks, a "Completed" for a task mallory
    # never won, a malformed run event. Each is dropped where a node reads it.
    assert mal("POST", f"/_matrix/client/v3/join/{rid}", {})[0] == 200  # type: ignore[operator]
    bad: list[tuple[str, dict[str, object]]] = [
        ("org.cheng.cis.claim", {"v": 1, "node": "@alpha:cis.test", "run": run_id, "task": 0,
                                 "epoch": 0, "lease_ms": 1000}),
        ("org.cheng.cis.claim", {"v": 1, "node": "@alpha:cis.test", "run": run_id, "task": 1,
                                 "epoch": 0, "lease_ms": 1000}),
        ("org.cheng.cis.state", {"v": 1, "node": "@mallory:cis.test", "run": run_id, "task": 1,
                                 "epoch": 0, "state": "Completed"}),
        ("org.cheng.cis.run", {"v": 1, "node": "@mallory:cis.test", "run": "01M98FZR3PSFV964KJ3JCZ99Y9",
                               "name": "x", "workspace": "w", "dag_file": "cis.toml", "dag_z": "!!"}),
        # Batches: a forged one in alpha's name, malformed ones of her own that would win both
        # tasks if read (a task twice, both forms at once), results for tasks she never won.
        ("org.cheng.cis.claim", {"v": 1, "node": "@alpha:cis.test", "run": run_id,
                                 "tasks": [[0, 0], [1, 0]], "lease_ms": 1000}),
        ("org.cheng.cis.claim", {"v": 1, "node": "@mallory:cis.test", "run": run_id,
                                 "tasks": [[0, 0], [1, 0], [0, 0]], "lease_ms": 1000}),
        ("org.cheng.cis.claim", {"v": 1, "node": "@mallory:cis.test", "run": run_id, "task": 1,
                                 "epoch": 0, "tasks": [[0, 0], [1, 0]], "lease_ms": 1000}),
        ("org.cheng.cis.state", {"v": 1, "node": "@mallory:cis.test", "run": run_id, "results": [
            {"task": 0, "epoch": 0, "state": "Completed"}, {"task": 1, "epoch": 0, "state": "Failed"}]}),
        # Results riding on a claim of her own (for a task the run does not have): refused as in
        # a state event, the task is not hers.
        ("org.cheng.cis.claim", {"v": 1, "node": "@mallory:cis.test", "run": run_id, "tasks": [[7, 0]],
                                 "lease_ms": 1000,
                                 "results": [{"task": 0, "epoch": 0, "state": "Completed"}]}),
    ]
    # A member posting a well-formed run for this very workspace, with commands of her own.
    from cheng_build.cis.node import protocol, workspace

    pwned = tmp_path / "pwned"
    evil = dag.read_text().replace('["sh", "r", "f0"]', f'["sh", "-c", "touch {pwned}"]')
    bad.append(("org.cheng.cis.run", {
        "v": 1, "node": "@mallory:cis.test", "run": "01M98FZR3PSFV964KJ3JCZ99Y8", "name": "evil",
        "workspace": workspace.identity(ws), "dag_file": "cis.toml", "dag_z": protocol.pack_dag(evil)}))
    for i, (etype, body) in enumerate(bad):
        assert mal("PUT", f"{send}/{etype}/bad{i}", body)[0] == 200  # type: ignore[operator]
    alpha = start_node(hs, "alpha", "forge", ws, tmp_path, ["cpu"], lease=30)
    nodes.append(alpha)
    rc, res = finish(proc, 120)
    assert rc == 0, (res, alpha.text())
    assert all(t["node"] == "@alpha:cis.test" and t["state"] == "Completed"
               for t in res["tasks"])  # type: ignore[union-attr]
    assert all((runs / f"f{i}").read_text().split() == ["@alpha:cis.test"] for i in range(2))
    text = alpha.text()
    assert "its DAG differs from cis.toml in this workspace" in text and not pwned.exists()
    assert text.count("claims to be node '@alpha:cis.test': forged, dropped") == 3
    assert "task 0 appears twice" in text and "needs either task + epoch or tasks, not both" in text
    assert "its DAG is not zlib+base64" in text
    # Results for tasks she never won, alone or riding on a claim: each refused, and said so.
    assert text.count("from @mallory:cis.test: it does not hold epoch 0") == 4, text


def test_a_workspace_no_node_has_fails_the_run_with_the_reason(hs: Synapse, tmp_path: Path,
                                                               nodes: list[Node]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "README").write_text("a different checkout\n")
    dag = write_dag(ws, "nows", [{"name": "a", "cmd": ["true"]}])
    alpha = start_node(hs, "alpha", "nows", other, tmp_path, ["cpu"])
    nodes.append(alpha)
    wait_for(lambda: "caps" in alpha.text(), 60, "alpha up", nodes)
    proc = origin_run(hs, "origin", "nows", dag, tmp_path, tmp_path / "home-origin", "--grace:2")
    rc, res = finish(proc, 120)
    err = (tmp_path / "origin.log").read_text()
    assert rc == 1, err
    assert "run: no node took run" in err and "is not held here" in err
    assert res["tasks"][0]["state"] == "Skipped"  # type: ignore[index]
    assert not list((tmp_path / "home-alpha").glob("runs/*"))  # alpha ran nothing


def test_a_confirmed_task_waits_until_a_person_confirms_it_from_another_machine(
        hs: Synapse, tmp_path: Path, nodes: list[Node]) -> None:
    from helpers_cisnode import conn_flags

    ws = tmp_path / "ws"
    ws.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    (ws / "r").write_text(f'echo "$CIS_NODE" >> "{runs}/$1"\n')
    dag = write_dag(ws, "confirm", [{"name": "build", "cmd": ["sh", "r", "build"], "cwd": "."},
                                    {"name": "publish", "deps": [0], "cmd": ["sh", "r", "publish"],
                                     "cwd": ".", "level": "Confirmed"}])
    alpha = start_node(hs, "alpha", "confirm", ws, tmp_path, ["cpu"])
    nodes.append(alpha)
    wait_for(lambda: "caps" in alpha.text(), 60, "alpha up", nodes)
    proc = origin_run(hs, "origin", "confirm", dag, tmp_path, tmp_path / "home-origin", "--grace:60")
    wait_for(lambda: ": Completed" in alpha.text(), 60, "build done", nodes)
    time.sleep(1.0)  # nothing may start "publish" without a person
    assert not (runs / "publish").exists() and proc.poll() is None
    run_id = alpha.text().split("run ", 1)[1].split(" ", 1)[0]
    r = cis(tmp_path / "home-gamma", "confirm", run_id, "1", *conn_flags(hs, "gamma", "confirm", tmp_path))
    assert r.returncode == 0, r.stderr
    rc, res = finish(proc, 120)
    assert rc == 0, res
    assert (runs / "publish").read_text().split() == ["@alpha:cis.test"]


def test_detach_leaves_a_follower_that_mirrors_the_run(hs: Synapse, tmp_path: Path,
                                                       nodes: list[Node]) -> None:
    from helpers_cisnode import conn_flags

    ws = tmp_path / "ws"
    ws.mkdir()
    dag = write_dag(ws, "detach", [{"name": "a", "cmd": ["true"]},
                                   {"name": "b", "deps": [0], "cmd": ["true"]}])
    alpha = start_node(hs, "alpha", "detach", ws, tmp_path, ["cpu"])
    nodes.append(alpha)
    wait_for(lambda: "caps" in alpha.text(), 60, "alpha up", nodes)
    home = tmp_path / "home-origin"
    r = cis(home, "run", str(dag), *conn_flags(hs, "origin", "detach", tmp_path), "--detach")
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.strip()

    def done() -> bool:
        st = json.loads(cis(home, "status", run_id, "--format:json").stdout)
        return bool(st["state"] == "Succeeded" and all(t["node"] == "@alpha:cis.test" for t in st["tasks"]))

    wait_for(done, 90, "the detached run mirrored to Succeeded", nodes)
