"""The ``closedloop`` target: the whole package loop of cheng-build as one CIS DAG.

``cis run closedloop [--workdir:<dir>]`` copies the example packages shipped in
``cheng_build/cis/targets/data/closedloop/`` into a work directory (a fresh temp dir by default) and runs::

    0 keygen                 cheng-registry keygen
    1 publish-strutil        cheng-registry publish   (library)
    2 publish-greet          cheng-registry publish   (library depending on strutil)
    3 publish-app            cheng-registry publish   (the app; cheng-pkg meta needs it published)
    4 resolve                cheng-pkg resolve        manifest -> app/cheng.lock.toml
    5 verify                 cheng-pkg verify         signatures, registry match, single version
    6 serve-fetch            cheng-pkg serve on 127.0.0.1 + cheng-pkg fetch --mode:p2p into a
                             fresh cache, then serve is stopped (one task: closedloop_steps)
    7 build                  chengc app.cheng with the configured compiler; without one:
                             chengc --emit:check + --emit:bundle, then an ignorable Debt
    8 meta                   check chengc's cheng.meta.toml, or write it with cheng-pkg meta
    9 reproducible           chengc --reproducible-check; without a compiler: two bundles compared
   10 lock-hook              the pre-commit lock check on app/

Every task runs one of our console programs by argv through ``sys.executable -m ...`` (the engine
clears the environment, so each task declares exactly the variables it needs: ``PYTHONPATH``
when running from a source tree, ``HOME`` and ``PKG_TRUST_DIR`` inside the work directory).
``CLOSEDLOOP_STRICT=1`` turns the missing-compiler debt into a blocking failure (policy
AllSuccess), so the run exits 1.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from cheng_build.cis.dag.model import (
    Dag,
    DagPolicy,
    Exec,
    SandboxConfig,
    Task,
    TaskLevel,
)
from cheng_build.cis.sandbox import selfrun
from cheng_build.cis.sandbox.selfrun import Tool
from cheng_build.cis.targets import workdir as workdir_mod
from cheng_build.cis.targets.workdir import WorkdirSpec

DATA = Path(__file__).with_name("data") / "closedloop"
MARKER = ".cis-closedloop"
# What a previous closedloop run left in a work directory (removed before a rerun there).
_OWN = ("keys", "registry", "provider", "cache", "artifacts", "trust", "home", "app", "packages",
        "repro", MARKER)
CHANNEL = "stable"
APP_ID = "pkg://cheng/closedloop-app"
LIBRARIES = (("strutil", "1.0.0"), ("greet", "0.2.0"))
TASK_TIMEOUT = 180


_WORKDIR = WorkdirSpec(
    marker=MARKER, prefix="cis-closedloop-", own=_OWN,
    note="closedloop work directory; cis run closedloop --workdir may reuse it\n",
    why="closedloop writes keys, a registry and caches there and recognises only directories it "
        "set up itself")


def prepare_workdir(workdir: str | os.PathLike[str] | None) -> Path:
    """A work directory holding a fresh copy of the example packages.

    ``None``: a new temp directory. An existing directory must be empty or one a previous
    closedloop run used (its own subdirectories are removed first).

    Raises:
        InputError: the directory holds something else.
    """
    return workdir_mod.prepare_workdir(workdir, _WORKDIR, _fill)


def _fill(wd: Path) -> None:
    for sub in ("app", "packages"):
        shutil.copytree(DATA / sub, wd / sub)
    for sub in ("home", "trust"):
        (wd / sub).mkdir()


def _task_env(wd: Path) -> dict[str, str]:
    """What every task gets (nothing is inherited from the engine)."""
    env = {"HOME": str(wd / "home"), "PKG_TRUST_DIR": str(wd / "trust"), "PKG_LEVEL": "L1",
           "PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    env.update(selfrun.pythonpath_env())  # installed: nothing; a source tree: where it is
    return env


def find_compiler(env: Mapping[str, str], cwd: Path) -> str | None:
    """The configured Cheng compiler's path (as chengc would find it), or None.

    Raises:
        NoCompilerError: a compiler is named (flag, CHENG_COMPILER, config) but is not there.
    """
    from cheng_build.build.compiler import find_compiler as _find
    from cheng_build.build.errors import NoCompilerError

    explicit = bool(env.get("CHENG_COMPILER"))
    try:
        return str(_find(None, env, cwd=cwd).path)
    except NoCompilerError:
        if explicit:
            raise
        return None


def _compiler_dirs(compiler: str) -> tuple[str, ...]:
    """The compiler's directory when the sandbox would hide it (it lives under /tmp, /home,
    /root, /run or $HOME, which bubblewrap replaces by empty tmpfs): bound back writable, as the
    compiler may keep state beside itself (the test double logs its calls there)."""
    d = os.path.dirname(os.path.realpath(compiler))
    return (d,) if selfrun.hidden_by_sandbox(d) else ()


def build_dag(workdir: str | os.PathLike[str] | None = None, *,
              environ: Mapping[str, str] | None = None) -> Dag:
    """The closedloop DAG over a prepared work directory (see the module docstring).

    Raises:
        InputError: ``workdir`` is not usable.
        NoCompilerError: ``CHENG_COMPILER`` names a compiler that is not there.
    """
    environ = os.environ if environ is None else environ
    compiler = find_compiler(environ, Path.cwd())
    strict = environ.get("CLOSEDLOOP_STRICT", "") not in ("", "0")
    wd = prepare_workdir(workdir)
    env = tuple(sorted(_task_env(wd).items()))
    py = sys.executable
    reg = "--registry:registry/registry.jsonl"
    lock = "--lock:app/cheng.lock.toml"
    flow = ("app/app.cheng", lock, reg, "--pkg-cache:cache")
    tasks: list[Task] = []
    ours = selfrun.bind_dirs()

    def add(name: str, argv: tuple[str, ...], deps: tuple[int, ...] = (), *,
            inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = (),
            ignorable: bool = False, extra: tuple[str, ...] = ()) -> int:
        idx = len(tasks)
        tasks.append(Task(idx=idx, name=name, deps=deps, inputs=inputs, outputs=outputs,
                          exec=Exec(cmd=(py, *argv), env=env, timeout=TASK_TIMEOUT, cwd=".",
                                    sandbox=SandboxConfig(writable=(*ours, *extra))),
                          level=TaskLevel.mechanical(0), ignorable=ignorable))
        return idx

    keygen = add("keygen", (*selfrun.module_argv(Tool.REGISTRY), "keygen", "--out:keys/author.json",
                            "--author:node:closedloop"), outputs=("keys/author.json",))
    published = []
    for name, version in LIBRARIES:
        published.append(add(
            f"publish-{name}",
            (*selfrun.module_argv(Tool.REGISTRY), "publish", f"--package:pkg://cheng/{name}",
             f"--channel:{CHANNEL}", "--epoch:1", f"--version:{version}",
             f"--src:packages/cheng-{name}", "--priv:keys/author.json", "--pkg-cache:provider", reg),
            (keygen,), inputs=(f"packages/cheng-{name}/cheng-package.toml",)))
    published.append(add(
        "publish-app",
        (*selfrun.module_argv(Tool.REGISTRY), "publish", f"--package:{APP_ID}", f"--channel:{CHANNEL}",
         "--epoch:1", "--version:0.1.0", "--src:app", "--priv:keys/author.json",
         "--pkg-cache:provider", reg), (keygen,), inputs=("app/cheng-package.toml",)))
    resolve = add("resolve", (*selfrun.module_argv(Tool.PKG), "resolve",
                              "--manifest:app/cheng-package.toml", reg, "--pkg-cache:provider",
                              "--out:app/cheng.lock.toml"), tuple(published),
                  outputs=("app/cheng.lock.toml",))
    verify = add("verify", (*selfrun.module_argv(Tool.PKG), "verify", lock,
                            "--manifest:app/cheng-package.toml", reg), (resolve,))
    fetch = add("serve-fetch", (*selfrun.module_argv(Tool.CLOSEDLOOP_STEPS), "serve-fetch",
                                "--root:provider", lock, "--pkg-cache:cache"), (verify,))
    steps = selfrun.module_argv(Tool.CLOSEDLOOP_STEPS)
    if compiler is not None:
        cc = _compiler_dirs(compiler)
        build = add("build", (*selfrun.module_argv(Tool.CHENGC), *flow, f"--compiler:{compiler}"),
                    (fetch,), outputs=("artifacts/chengc/app", "artifacts/chengc/cheng.meta.toml"),
                    extra=cc)
        meta = add("meta", (*steps, "check-meta", "--meta:artifacts/chengc/cheng.meta.toml",
                            "--artifact:artifacts/chengc/app", lock), (build,))
        repro = add("reproducible", (*selfrun.module_argv(Tool.CHENGC), *flow,
                                     f"--compiler:{compiler}", "--reproducible-check",
                                     "--no-cache", "--out:repro/app"), (build,), extra=cc)
    else:
        # Without a compiler the build does all that is possible (check + bundle) and then says,
        # as a Debt, that the app was not compiled. Strict mode makes that block the run.
        build = add("build", (*steps, "build-without-compiler", *flow), (fetch,),
                    outputs=("artifacts/chengc/app.car",), ignorable=not strict)
        meta = add("meta", (*selfrun.module_argv(Tool.PKG), "meta", lock, f"--package:{APP_ID}",
                            f"--channel:{CHANNEL}", reg, "--out:artifacts/chengc/cheng.meta.toml"),
                   (build,), outputs=("artifacts/chengc/cheng.meta.toml",))
        repro = add("reproducible", (*steps, "bundle-repro", *flow), (build,))
    add("lock-hook", (*steps, "lock-hook", reg, "app"), (meta, repro))
    dag = Dag(name="closedloop", tasks=tuple(tasks),
              policy=DagPolicy.ALL_SUCCESS if strict else DagPolicy.ALLOW_DEBT, base_dir=str(wd))
    from cheng_build.cis.targets.preview import set_preview

    how = (f"compiler {compiler}" if compiler else
           "no Cheng compiler: build runs --emit:check + --emit:bundle and becomes "
           + ("a blocking failure (CLOSEDLOOP_STRICT)" if strict else "ignorable debt"))
    return set_preview(dag, [f"closedloop: work directory {wd}", f"closedloop: {how}"])


__all__ = ["DATA", "build_dag", "find_compiler", "prepare_workdir"]
