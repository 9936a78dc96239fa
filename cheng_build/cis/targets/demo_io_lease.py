"""The ``demo-io-lease`` target: the storage closed loop (the seed's demo_io_lease) as one CIS DAG.

``cis run demo-io-lease [--workdir:<dir>]`` runs, in a work directory (a fresh temp dir by
default)::

    0 keygen            cheng-registry keygen (node:alice)
    1 register          cheng-registry register-key pkg://cheng/demo (the token's key must be registered)
    2 init              cheng-storage init --mode:p2p
    3 leasegen          a v2 token: 1 MiB, 30 days, 0.25/GiB-month, royalty 0.12, treasury 0.03
    4 put-lease         put-text "hello lease" --lease (p2p mode): pinned by the lease, recorded
    5 put-refused       IO_REQUIRE_LEASE=1, p2p, no lease: must be refused
    6 leasegen-short    a token bound to data/short.bin that ends a few seconds later
    7 put-short         put --file:data/short.bin --lease
    8 serve-get-proof   serve the root on 127.0.0.1; p2p get into a second root (free read);
                        a storage proof challenge over libp2p; serve stopped
    9 gc-after-expiry   wait for the short lease to end; gc reports it expired and deletes its
                        blocks; the long lease's blocks stay
   10 store-repute      the provider's reputation from the recorded proof
   11 verify-ledger     both ledgers' hash chains

Every task runs our console programs by argv (``python -m ...``), as ``closedloop`` does.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from cheng_build.cis.dag.model import Dag, DagPolicy, Exec, SandboxConfig, Task, TaskLevel
from cheng_build.cis.sandbox import selfrun
from cheng_build.cis.sandbox.selfrun import Tool
from cheng_build.cis.targets import workdir as workdir_mod
from cheng_build.cis.targets.workdir import WorkdirSpec

MARKER = ".cis-demo-io-lease"
_OWN = ("keys", "registry", "store", "reader", "data", "home", "out", MARKER)
TASK_TIMEOUT = 180
SHORT_LEASE_S = 4


_WORKDIR = WorkdirSpec(marker=MARKER, prefix="cis-demo-io-lease-", own=_OWN,
                       note="demo-io-lease work directory; --workdir may reuse it\n")


def prepare_workdir(workdir: str | os.PathLike[str] | None) -> Path:
    """A work directory with the demo's data (an empty one, or one this target used before).

    Raises:
        InputError: the directory holds something else.
    """
    return workdir_mod.prepare_workdir(workdir, _WORKDIR, _fill)


def _fill(wd: Path) -> None:
    for sub in ("keys", "registry", "data", "home", "out"):
        (wd / sub).mkdir()
    # several chunks, so the proof and gc walk a real DAG (deterministic bytes)
    (wd / "data" / "short.bin").write_bytes(random.Random(20261207).randbytes(600_000))


def build_dag(workdir: str | os.PathLike[str] | None = None) -> Dag:
    """The demo DAG over a prepared work directory (see the module docstring)."""
    wd = prepare_workdir(workdir)
    env_map = {"HOME": str(wd / "home"), "PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    env_map.update(selfrun.pythonpath_env())
    env = tuple(sorted(env_map.items()))
    refuse_env = tuple(sorted({**env_map, "IO_REQUIRE_LEASE": "1", "IO_MODE": "p2p"}.items()))
    py = sys.executable
    ours = selfrun.bind_dirs()
    tasks: list[Task] = []
    reg = "--registry:registry/registry.jsonl"
    root = "--root:store"
    st = selfrun.module_argv(Tool.STORAGE)
    steps = selfrun.module_argv(Tool.STORAGE_DEMO_STEPS)
    parties = ("--package:pkg://cheng/demo", "--author:node:alice", "--provider:node:store-1")

    def add(name: str, argv: tuple[str, ...], deps: tuple[int, ...] = (), *,
            task_env: tuple[tuple[str, str], ...] = env) -> int:
        idx = len(tasks)
        tasks.append(Task(idx=idx, name=name, deps=deps,
                          exec=Exec(cmd=(py, *argv), env=task_env, timeout=TASK_TIMEOUT, cwd=".",
                                    sandbox=SandboxConfig(writable=ours)),
                          level=TaskLevel.mechanical(0)))
        return idx

    keygen = add("keygen", (*selfrun.module_argv(Tool.REGISTRY), "keygen", "--out:keys/alice.json",
                            "--author:node:alice"))
    register = add("register", (*selfrun.module_argv(Tool.REGISTRY), "register-key",
                                "--package:pkg://cheng/demo", "--priv:keys/alice.json", reg), (keygen,))
    init = add("init", (*st, "init", root, "--mode:p2p"))
    gen = add("leasegen", (*st, "leasegen", *parties, "--bytes:1048576", "--days:30", "--replicas:1",
                           "--price:0.25", "--royalty:0.12", "--treasury:0.03",
                           "--priv:keys/alice.json", "--out:store/lease-token.json", root),
              (register, init))
    put = add("put-lease", (*st, "put-text", "--text:hello lease", "--lease:store/lease-token.json",
                            "--mode:p2p", reg, root), (gen,))
    # after put-lease and before the short lease: it checks that it leaves the root untouched
    refused = add("put-refused", (*steps, "expect-refused", root), (put,), task_env=refuse_env)
    gen_short = add("leasegen-short", (*st, "leasegen", *parties, "--file:data/short.bin",
                                       "--days:1", "--price:0.25", f"--expires-in:{SHORT_LEASE_S}",
                                       "--priv:keys/alice.json", "--out:store/short-token.json", root),
                    (refused,))
    put_short = add("put-short", (*st, "put", "--file:data/short.bin",
                                  "--lease:store/short-token.json", "--mode:p2p", reg, root),
                    (gen_short, put))
    proof = add("serve-get-proof", (*steps, "serve-get-proof", root, "--reader:reader",
                                    "--provider:node:store-1", "--out:out/hello.txt"),
                (put, put_short))
    gc = add("gc-after-expiry", (*steps, "gc-after-expiry", root), (proof, refused))
    repute = add("store-repute", (*st, "store-repute", "--provider:node:store-1", "--root:reader"),
                 (proof,))
    add("verify-ledger", (*steps, "verify-ledgers", "store", "reader"), (gc, repute))
    dag = Dag(name="demo-io-lease", tasks=tuple(tasks), policy=DagPolicy.ALL_SUCCESS,
              base_dir=str(wd))
    from cheng_build.cis.targets.preview import set_preview

    return set_preview(dag, [f"demo-io-lease: work directory {wd}"])


__all__ = ["build_dag", "prepare_workdir"]
