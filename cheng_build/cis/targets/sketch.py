"""Sketches: one line of intent (Chinese or English) -> a DAG from what this machine and project have.

``cis run "测试体素算法，cuda和metal对比"`` / ``cis run "bench voxel cuda vs cpu"``:

1. **intent**: verbs (test/测试, bench/基准/性能, compare/对比/vs, build/编译), backends (cuda,
   metal, cpu; gpu = every GPU backend the project has) and names (words that match a target,
   bench or test the manifests declare; a few Chinese words map to English names: 体素 -> voxel);
2. **project**: the manifests in the directory (:mod:`cheng_build.cis.targets.manifests`) give the
   commands per backend, never invented here;
3. **capabilities** (:mod:`cheng_build.cis.targets.capabilities`): each task declares the one it needs
   (build cuda -> ``cuda-toolkit``, test/bench cuda -> ``cuda``, anything metal -> ``metal``); a
   task whose capability is absent, and everything after it on its backend, is marked to be
   Skipped with the reason (:func:`prepare_run` writes that into the run before the engine starts);
4. **DAG**, in levels: build (per backend) -> test (per backend, ignorable: a failing test is
   debt) -> bench (per backend, one at a time so timings do not disturb each other) -> compare
   (writes the report: table + PNG, :mod:`cheng_build.cis.targets.report`).

Compare implies bench; a comparison always includes ``cpu`` as its baseline when the project has it.
No verb means build + test. A sketch with no intent word at all matches nothing (``None``), and
:func:`no_match_error` says what was looked for and offers the closest commands.
"""

from __future__ import annotations

import difflib
import os
import secrets
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cheng_build.cis.dag.model import (
    Dag,
    DagPolicy,
    Exec,
    Isolation,
    SandboxConfig,
    Task,
    TaskLevel,
    TaskState,
)
from cheng_build.cis.sandbox import selfrun
from cheng_build.cis.sandbox.selfrun import Tool
from cheng_build.cis.targets import manifests
from cheng_build.cis.targets.capabilities import Capabilities
from cheng_build.cis.targets.intent import ASCII_WORD, BACKEND_WORDS, VERB_WORDS, Intent, parse_intent
from cheng_build.cis.targets.manifests import Command, Project, Verb
from cheng_build.core.errors import InputError

NEEDS_BUILD = {"cpu": "cpu", "cuda": "cuda-toolkit", "metal": "metal"}
NEEDS_RUN = {"cpu": "cpu", "cuda": "cuda", "metal": "metal"}
TIMEOUTS = {Verb.BUILD: 1800, Verb.TEST: 600, Verb.BENCH: 600}


@dataclass(frozen=True, slots=True)
class Planned:
    """A task to be, with the capability it needs."""

    name: str
    command: Command
    needs: str
    deps: tuple[str, ...]
    ignorable: bool


@dataclass(frozen=True, slots=True)
class SketchPlan:
    """Everything the preview shows: the DAG plus why each part is there."""

    dag: Dag
    intent: Intent
    projects: tuple[Project, ...]
    backends: tuple[str, ...]
    capabilities: Capabilities
    needs: dict[int, str]  # task idx -> capability
    skips: dict[int, str]  # task idx -> why it will be Skipped
    notes: tuple[str, ...]
    results_dir: str


def _matches(name: str, wanted: Sequence[str]) -> bool:
    low = name.lower()
    return any(w in low or low in w for w in wanted)


def plan_sketch(text: str, workdir: str | os.PathLike[str], *,
                caps: Capabilities | None = None) -> SketchPlan | None:
    """Turn ``text`` into a plan over the project in ``workdir``; None when it has no intent word.

    Raises:
        InputError: the sketch has intent but the directory has no usable manifest, or nothing
            the project declares fits the intent (the message says what was looked for).
    """
    intent = parse_intent(text)
    if intent.empty and not intent.names:
        return None
    root = Path(workdir).resolve()
    projects, unreadable = manifests.read_projects(root)
    # Only names: a sketch if a name matches the project, else nothing matched.
    if intent.empty and not any(_matches(n, intent.names) for p in projects for n in p.names):
        return None
    if not projects:
        raise InputError(
            f"sketch {text!r}: no project manifest in {root}",
            why=f"looked for {', '.join(manifests.READERS)}"
                + "".join(f"\n{u.path.name}: unreadable: {u.reason}" for u in unreadable),
            how="run it in a project directory, or give --workdir:<project>", exit_code=2)
    if caps is None:
        from cheng_build.cis.targets.capabilities import detect

        caps = detect()
    verbs = _verbs(intent)
    acc = _Planning()
    for p in projects:
        _plan_project(p, intent, verbs, f"{p.kind}-" if len(projects) > 1 else "", acc)
    planned, notes = acc.planned, acc.notes
    if not planned:
        raise InputError(
            f"sketch {text!r}: {', '.join(p.manifest.name for p in projects)} declares nothing to "
            f"{'/'.join(sorted(verbs))}",
            why="\n".join(notes) or "no build, test or bench command found",
            how="add a test or benchmark target to the manifest", exit_code=2)
    results = f"cis-results/{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    return _assemble(text, intent, projects, acc.backends, caps, planned, acc.expected,
                     acc.skipped_reason, notes, results, root)


def _verbs(intent: Intent) -> set[str]:
    """What the DAG does: compare implies bench; no test/bench verb means test; always build."""
    verbs = set(intent.verbs)
    if "compare" in verbs:
        verbs.add("bench")
    if not verbs & {"test", "bench"}:
        verbs.add("test")  # no verb, or only "build": build and test it
    verbs.add("build")
    return verbs


@dataclass
class _Planning:
    """What planning every project adds up to (tasks in order, and why parts are missing)."""

    planned: list[Planned] = field(default_factory=list)
    expected: list[tuple[str, str]] = field(default_factory=list)  # (backend, bench) in the report
    skipped_reason: dict[str, str] = field(default_factory=dict)  # backend -> why absent
    notes: list[str] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)


def _plan_project(p: Project, intent: Intent, verbs: set[str], prefix: str, acc: _Planning) -> None:
    """One project's tasks: builds per backend, then tests, then benches one after another."""
    backends = _project_backends(p, intent, acc)
    last_build = _plan_builds(p, backends, prefix, acc)
    tests: list[str] = []
    if "test" in verbs:
        tests = _plan_tests(p, backends, prefix, last_build, acc)
    if "bench" in verbs:
        _plan_benches(p, intent, backends, prefix, [*last_build.values(), *tests], acc)
    acc.backends += [b for b in backends if b not in acc.backends]


def _project_backends(p: Project, intent: Intent, acc: _Planning) -> list[str]:
    """The backends named (``gpu``: every GPU backend ``p`` has) that ``p`` declares, noting
    each it lacks; all of its backends when none is named; cpu added as a comparison's baseline."""
    named = [b for b in intent.backends if b != "gpu"]
    if "gpu" in intent.backends:
        named += [b for b in p.backends if b in manifests.GPU_BACKENDS]
    named = list(dict.fromkeys(named))
    if not named:
        return list(p.backends)
    backends = [b for b in named if b in p.backends]
    for b in named:
        if b not in p.backends:
            why = f"{p.manifest.name} declares no {b} backend"
            acc.notes.append(f"{b}: {why}")
            acc.skipped_reason[b] = why
            acc.expected += [(b, c.label) for c in p.select(Verb.BENCH, "cpu")]
    if "compare" in intent.verbs and "cpu" in p.backends and "cpu" not in backends:
        backends.insert(0, "cpu")
        acc.notes.append("compare: cpu added as the baseline")
    return backends


def _plan_builds(p: Project, backends: list[str], prefix: str, acc: _Planning) -> dict[str, str]:
    """Each backend's build commands in a chain; returns backend -> its last build task."""
    last_build: dict[str, str] = {}
    for b in backends:
        prev: str | None = None
        for c in p.select(Verb.BUILD, b):
            name = f"{prefix}{c.label}-{b}" if c.label != "build" else f"{prefix}build-{b}"
            acc.planned.append(Planned(name, c, NEEDS_BUILD.get(b, "cpu"),
                                       (prev,) if prev else (), False))
            prev = name
        if prev:
            last_build[b] = prev
    return last_build


def _plan_tests(p: Project, backends: list[str], prefix: str, last_build: dict[str, str],
                acc: _Planning) -> list[str]:
    """Each backend's tests after its build (ignorable: a failing test is debt)."""
    tests: list[str] = []
    for b in backends:
        for c in p.select(Verb.TEST, b):
            name = f"{prefix}test-{b}" if c.label in ("ctest", "test", "pytest") \
                else f"{prefix}test-{c.label}-{b}"
            deps = (last_build[b],) if b in last_build else ()
            acc.planned.append(Planned(name, c, NEEDS_RUN.get(b, "cpu"), deps, True))
            tests.append(name)
    return tests


def _plan_benches(p: Project, intent: Intent, backends: list[str], prefix: str,
                  before: list[str], acc: _Planning) -> None:
    """The benches (those the sketch names, else all) after every build and test, one at a
    time so timings do not disturb each other."""
    bench_names = [c.label for c in p.commands if c.verb is Verb.BENCH]
    wanted = [n for n in intent.names if any(_matches(b, [n]) for b in bench_names)]
    prev_bench: list[str] = []
    for b in backends:
        for c in p.select(Verb.BENCH, b):
            if wanted and c.label not in wanted and not _matches(c.label, wanted):
                continue
            name = f"{prefix}bench-{c.label}-{b}"
            bdeps = tuple(dict.fromkeys([*before, *prev_bench[-1:]]))
            acc.planned.append(Planned(name, c, NEEDS_RUN.get(b, "cpu"), bdeps, True))
            prev_bench.append(name)
            acc.expected.append((b, c.label))
    if not prev_bench:
        acc.notes.append(f"bench: {p.manifest.name} declares no benchmark"
                         + (f" matching {', '.join(intent.names)}" if intent.names else ""))


def _assemble(text: str, intent: Intent, projects: Sequence[Project], backends: list[str],
              caps: Capabilities, planned: list[Planned], expected: list[tuple[str, str]],
              skipped_reason: dict[str, str], notes: list[str], results: str, root: Path) -> SketchPlan:
    index = {pl.name: i for i, pl in enumerate(planned)}
    skips: dict[int, str] = {}
    for i, pl in enumerate(planned):
        if not caps.has(pl.needs):
            skips[i] = f"needs {pl.needs}: {caps.why_not(pl.needs)}"
            skipped_reason.setdefault(pl.command.backend, skips[i])
        else:
            blocked = [d for d in pl.deps if index[d] in skips and
                       planned[index[d]].command.backend == pl.command.backend]
            if blocked:
                skips[i] = f"{blocked[0]} is skipped ({skips[index[blocked[0]]]})"
    base_env = (("LC_ALL", "C.UTF-8"), ("PATH", "${PATH}"))
    tasks: list[Task] = []
    for i, pl in enumerate(planned):
        c = pl.command
        env = tuple(sorted(dict((*base_env, *c.env)).items()))
        argv = c.argv
        if c.verb is Verb.BENCH:
            argv = (sys.executable, *selfrun.module_argv(Tool.SKETCH_STEPS), "bench",
                    f"--backend:{c.backend}", f"--bench:{c.label}", f"--results:{results}", "--",
                    *c.argv)
            env = tuple(sorted({**dict(env), **selfrun.pythonpath_env()}.items()))
        binds = tuple(d for d in c.binds if selfrun.hidden_by_sandbox(d))
        if c.verb is Verb.BENCH:
            binds += selfrun.bind_dirs()
        sb = SandboxConfig(writable=binds)
        if pl.needs == "cuda":
            # bubblewrap gives tasks a minimal /dev without /dev/nvidia*: a task that must reach
            # the GPU runs with the cleared env and rlimits only (the preview says so).
            sb = SandboxConfig(isolation=Isolation.NONE)
        tasks.append(Task(idx=i, name=pl.name, deps=tuple(index[d] for d in pl.deps),
                          exec=Exec(cmd=argv, env=env, timeout=TIMEOUTS[c.verb], cwd=".", sandbox=sb),
                          level=TaskLevel.mechanical(0), ignorable=pl.ignorable))
    if expected:
        reasons = [f"--skipped:{b}={why}" for b, why in skipped_reason.items()]
        # After every bench and test: the report comes last, whatever was skipped.
        last = [t.idx for t, pl in zip(tasks, planned, strict=True) if pl.command.verb is not Verb.BUILD]
        tasks.append(Task(
            idx=len(tasks), name="compare", deps=tuple(last) or tuple(t.idx for t in tasks),
            exec=Exec(cmd=(sys.executable, *selfrun.module_argv(Tool.SKETCH_STEPS), "compare",
                           f"--results:{results}", f"--title:{text}",
                           *(f"--expect:{b}/{n}" for b, n in expected), *reasons),
                      env=tuple(sorted({"LC_ALL": "C.UTF-8", **selfrun.pythonpath_env()}.items())),
                      timeout=120, cwd=".", sandbox=SandboxConfig(writable=selfrun.bind_dirs())),
            outputs=(f"{results}/report.md", f"{results}/report.png"), level=TaskLevel.mechanical(0)))
    name = "sketch: " + " ".join(text.split())[:60]
    dag = Dag(name=name, tasks=tuple(tasks), policy=DagPolicy.ALLOW_DEBT, base_dir=str(root))
    needs = {i: pl.needs for i, pl in enumerate(planned)}
    if expected:
        needs[len(planned)] = "cpu"
    return SketchPlan(dag, intent, tuple(projects), tuple(backends), caps, needs, skips,
                      tuple(notes), results)


def preview(plan: SketchPlan, text: str) -> list[str]:
    """The dry-run preview: what was read, the intent, capabilities, and the tasks in levels."""
    i = plan.intent
    out = [f"sketch: {text}"]
    for p in plan.projects:
        out.append(f"  read: {p.manifest} ({p.kind} project {p.name}; backends "
                   f"{', '.join(p.backends)})")
    out.append(f"  intent: {', '.join(sorted(i.verbs)) or '(build + test)'}; backends "
               f"{', '.join(i.backends) or '(all the project has)'}"
               + (f"; names {', '.join(i.names)}" if i.names else ""))
    out += [f"  note: {n}" for n in plan.notes]
    out.append("  capabilities:")
    out += [f"    {line}" for line in plan.capabilities.lines()]
    levels = _levels(plan.dag)
    out.append(f"  plan: {len(plan.dag.tasks)} tasks in {max(levels, default=-1) + 1} levels, "
               f"{len(plan.skips)} to be skipped; results in {plan.results_dir}/")
    for t in plan.dag.tasks:
        deps = ",".join(map(str, t.deps)) or "-"
        skip = f"  SKIP: {plan.skips[t.idx]}" if t.idx in plan.skips else ""
        if not skip and t.exec.sandbox.isolation is Isolation.NONE:
            skip = "  (unsandboxed: needs /dev/nvidia*)"
        shown = t.exec.cmd[t.exec.cmd.index("--") + 1:] if "--" in t.exec.cmd else t.exec.cmd
        out.append(f"    {t.idx:>2} L{levels[t.idx]} {t.name:<24} deps {deps:<8} "
                   f"{t.level.kind.value:<10} needs {plan.needs.get(t.idx, 'cpu'):<12} "
                   f"{shlex.join(shown)[:100]}{skip}")
    return out


def _levels(dag: Dag) -> list[int]:
    lv: list[int] = []
    for t in dag.tasks:
        lv.append(1 + max((lv[d] for d in t.deps), default=-1))
    return lv


# --- hooks used by targets.py / cis run ------------------------------------------------------

_SKIPS: dict[int, tuple[Dag, dict[int, str]]] = {}


def sketch_dag(text: str, workdir: str | os.PathLike[str]) -> Dag | None:
    """The hook behind ``cis run "<sketch>"``: plan, remember the preview and the skips."""
    plan = plan_sketch(text, workdir)
    if plan is None:
        return None
    from cheng_build.cis.targets.preview import set_preview

    _SKIPS[id(plan.dag)] = (plan.dag, dict(plan.skips))
    return set_preview(plan.dag, preview(plan, text))


def skips_for(dag: Dag) -> dict[int, str]:
    entry = _SKIPS.get(id(dag))
    return dict(entry[1]) if entry is not None and entry[0] is dag else {}


def prepare_run(store: object, run_id: str, dag: Dag) -> None:
    """Before the engine starts: mark the tasks whose capability is absent Skipped, with why.

    Safe because no engine drives the run yet (the engine loads task states when it starts and
    treats Skipped as settled), so the store's single-writer rule holds.
    """
    from cheng_build.cis.run.store import Store

    assert isinstance(store, Store)
    for idx, why in sorted(skips_for(dag).items()):
        store.set_task(run_id, idx, "skipped", {"why": why}, state=TaskState.SKIPPED,
                       note=f"skipped: {why}", finished=time.time())


def no_match_error(arg: str, workdir: str | os.PathLike[str], targets: Sequence[str]) -> InputError:
    """What ``cis run <arg>`` looked for, and the closest commands."""
    projects, _ = manifests.read_projects(Path(workdir))
    vocab = {w for ws in (*VERB_WORDS.values(), *BACKEND_WORDS.values()) for w in ws if w.isascii()}
    words = ASCII_WORD.findall(arg.lower()) or [arg.lower()]
    close_targets = sorted({m for w in words for m in difflib.get_close_matches(w, targets, 2, 0.6)})
    close_words = sorted({m for w in words for m in difflib.get_close_matches(w, vocab, 2, 0.7)})
    names = sorted({n for p in projects for n in p.names})
    tries = [f"cis run {t}" for t in close_targets]
    if projects:
        p0 = projects[0]
        bench = next((c.label for c in p0.commands if c.verb is Verb.BENCH), p0.name)
        gpu = [b for p in projects for b in p.backends if b != "cpu"]
        tries.append(f'cis run "bench {bench} {gpu[0] if gpu else "cpu"} vs cpu"')
        tries.append(f'cis run "test {p0.name}"')
    else:
        tries.append("cis run closedloop")
        tries.append('cis run "bench <name> cuda vs cpu"   (in a project directory)')
    found = ", ".join(p.manifest.name for p in projects) or "none"
    why = [f"it is not a file (or a directory with cis.toml) and not a named target "
           f"({', '.join(targets)})",
           "as a sketch it has no intent word: test/测试, bench/基准, compare/对比/vs, "
           "build/编译, cuda, metal, cpu, gpu",
           f"manifests in {Path(workdir).resolve()}: {found}"
           + (f" (names: {', '.join(names[:8])})" if names else "")]
    if close_words:
        why.append(f"did you mean: {', '.join(close_words)}")
    return InputError(f"nothing matches {arg!r}", why="\n".join(why),
                      how="try: " + "\n".join(tries), exit_code=2)


__all__ = ["SketchPlan", "no_match_error", "plan_sketch", "prepare_run",
           "preview", "sketch_dag", "skips_for"]
