"""A ``cis node``'s CPU per task it runs, beside the local engine's on the same tasks.

* ``node_task_cpu``: one node agent (``--jobs 1``, as in ``cisnodes.py``'s throughput) on the
  in-memory room runs 4 runs of N no-op tasks that an origin posts: claims, one-task engine runs,
  results, its reads and its copy of the runs in its store (synced every second, as ``cis node``
  does), CPU of this process per task. Anchor: the same 4 x N tasks run by the local engine
  (``control.drive``, ``--jobs 1``) in this process, CPU per task. The figures leave out the tasks'
  own processes (the same ``true`` both ways; printed apart) and the homeserver: what is left is
  the node's own overhead per task, which ``cisnodes.py`` cannot show apart from Synapse's on a
  shared machine. Goal (issue 18): ratio near 1, the node's CPU per task down to the engine's.

Usage: ``python benchmarks/cisnode_task.py [--tasks 200] [--rounds 2] [--json]``; rounds
alternate node and anchor, and the lowest of each is kept (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _report import log, print_report  # noqa: E402

from cheng_build.cis.node import mirror, protocol, workspace  # noqa: E402
from cheng_build.cis.node.agent import Agent, NodeConfig  # noqa: E402
from cheng_build.cis.node.localrun import parse_run  # noqa: E402
from cheng_build.cis.node.memroom import MemoryHub  # noqa: E402
from cheng_build.cis.node.protocol import Kind  # noqa: E402
from cheng_build.cis.run import control  # noqa: E402


def _dags(ws: Path, n: int) -> list[str]:
    texts = []
    for r in range(4):
        lines = [f'name = "d{r}"', 'policy = "AllowDebt"']
        for i in range(n):
            lines += ["[[tasks]]", f"idx = {i}", f'name = "t{i}"', 'exec = { cmd = ["true"] }']
        text = "\n".join(lines) + "\n"
        (ws / f"d{r}.toml").write_text(text)
        texts.append(text)
    return texts


def _cpu() -> tuple[float, float]:
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


async def _node(home: Path, ws: Path, texts: list[str]) -> tuple[float, float]:
    wid = workspace.identity(ws)
    hub = MemoryHub()
    stop = asyncio.Event()
    agent = Agent(hub.join("@n:bench", "r"), NodeConfig(home, ws, wid, ("cpu",), jobs=1), lambda s: None)
    await agent.start()
    store = control.open_store(home)
    copies = mirror.NodeMirror(store, mirror.RoomRef("r", "!r:bench"))

    keeper = asyncio.create_task(copies.follow(agent, stop))  # as `cis node` does
    serving = asyncio.create_task(agent.serve(stop))
    origin = hub.join("@o:bench", "r")
    n = sum(t.count("[[tasks]]") for t in texts)
    c0 = _cpu()
    for r, text in enumerate(texts):
        body = protocol.content(Kind.RUN, origin.user_id, run=control.new_run_id(), name=f"d{r}",
                                workspace=wid, dag_file=f"d{r}.toml", dag_z=protocol.pack_dag(text))
        await origin.send(Kind.RUN.etype, body, f"run{r}")
    while agent.counters.ran < n:
        await asyncio.sleep(0.05)
    c1 = _cpu()
    stop.set()
    await serving
    await keeper
    store.close()
    return c1[0] - c0[0], c1[1] - c0[1]


def _local(home: Path, ws: Path, texts: list[str]) -> tuple[float, float]:
    store = control.open_store(home)
    c0 = _cpu()
    for text in texts:
        rid = control.create_run(store, parse_run(text, ws).dag, check_inputs=False)
        control.drive(store, rid, jobs=1)
    c1 = _cpu()
    store.close()
    return c1[0] - c0[0], c1[1] - c0[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200, help="no-op tasks per run (4 runs)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    os.environ["CIS_SANDBOX"] = "unsandboxed"  # the engine's cost alone, both ways
    node: list[tuple[float, float]] = []
    local: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="cisnode-task-") as d:
        tmp = Path(d)
        ws = tmp / "ws"
        ws.mkdir()
        texts = _dags(ws, a.tasks)
        for r in range(a.rounds):
            log(f"round {r + 1}: node")
            node.append(asyncio.run(_node(tmp / f"n{r}", ws, texts)))
            log(f"round {r + 1}: local engine")
            local.append(_local(tmp / f"l{r}", ws, texts))
    per = 1000.0 / (4 * a.tasks)
    ours, anchor = min(x[0] for x in node) * per, min(x[0] for x in local) * per
    results = {"node_task_cpu": {"ours": round(ours, 3), "anchor": round(anchor, 3),
                                 "unit": "cpu-ms/task", "ratio": round(ours / anchor, 2)}}
    print_report(results, as_json=False)
    print(f"({4 * a.tasks} no-op tasks, 4 runs, --jobs 1, best of {a.rounds}; the tasks' own "
          f"processes apart: node {min(x[1] for x in node) * per:.2f}, local "
          f"{min(x[1] for x in local) * per:.2f} cpu-ms/task)")
    if a.json:
        import json

        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
