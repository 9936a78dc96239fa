"""Multi-node CIS on a loopback Synapse: claim latency and throughput, each beside its anchor.

* ``claim_latency_p50`` / ``_p99``: from a node starting to post a claim (the outbox write in
  SQLite WAL, the PUT on the room's HTTP client) to each of three other nodes having it applied
  to their ledger (incremental ``/sync``, validation, the claim rule), 200 claims x 3 observers, vs.
  Synapse's own round trip measured in the same run, interleaved: a bare event PUT by one client
  until another client's long-poll ``/sync`` returns it (the floor). Goals: p50 <= 50 ms,
  p99 <= 250 ms.
* ``throughput``: 4 ``cis node`` processes (``--jobs 1`` each) running 4 runs of N no-op tasks
  (posted together by 4 ``cis run --room:``) vs. the same 4 DAGs run on one machine with
  ``cis run --jobs 4`` one after another (anchor). Goal: ratio <= 1.5. Logins are not timed:
  a login is a user's one-time cost, not a run's. The nodes log in before the timed part, and so
  does the origin user (once, as its first ``cis run --room:`` would): the four runs then use
  the token kept in ``$CIS_HOME/matrix/``, as a user's later runs do. (Were they its first, the
  four would still share one login: ``matrix.connect`` holds a lock beside the session file.)

Both sides start from compiled bytecode, as an installed wheel does (pip compiles it): the
checkout's ``cheng_build`` is compiled first (``compileall``, into its ``__pycache__``, which git
ignores), since with ``PYTHONDONTWRITEBYTECODE=1`` every ``cis`` process would otherwise compile
each module it imports again (~0.1 CPU-s per process here).

Synapse comes from ``.venv-synapse`` (scripts/test.sh) or ``CIS_SYNAPSE_PYTHON``.
Usage: ``python benchmarks/cisnodes.py [--quick] [--claims 200] [--tasks 200] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from helpers_synapse import Synapse, start_synapse, synapse_python  # noqa: E402

from cheng_build.cis.node import matrix, protocol  # noqa: E402
from cheng_build.cis.node.feed import feed  # noqa: E402
from cheng_build.cis.node.island import NodeOutbox  # noqa: E402
from cheng_build.cis.node.ledger import Ledger, TaskPlan  # noqa: E402
from cheng_build.cis.node.protocol import Kind  # noqa: E402

RUN = "01M98FZR3PSFV964KJ3JCZ99Y9"
_REQ = re.compile(r"\{@?(\w+)[^}]*\} Processed.*ru=\(([\d.]+)sec, ([\d.]+)sec\).*\"(GET|PUT|POST) (\S+)")
PARTS: dict[str, list[float]] = {"outbox": [], "put": [], "after_put": []}


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


async def _latency(hs: Synapse, n: int, tmp: Path) -> tuple[list[float], list[float]]:
    users = ["bench0", "bench1", "bench2", "bench3"]
    rooms = [await matrix.connect(hs.url, u, password=hs.users[u], room="bench") for u in users]
    sender, observers = rooms[0], rooms[1:]
    ledgers = [Ledger() for _ in observers]
    run = protocol.content(Kind.RUN, sender.user_id, run=RUN, name="b", workspace="w", dag_file="c",
                           dag_z=protocol.pack_dag(""))
    await sender.send(Kind.RUN.etype, run, "bench-run")
    tokens = []
    for led, room in zip(ledgers, observers, strict=True):
        hist = await room.read(None, 0)
        feed(led, hist.events, 0.0, lambda m: [TaskPlan(i, f"t{i}") for i in range(n)], lambda s: None)
        tokens.append(hist.token)
    outbox = NodeOutbox(tmp / "sender", "bench")
    claims: list[float] = []
    floor: list[float] = []
    parts: dict[str, list[float]] = PARTS

    async def seen(i: int, pred: object) -> float:
        while True:
            b = await observers[i].read(tokens[i], 10.0)
            tokens[i] = b.token
            feed(ledgers[i], b.events, time.monotonic(), lambda m: (), lambda s: None)
            if pred(i, b):  # type: ignore[operator]
                return time.perf_counter()

    for k in range(n):
        # Floor: a bare event, no outbox, no ledger.
        t0 = time.perf_counter()
        waits = [asyncio.ensure_future(seen(i, lambda i, b, k=k: any(
            e.type == "org.cheng.cis.ping" and e.content.get("k") == k for e in b.events)))
            for i in range(len(observers))]
        await sender.send("org.cheng.cis.ping", {"k": k}, f"ping-{k}")
        floor += [t - t0 for t in await asyncio.gather(*waits)]
        # A claim, the node's way: outbox row first, then the PUT; seen = applied to the ledger.
        t0 = time.perf_counter()
        waits = [asyncio.ensure_future(seen(i, lambda i, b, k=k: bool(
            ledgers[i].runs[RUN].tasks[k].winners))) for i in range(len(observers))]
        body = protocol.split(Kind.CLAIM, sender.user_id, RUN, [[k, 0]], lease_ms=10000,
                              at_ms=int(time.monotonic() * 1000))[0]
        entry = outbox.put(Kind.CLAIM.etype, body, RUN, k)
        t1 = time.perf_counter()
        await sender.send(Kind.CLAIM.etype, body, outbox.txn_id(entry))
        t2 = time.perf_counter()
        outbox.sent(entry)
        got = await asyncio.gather(*waits)
        claims += [t - t0 for t in got]
        # Where the time goes: our outbox write, the PUT until Synapse answered, then until the
        # observers' long polls returned it and their ledgers applied it.
        parts["outbox"].append(t1 - t0)
        parts["put"].append(t2 - t1)
        parts["after_put"] += [t - t2 for t in got]
    outbox.close()
    for r in rooms:
        await r.close()
    return claims, floor


def _dag(ws: Path, name: str, n: int) -> Path:
    lines = [f'name = "{name}"', 'policy = "AllowDebt"']
    for i in range(n):
        lines += ["[[tasks]]", f"idx = {i}", f'name = "t{i}"', 'exec = { cmd = ["true"] }']
    p = ws / f"{name}.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def _env(home: Path, *, trace: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIS_")}
    env.update(CIS_HOME=str(home), CIS_SANDBOX="unsandboxed",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    if trace and TRACE is not None:
        env["CIS_NODE_TRACE"] = str(TRACE)
    return env


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far, with its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def _count_events(hs: Synapse, user: str, room: str) -> dict[str, int]:
    """Events in the room by kind (``org.cheng.cis.<kind>``), and the (task, epoch) pairs or
    results they carry (``<kind>_items``; ``claim_results``: results riding on claims): where the
    homeserver's work went."""
    r = await matrix.connect(hs.url, user, password=hs.users[user], room=room, create=False)
    try:
        batch = await r.read(None, 0)
    finally:
        await r.close()
    counts: dict[str, int] = {}
    for e in batch.events:
        kind = e.type.removeprefix(matrix.EVENT_PREFIX)
        if kind in ("run", "state") and e.ts_ms:
            PHASES[f"first_{kind}"] = min(PHASES.get(f"first_{kind}", math.inf), e.ts_ms / 1000)
            PHASES[f"last_{kind}"] = max(PHASES.get(f"last_{kind}", 0.0), e.ts_ms / 1000)
        counts[kind] = counts.get(kind, 0) + 1
        items = e.content.get("tasks") or e.content.get("results")
        n = len(items) if isinstance(items, list) else (1 if "task" in e.content else 0)
        counts[f"{kind}_items"] = counts.get(f"{kind}_items", 0) + n
        if kind == "claim" and isinstance(e.content.get("results"), list):  # results riding on it
            counts["claim_results"] = counts.get("claim_results", 0) + len(e.content["results"])
        if os.environ.get("CISNODES_EVENTS"):
            print(kind, e.sender.split(":")[0], e.content.get("run", "")[-4:], n, e.ts_ms, file=sys.stderr)
    return dict(sorted(counts.items()))


ONE_NODE: dict[str, float] = {}  # the one-node room run: wall and CPU (Synapse + node + origins)
PHASES: dict[str, float] = {}  # the room run's wall clock: origins started, last origin done, events
REQUESTS: dict[str, tuple[int, float]] = {}  # the room run's Synapse requests: kind -> (n, cpu-s)
PROFILE: Path | None = None  # --profile DIR: node0 and the first origin run under cProfile
TRACE: Path | None = None  # --trace DIR: every cis process writes its timeline there


def _cis(name: str) -> list[str]:
    if PROFILE is None:
        return [sys.executable, "-m", "cheng_build.cli.cis"]
    return [sys.executable, "-m", "cProfile", "-o", str(PROFILE / f"{name}.prof"),
            "-m", "cheng_build.cli.cis"]


def _requests(log: Path, start: int) -> dict[str, tuple[int, float]]:
    """Synapse's access log from byte ``start``: (requests, CPU seconds) by endpoint kind."""
    out: dict[str, tuple[int, float]] = {}
    with open(log, "rb") as f:
        f.seek(start)
        for line in f.read().decode(errors="replace").splitlines():
            m = _REQ.search(line)
            if not m:
                continue
            uri = m.group(5)
            kind = "sync" if "/sync" in uri else "send" if "/send/" in uri else "other"
            kind += "_origins" if m.group(1) == "orig" else "_nodes" if m.group(1).startswith("node") else ""
            n, cpu = out.get(kind, (0, 0.0))
            out[kind] = (n + 1, cpu + float(m.group(2)) + float(m.group(3)))
    return out


async def _login_once(hs: Synapse, user: str, pw: Path, home: Path, alias: str) -> None:
    """What a user's first ``cis run --room:`` does: log in, join, keep the token where the
    next runs (``CIS_HOME=home``) find it."""
    from cheng_build.cli.cis_node import Connection, session_file

    conn = Connection(hs.url, user, pw.read_text().strip(), None, alias)
    room = await matrix.connect(conn.homeserver, user, password=conn.password, room=conn.room,
                                create=False, session_file=session_file(conn, home))
    await room.close()


def _dags(tmp: Path, n: int) -> tuple[Path, list[Path]]:
    ws = tmp / "ws"
    if not ws.exists():
        ws.mkdir()
    return ws, [_dag(ws, f"d{i}", n) for i in range(4)]


def _local(n: int, tmp: Path) -> float:
    """The anchor: one machine, ``cis run --jobs 4``, the four DAGs one after another."""
    _ws, dags = _dags(tmp, n)
    cis = [sys.executable, "-m", "cheng_build.cli.cis"]
    k0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for d in dags:
        subprocess.run([*cis, "run", str(d), "--jobs", "4", "--quiet"], check=True, env=_env(tmp / "local"),
                       timeout=1200)
    local = time.perf_counter() - t0
    k1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    REQUESTS["anchor_cpu"] = (0, k1.ru_utime + k1.ru_stime - k0.ru_utime - k0.ru_stime)
    return local


@dataclass(frozen=True)
class RoomRun:
    wall: float
    synapse_cpu: float
    nodes_cpu: float
    origins_cpu: float


def _room(hs: Synapse, n: int, tmp: Path, *, nodes_n: int, jobs: int, alias: str,
          measured: bool) -> RoomRun:
    """The four runs posted together by four ``cis run --room:`` to ``nodes_n`` nodes with
    ``--jobs`` each. ``measured``: this is the run the request counts, trace and profiles are of."""
    ws, dags = _dags(tmp, n)
    cis = [sys.executable, "-m", "cheng_build.cli.cis"]
    pw = {}
    for u in ("node0", "node1", "node2", "node3", "orig"):
        p = tmp / f"{u}.pw"
        p.write_text(hs.users[u])
        pw[u] = p
    conn = lambda u: [f"--homeserver={hs.url}", f"--user={u}", f"--password-file={pw[u]}",  # noqa: E731
                      f"--room={alias}"]
    trace = measured and TRACE is not None
    nodes = [subprocess.Popen([*(_cis("node0") if i == 0 and measured else cis), "node", *conn(f"node{i}"),
                               f"--workspace={ws}", "--caps=cpu",
                               "--no-detect", "--no-mdns", f"--jobs={jobs}"],
                              env=_env(tmp / f"{alias}-n{i}", trace=trace),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(nodes_n)]
    try:
        time.sleep(3.0)  # the nodes log in and join (not counted)
        # The origin user logs in once, as the nodes do, before the timed part: a login is a
        # user's one-time cost (its token is kept in $CIS_HOME/matrix/), not a run's.
        home = tmp / f"{alias}-orig"
        asyncio.run(_login_once(hs, "orig", pw["orig"], home, alias))
        if measured:
            idle = _cpu_s(hs.proc.pid)
            time.sleep(2.0)  # Synapse's CPU with the nodes long-polling an idle room
            REQUESTS["synapse_idle"] = (0, (_cpu_s(hs.proc.pid) - idle) / 2.0)
        hs_cpu = _cpu_s(hs.proc.pid)
        nodes_cpu = sum(_cpu_s(p.pid) for p in nodes)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        log_at = (hs.dir / "homeserver.log").stat().st_size
        spies = []
        if measured and PROFILE is not None and os.environ.get("CISNODES_PYSPY"):
            # Sampled stacks of Synapse and of a node (all threads) during the room run.
            spies = [subprocess.Popen([os.environ["CISNODES_PYSPY"], "record", "-p", str(pid), "-r", "50",
                                       "--nonblocking", "--format", "raw",
                                       "-o", str(PROFILE / f"{name}.txt")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for name, pid in (("synapse", hs.proc.pid), ("node1", nodes[-1].pid))]
        t0 = time.perf_counter()
        if measured:
            PHASES["start"] = time.time()
            if TRACE is not None:
                (TRACE / "t0").write_text(f"{time.monotonic():.6f}")
        origins = [subprocess.Popen([*(_cis("origin0") if d == dags[0] and measured else cis), "run", str(d),
                                     *conn("orig"), "--quiet"], env=_env(home, trace=trace))
                   for d in dags]
        for o in origins:
            if o.wait(timeout=1800) != 0:
                raise RuntimeError("a room run failed")
        wall = time.perf_counter() - t0
        if measured:
            PHASES["end"] = time.time()
        done = resource.getrusage(resource.RUSAGE_CHILDREN)  # the four origins, reaped just now
        origins_cpu = done.ru_utime + done.ru_stime - kids.ru_utime - kids.ru_stime
        hs_cpu = _cpu_s(hs.proc.pid) - hs_cpu
        nodes_cpu = sum(_cpu_s(p.pid) for p in nodes) - nodes_cpu
        for spy in spies:
            spy.send_signal(2)
            spy.wait(timeout=60)
        if measured:
            time.sleep(0.5)  # the last requests' log lines
            REQUESTS.update(_requests(hs.dir / "homeserver.log", log_at))
    finally:
        for p in nodes:
            p.terminate()
            p.wait(timeout=60)
    return RoomRun(wall, hs_cpu, nodes_cpu, origins_cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="40 claims, 4 x 25 tasks")
    ap.add_argument("--claims", type=int, default=200)
    ap.add_argument("--tasks", type=int, default=200, help="no-op tasks per run (4 runs)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", type=Path, help="write cProfile stats of node0 and origin0 here "
                    "(main thread only: tasks run in worker threads)")
    ap.add_argument("--trace", type=Path, help="write each node's and origin's timeline here and "
                    "print where the nodes' time went (benchmarks/cisnodes_timeline.py)")
    a = ap.parse_args()
    global PROFILE, TRACE
    PROFILE = a.profile.resolve() if a.profile else None
    if PROFILE is not None:
        PROFILE.mkdir(parents=True, exist_ok=True)
    TRACE = a.trace.resolve() if a.trace else None
    if TRACE is not None:
        TRACE.mkdir(parents=True, exist_ok=True)
    n_claims, n_tasks = (40, 25) if a.quick else (a.claims, a.tasks)
    python = synapse_python()
    if python is None:
        print("cisnodes: Synapse is not installed (scripts/test.sh puts it in .venv-synapse)",
              file=sys.stderr)
        return 1
    results: dict[str, dict[str, float | str]] = {}
    import compileall

    compileall.compile_dir(REPO / "cheng_build", quiet=1)  # see the module docstring
    with tempfile.TemporaryDirectory(prefix="cisnodes-") as d:
        tmp = Path(d)
        hs = start_synapse(tmp / "synapse", python, access_log=True)
        try:
            for u in ("bench0", "bench1", "bench2", "bench3", "node0", "node1", "node2", "node3", "orig"):
                hs.register(u)
            claims, floor = asyncio.run(_latency(hs, n_claims, tmp))
            for q, name in ((0.5, "p50"), (0.99, "p99")):
                c, f = _pct(claims, q) * 1e3, _pct(floor, q) * 1e3
                results[f"claim_latency_{name}"] = {"ours": c, "anchor": f, "unit": "ms", "ratio": c / f}
            local = _local(n_tasks, tmp)
            one = _room(hs, n_tasks, tmp, nodes_n=1, jobs=4, alias="tput1", measured=False)
            four = _room(hs, n_tasks, tmp, nodes_n=4, jobs=1, alias="tput", measured=True)
            events = asyncio.run(_count_events(hs, "orig", "tput"))
            results["throughput"] = {"ours": four.wall, "anchor": local, "unit": "s",
                                     "ratio": four.wall / local}
            results["throughput_vs_node"] = {"ours": four.wall, "anchor": one.wall, "unit": "s",
                                             "ratio": four.wall / one.wall}
            # Context: how much of the room run's wall time each part spent on a CPU.
            for part, cpu in (("synapse", four.synapse_cpu), ("nodes", four.nodes_cpu),
                              ("origins", four.origins_cpu)):
                results[f"{part}_cpu_share"] = {"ours": cpu, "anchor": four.wall, "unit": "cpu-s",
                                                "ratio": cpu / four.wall}
            ONE_NODE.update(wall=one.wall, cpu=one.synapse_cpu + one.nodes_cpu + one.origins_cpu)
        finally:
            hs.stop()
    print(f"{'figure':<22} {'ours':>10} {'anchor':>10}  {'unit':<6} ratio")
    for k, v in results.items():
        print(f"{k:<22} {v['ours']:>10.2f} {v['anchor']:>10.2f}  {v['unit']:<6} {v['ratio']:.2f}")
    print(f"(claim_latency: {n_claims} claims x 3 observers, claim posted through the outbox until "
          "applied to each observer's ledger, vs Synapse's own send-to-sync round trip, interleaved; "
          f"goals p50 <= 50 ms, p99 <= 250 ms. throughput: 4 nodes --jobs 1 x 4 runs of {n_tasks} no-op "
          "tasks vs the same 4 runs on one machine with cis run --jobs 4 (throughput) and vs the same "
          "4 runs in the room on one node with --jobs 4 (throughput_vs_node); goal ratio <= 1.5. "
          f"median claim {statistics.median(claims) * 1e3:.1f} ms; of it, medians: outbox write "
          f"{statistics.median(PARTS['outbox']) * 1e3:.2f} ms, "
          f"PUT {statistics.median(PARTS['put']) * 1e3:.1f} ms, "
          f"PUT answered to applied {statistics.median(PARTS['after_put']) * 1e3:.1f} ms)")
    print("room events by kind after the throughput run (<kind>_items: pairs/results carried; "
          "claim_results: results riding on claims): "
          + ", ".join(f"{k}={v}" for k, v in events.items()))
    if {"start", "end", "first_run", "last_run", "last_state"} <= PHASES.keys():
        ph = {k: v - PHASES["start"] for k, v in PHASES.items()}
        print(f"room run phases (s from the origins' start, homeserver clock): first run posted "
              f"{ph['first_run']:.2f}, last run posted {ph['last_run']:.2f}, first result "
              f"{ph.get('first_state', math.nan):.2f}, last result {ph['last_state']:.2f}, last origin "
              f"done {ph['end']:.2f}")
    anchor_cpu = REQUESTS.pop("anchor_cpu")[1]
    print(f"Synapse idle (4 nodes long-polling, no events): {REQUESTS.pop('synapse_idle')[1]:.3f} cpu-s/s")
    room_cpu = sum(results[k]["ours"] for k in ("synapse_cpu_share", "nodes_cpu_share", "origins_cpu_share"))
    print(f"CPU: the anchor (one machine, 800 tasks) spent {anchor_cpu:.2f} cpu-s; the room run "
          f"{room_cpu:.2f} cpu-s (Synapse + nodes + origins); the one-node room run {ONE_NODE['cpu']:.2f} "
          f"cpu-s; on {os.cpu_count()} cores")
    print("synapse requests in the room run (count, CPU-s by Synapse's own accounting): "
          + ", ".join(f"{k}={n} ({c:.2f} cpu-s, {1e3 * c / max(n, 1):.1f} ms each)"
                      for k, (n, c) in sorted(REQUESTS.items())))
    if TRACE is not None:
        from cisnodes_timeline import summarize

        print("timeline (s from the origins' start; idle_* sum the nodes' time with no task running, "
              "by reason; see benchmarks/cisnodes_timeline.py):")
        print(summarize(TRACE))
    if a.json:
        print(json.dumps({**results, "events": events,
                          "synapse_requests": {k: {"n": n, "cpu_s": c} for k, (n, c) in REQUESTS.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
