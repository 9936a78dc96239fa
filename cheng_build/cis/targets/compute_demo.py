"""The ``demo-compute-settle`` target: the compute closed loop as one CIS DAG.

``cis run demo-compute-settle [--workdir:<dir>]`` (a fresh temp dir by default) runs, each step a
program of :mod:`cheng_build.cli.compute_demo_steps` that checks it did something::

    0 setup          executor keys registered; code (cis.toml) and input in the CAS
    1 open-request   an execution request without an executor
    2 claim          an executor node claims it, runs the DAG in its sandbox, meters, signs
    3 cheat          a cheating executor answers another request with a made-up result
    4 sample         every receipt of the epoch is sampled (seeded with the ledger head)
    5 audit          recompute audits: the honest receipt passes, the cheat is caught (fraud)
    6 repute         the cheater's reputation falls
    7 settle         epoch 1 settled: compute paid, the cheat's penalty moved to the treasury
    8 export         a signed v2 RWAD batch pinning the ledger head
    9 rwad           the stand-in RWAD tool finalizes it
   10 apply          the result checked against the batch; the ack written

Steps 7-10 are programs of :mod:`cheng_build.cli.settle_demo_steps`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cheng_build.cis.dag.model import Dag, DagPolicy, Exec, SandboxConfig, Task, TaskLevel
from cheng_build.cis.sandbox import selfrun
from cheng_build.cis.sandbox.selfrun import Tool
from cheng_build.cis.targets import workdir as workdir_mod
from cheng_build.cis.targets.workdir import WorkdirSpec

MARKER = ".cis-demo-compute"
TASK_TIMEOUT = 300
STEPS = ("setup", "open-request", "claim", "cheat", "sample", "audit", "repute")
SETTLE_STEPS = ("settle", "export", "rwad", "apply")


_WORKDIR = WorkdirSpec(
    marker=MARKER, prefix="cis-demo-compute-",
    note="demo-compute-settle work directory; cis may reuse it\n",
    why="the demo writes keys, a registry, a storage root and a ledger there")


def prepare_workdir(workdir: str | os.PathLike[str] | None) -> Path:
    """A fresh work directory (or an empty one, or one this demo used before).

    Raises:
        InputError: the directory holds something else.
    """
    return workdir_mod.prepare_workdir(workdir, _WORKDIR)


def build_dag(workdir: str | os.PathLike[str] | None = None) -> Dag:
    """The demo DAG over a prepared work directory.

    Raises:
        InputError: ``workdir`` is not usable.
    """
    wd = prepare_workdir(workdir)
    env = {"HOME": str(wd), "PKG_TRUST_DIR": str(wd / "trust"), "LC_ALL": "C.UTF-8",
           "PATH": "/usr/local/bin:/usr/bin:/bin", **selfrun.pythonpath_env()}
    ours = selfrun.bind_dirs()
    tasks: list[Task] = []

    def add(name: str, argv: tuple[str, ...], deps: tuple[int, ...]) -> int:
        idx = len(tasks)
        tasks.append(Task(idx=idx, name=name, deps=deps,
                          exec=Exec(cmd=(sys.executable, *argv), env=tuple(sorted(env.items())),
                                    timeout=TASK_TIMEOUT, cwd=".",
                                    sandbox=SandboxConfig(writable=ours, network=True)),
                          level=TaskLevel.mechanical(0)))
        return idx

    steps = selfrun.module_argv(Tool.COMPUTE_DEMO_STEPS)
    prev: tuple[int, ...] = ()
    for step in STEPS:
        prev = (add(step, (*steps, step), prev),)
    settle_steps = selfrun.module_argv(Tool.SETTLE_DEMO_STEPS)
    for step in SETTLE_STEPS:
        prev = (add(step, (*settle_steps, step), prev),)
    return Dag(name="demo-compute-settle", tasks=tuple(tasks), policy=DagPolicy.ALL_SUCCESS,
               base_dir=str(wd))
