"""The room transport: the Matrix room on a real Synapse and the in-memory room keep one contract
(timeline order, continuation tokens, idempotent retries, members only, clear refusals)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_synapse import Synapse, free_port, require_synapse, start_synapse

from cheng_build.cis.node.memroom import MemoryHub
from cheng_build.cis.node.room import Room, RoomError

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def hs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    server = start_synapse(tmp_path_factory.mktemp("synapse"), require_synapse())
    try:
        for u in ("alpha", "beta", "gamma"):
            server.register(u)
        yield server
    finally:
        server.stop()


async def _contract(a: Room, b: Room) -> None:
    first = await b.read(None, 0)
    for i in range(25):  # more than one default sync page (10): order must survive
        await a.send("org.cheng.cis.test", {"i": i}, f"txn-{i}")
    await a.send("org.cheng.cis.test", {"i": 0}, "txn-0")  # a retry: no second event
    got: list[int] = []
    token = first.token
    for _ in range(20):
        batch = await b.read(token, 2.0)
        token = batch.token
        got += [int(e.content["i"]) for e in batch.events if e.type == "org.cheng.cis.test"]
        if len(got) >= 25:
            break
    assert got == list(range(25))
    assert all(e.sender == a.user_id for e in (await b.read(first.token, 0)).events)
    later = await b.read(token, 0.2)
    assert later.events == ()


def test_matrix_room_contract(hs: Synapse) -> None:
    from cheng_build.cis.node import matrix

    async def main() -> None:
        a = await matrix.connect(hs.url, "alpha", password=hs.users["alpha"], room="contract")
        b = await matrix.connect(hs.url, "beta", password=hs.users["beta"], room="contract")
        try:
            assert a.room_id == b.room_id
            assert {a.user_id, b.user_id} <= await a.members()
            await _contract(a, b)
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_memory_room_contract() -> None:
    async def main() -> None:
        hub = MemoryHub()
        await _contract(hub.join("@a:m", "r"), hub.join("@b:m", "r"))

    asyncio.run(main())


def test_matrix_refusals_are_clear(hs: Synapse, tmp_path: Path) -> None:
    from cheng_build.cis.node import matrix

    async def main() -> None:
        with pytest.raises(RoomError) as bad:
            await matrix.connect(hs.url, "alpha", password="wrong", room="contract")
        assert "login as alpha refused" in bad.value.what and not bad.value.transient
        with pytest.raises(RoomError) as unknown:
            await matrix.connect(hs.url, "alpha", password=hs.users["alpha"], room="nosuch", create=False)
        assert unknown.value.what == "unknown room #nosuch:cis.test"
        with pytest.raises(RoomError) as down:
            await matrix.connect(f"http://127.0.0.1:{free_port()}", "alpha", password="x", room="r")
        assert down.value.transient and "unreachable" in down.value.what
        # A token works as well as a password.
        r = await matrix.connect(hs.url, "gamma", token=hs.login("gamma"), room="contract")
        assert r.user_id == "@gamma:cis.test"
        await r.close()

    asyncio.run(main())


def test_matrix_sync_gap_is_filled_in_order(hs: Synapse, monkeypatch: pytest.MonkeyPatch) -> None:
    """More events than the sync filter's limit since the token: Synapse says `limited`, the room
    fetches the rest from /messages and marks the batch a gap, in timeline order, none lost."""
    from cheng_build.cis.node import matrix

    monkeypatch.setattr(matrix, "TIMELINE_LIMIT", 5)

    async def main() -> None:
        a = await matrix.connect(hs.url, "alpha", password=hs.users["alpha"], room="gap")
        b = await matrix.connect(hs.url, "beta", password=hs.users["beta"], room="gap")
        try:
            first = await b.read(None, 0)
            for i in range(23):
                await a.send("org.cheng.cis.test", {"i": i}, f"gap-{i}")
            batch = await b.read(first.token, 2.0)
            assert batch.gap
            assert [int(e.content["i"]) for e in batch.events] == list(range(23))
            assert (await b.read(batch.token, 0.2)).events == ()
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_a_password_login_is_kept_and_used_again(hs: Synapse, tmp_path: Path) -> None:
    """Two connections with a password and a session file make one device, not two (and one
    password hash on the homeserver); the kept token is 0600; a revoked one falls back to the
    password; a token of another user is never used for this one."""
    import json
    import stat

    from cheng_build.cis.node import matrix

    kept = tmp_path / "matrix" / "s.json"

    def devices() -> list[str]:
        tok = hs.login("alpha")  # a device of its own, left out below
        me = hs._post("/_matrix/client/v3/account/whoami", None, tok)["device_id"]
        got = [d["device_id"] for d in hs._post("/_matrix/client/v3/devices", None, tok)["devices"]]
        hs._post("/_matrix/client/v3/logout", {}, tok)
        return [d for d in got if d != me]

    async def connect() -> str:
        room = await matrix.connect(hs.url, "alpha", password=hs.users["alpha"], room="kept",
                                    session_file=kept)
        await room.close()
        return room.user_id

    start = set(devices())
    asyncio.run(connect())
    first = set(devices()) - start
    asyncio.run(connect())
    assert set(devices()) - start == first and len(first) == 1
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    token = json.loads(kept.read_text())["access_token"]
    hs._post("/_matrix/client/v3/logout", {}, token)  # revoked: the password logs in again
    assert asyncio.run(connect()) == "@alpha:cis.test"
    assert json.loads(kept.read_text())["access_token"] != token
    kept.write_text(json.dumps({"access_token": hs.login("beta")}))  # another user's token
    assert asyncio.run(connect()) == "@alpha:cis.test"
    # ...also where the file says which room and filter to use (the fast way in: no join).
    data = json.loads(kept.read_text())
    assert list(data["rooms"]) == ["kept"]
    kept.write_text(json.dumps({**data, "access_token": hs.login("beta")}))
    assert asyncio.run(connect()) == "@alpha:cis.test"
    assert json.loads(kept.read_text())["access_token"] != data["access_token"]


def test_a_kept_session_gets_in_without_mautrix(hs: Synapse, tmp_path: Path) -> None:
    """A later run with a kept session (token, room id, filter) reads and sends without importing
    mautrix or aiohttp (a `cis run --room:`'s start-up); one removed from the room since is refused, not
    silently deaf."""
    import json
    import subprocess
    import sys

    from cheng_build.cis.node import matrix

    kept = tmp_path / "matrix" / "fast.json"

    async def first() -> None:
        r = await matrix.connect(hs.url, "beta", password=hs.users["beta"], room="fast", session_file=kept)
        await r.close()

    asyncio.run(first())
    code = f"""
import asyncio, pathlib, sys
from cheng_build.cis.node import matrix
async def main():
    r = await matrix.connect({hs.url!r}, "beta", password={hs.users["beta"]!r}, room="fast",
                             session_file=pathlib.Path({str(kept)!r}))
    await r.send("org.cheng.cis.test", {{"i": 1}}, "fast-1")
    got = await r.read(None, 0)
    await r.close()
    print(r.user_id, [e.content.get("i") for e in got.events],
          sorted({{m.split(".")[0] for m in sys.modules}} & {{"mautrix", "aiohttp"}}))
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["@beta:cis.test", "[1]", "[]"]

    async def first_reads_are_fresh() -> None:
        # A first read after an earlier run's first read (same device) sees the room as it is
        # now, not the homeserver's cached answer to the earlier one.
        a = await matrix.connect(hs.url, "beta", password=hs.users["beta"], room="fast", session_file=kept)
        before = await a.read(None, 0)
        other = await matrix.connect(hs.url, "alpha", password=hs.users["alpha"], room="fast")
        await other.send("org.cheng.cis.test", {"i": 2}, "fast-2")
        b = await matrix.connect(hs.url, "beta", password=hs.users["beta"], room="fast", session_file=kept)
        now = await b.read(None, 0)
        for r in (a, other, b):
            await r.close()
        assert [e.content.get("i") for e in now.events] == [e.content.get("i") for e in before.events] + [2]

    asyncio.run(first_reads_are_fresh())

    async def later_reads_are_fresh() -> None:
        # Two runs of one user (one kept session: one device) reading on from the same token:
        # the second sees what was posted after the first read, not the first read's answer.
        a = await matrix.connect(hs.url, "beta", password=hs.users["beta"], room="fast", session_file=kept)
        b = await matrix.connect(hs.url, "beta", password=hs.users["beta"], room="fast", session_file=kept)
        other = await matrix.connect(hs.url, "alpha", password=hs.users["alpha"], room="fast")
        token = (await a.read(None, 0)).token
        await other.send("org.cheng.cis.test", {"i": 3}, "fast-3")
        first = await a.read(token, 0)
        await other.send("org.cheng.cis.test", {"i": 4}, "fast-4")
        second = await b.read(token, 0)
        for r in (a, b, other):
            await r.close()
        assert [e.content.get("i") for e in first.events] == [3]
        assert [e.content.get("i") for e in second.events] == [3, 4]

    asyncio.run(later_reads_are_fresh())

    async def leave_then_web_view() -> None:
        tok = hs.login("beta")
        rid = json.loads(kept.read_text())["rooms"]["fast"]["room_id"]
        hs._post(f"/_matrix/client/v3/rooms/{rid}/leave", {}, tok)
        with pytest.raises(RoomError) as gone:
            await matrix.connect(hs.url, "beta", password=hs.users["beta"], room="fast", join=False,
                                 session_file=kept)
        assert "is not a member of room" in gone.value.what and not gone.value.transient

    asyncio.run(leave_then_web_view())


def test_runs_started_together_share_one_login(hs: Synapse, tmp_path: Path) -> None:
    """Four first runs of one user started at once (as `cis run --room:` x 4 with one
    $CIS_HOME): one password login (one device, one password hash on the homeserver), the
    others wait on the lock beside the session file and use the token it kept."""
    import json

    from cheng_build.cis.node import matrix

    kept = tmp_path / "matrix" / "together.json"

    def devices() -> set[str]:
        tok = hs.login("gamma")
        me = hs._post("/_matrix/client/v3/account/whoami", None, tok)["device_id"]
        got = {d["device_id"] for d in hs._post("/_matrix/client/v3/devices", None, tok)["devices"]}
        hs._post("/_matrix/client/v3/logout", {}, tok)
        return got - {me}

    async def one() -> str:
        room = await matrix.connect(hs.url, "gamma", password=hs.users["gamma"], room="together",
                                    session_file=kept)
        await room.close()
        return room.room_id

    async def four() -> list[str]:
        return list(await asyncio.gather(*(one() for _ in range(4))))

    start = devices()
    rooms = asyncio.run(four())
    assert len(set(rooms)) == 1  # and all joined the one room
    new = devices() - start
    assert len(new) == 1, f"{len(new)} logins for four runs started together"
    token = json.loads(kept.read_text())["access_token"]
    who = hs._post("/_matrix/client/v3/account/whoami", None, token)
    assert who["device_id"] in new


def test_a_kept_room_whose_alias_moved_is_left_for_the_new_one(hs: Synapse, tmp_path: Path) -> None:
    """The alias of a kept room now names another room (recreated by an admin): the next run
    resolves it again and joins the new room, never posting to the old one."""
    import json
    import urllib.request

    from cheng_build.cis.node import matrix

    kept = tmp_path / "matrix" / "moved.json"

    async def connect() -> str:
        r = await matrix.connect(hs.url, "alpha", password=hs.users["alpha"], room="moving",
                                 session_file=kept)
        await r.close()
        return r.room_id

    old = asyncio.run(connect())
    tok = hs.login("alpha")  # the room's creator moves its alias to a new room
    req = urllib.request.Request(f"{hs.url}/_matrix/client/v3/directory/room/%23moving%3Acis.test",
                                 method="DELETE", headers={"Authorization": f"Bearer {tok}"})
    urllib.request.urlopen(req, timeout=30).close()
    new = hs._post("/_matrix/client/v3/createRoom", {"room_alias_name": "moving", "preset": "public_chat"},
                   tok)["room_id"]
    assert new != old
    assert asyncio.run(connect()) == new
    assert json.loads(kept.read_text())["rooms"]["moving"]["room_id"] == new



def test_a_second_cis_run_in_a_room_imports_neither_aiohttp_nor_mautrix(hs: Synapse, tmp_path: Path) -> None:
    """Through the CLI: the first `cis run --room:` of a user logs in (mautrix, aiohttp); the next
    one, with the session kept in $CIS_HOME, posts its run without importing either (what
    `-X importtime` shows the process loaded). No node is in the room: each run ends, after
    its grace with its task skipped for the reason, which shows it really reached the room."""
    import subprocess
    import sys

    from helpers_cisnode import cis_env, conn_flags, write_dag

    from cheng_build.cis.node import matrix

    async def make_room() -> None:  # a node would have made it
        await (await matrix.connect(hs.url, "alpha", password=hs.users["alpha"], room="lean")).close()

    asyncio.run(make_room())
    ws = tmp_path / "ws"
    ws.mkdir()
    dag = write_dag(ws, "lean", [{"name": "a", "cmd": ["true"]}])
    home = tmp_path / "home"
    home.mkdir()

    def run() -> tuple[subprocess.CompletedProcess[str], set[str]]:
        out = subprocess.run([sys.executable, "-X", "importtime", "-m", "cheng_build.cli.cis", "run",
                              str(dag), *conn_flags(hs, "gamma", "lean", tmp_path), "--grace:0.5"],
                             capture_output=True, text=True, timeout=120, env=cis_env(home))
        loaded = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines()
                  if line.startswith("import time:")}
        return out, loaded & {"aiohttp", "mautrix", "yarl", "multidict"}

    first, heavy = run()
    assert first.returncode == 0 and "no live node takes this run" in first.stderr, first.stderr[-2000:]
    assert heavy == {"aiohttp", "mautrix", "yarl", "multidict"}  # the login: what the check looks for
    again, heavy = run()
    assert again.returncode == 0 and "no live node takes this run" in again.stderr, again.stderr[-2000:]
    assert heavy == set()
