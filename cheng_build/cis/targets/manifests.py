"""Reading a project's own manifests into build / test / bench commands per backend.

A sketch (:mod:`cheng_build.cis.targets.sketch`) never invents commands: it takes them from what the
project declares. Each reader turns one manifest into a :class:`Project`: its name, the backends
it can be built for (``cpu`` plus GPU backends found in the manifest), and per backend the
argv lists to build, test and benchmark it. Every command names where it came from.

=====================  ===========================================================================
manifest               what is read
=====================  ===========================================================================
``CMakeLists.txt``     ``project()``, ``option(<X>_CUDA|<X>_METAL ...)`` (-> backends, -D<opt>=ON),
                       ``enable_language(CUDA)``, ``add_executable`` targets named ``*bench*``,
                       ``enable_testing``/``add_test`` (-> ``ctest``). One build tree per backend
                       under ``build-cis/<backend>``; a bench runs the target built for it.
``Cargo.toml``         ``[package] name``, ``[features]`` named ``cuda``/``metal`` (-> backends),
                       ``[[bench]]`` / ``benches/*.rs``; ``cargo build|test|bench --release
                       --features <f> --target-dir target/cis-<backend>``.
``pyproject.toml``     ``[project] name``, optional-dependency groups named ``cuda``/``metal``,
                       pytest configured or listed (-> ``python -m pytest``), ``benchmarks/*.py``;
                       the backend is passed as ``CIS_BACKEND``.
``package.json``       ``name``, ``scripts``: ``build``, ``test``, ``bench``/``benchmark`` and
                       ``<script>:<backend>`` variants (-> ``npm run <script>``).
``cheng-package.toml`` ``package_id``; every ``*.cheng`` beside it with ``fn main`` is built with
                       ``chengc``; ``tests/*.cheng`` are run with ``chengc --run``.
=====================  ===========================================================================
"""

from __future__ import annotations

import enum
import json
import os
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GPU_BACKENDS = ("cuda", "metal")
BUILD_ROOT = "build-cis"


class Verb(enum.Enum):
    """What a command does."""

    BUILD = "build"
    TEST = "test"
    BENCH = "bench"


@dataclass(frozen=True, slots=True)
class Command:
    """One argv a project declares (directly or by convention of its build tool)."""

    verb: Verb
    backend: str
    label: str  # short, unique within (verb, backend): "configure", "build", "voxel_bench"
    argv: tuple[str, ...]
    source: str  # where it came from: "CMakeLists.txt: option(VOXEL_CUDA)"
    env: tuple[tuple[str, str], ...] = ()
    binds: tuple[str, ...] = ()  # directories the tool needs besides the project (toolchain homes)


@dataclass(frozen=True, slots=True)
class Project:
    """What one manifest says."""

    kind: str  # cmake | cargo | python | node | cheng
    manifest: Path
    name: str
    backends: tuple[str, ...]
    commands: tuple[Command, ...]
    names: tuple[str, ...]  # target / bench / test names a sketch may mention

    def select(self, verb: Verb, backend: str) -> list[Command]:
        return [c for c in self.commands if c.verb is verb and c.backend == backend]


def _backend_of(name: str) -> str | None:
    low = name.lower()
    for b in GPU_BACKENDS:
        if b in low:
            return b
    return None


# --- CMake ---------------------------------------------------------------------------------------

_CM_COMMENT = re.compile(r"#[^\n]*")
_CM_PROJECT = re.compile(r"\bproject\s*\(\s*([A-Za-z0-9_.-]+)([^)]*)\)", re.I)
_CM_OPTION = re.compile(r"\boption\s*\(\s*([A-Za-z0-9_]+)", re.I)
_CM_EXE = re.compile(r"\badd_executable\s*\(\s*([A-Za-z0-9_.-]+)", re.I)
_CM_TEST = re.compile(r"\badd_test\s*\(\s*(?:NAME\s+)?([A-Za-z0-9_.-]+)", re.I)
_CM_LANG = re.compile(r"\benable_language\s*\(\s*CUDA\b", re.I)


def read_cmake(path: Path) -> Project:
    text = _CM_COMMENT.sub("", path.read_text(encoding="utf-8", errors="replace"))
    m = _CM_PROJECT.search(text)
    name = m.group(1) if m else path.parent.name
    options = _CM_OPTION.findall(text)
    gpu_opts = {b: o for o in options if (b := _backend_of(o)) is not None}
    always_cuda = bool(_CM_LANG.search(text)) or (m is not None and "CUDA" in m.group(2).upper())
    backends = ["cpu", *gpu_opts]
    if always_cuda and "cuda" not in gpu_opts:
        backends.append("cuda")
    exes = _CM_EXE.findall(text)
    tests = _CM_TEST.findall(text)
    has_tests = bool(tests) or re.search(r"\benable_testing\s*\(", text, re.I) is not None
    cmds: list[Command] = []
    for b in backends:
        tree = f"{BUILD_ROOT}/{b}"
        defs = [f"-D{o}={'ON' if ob == b else 'OFF'}" for ob, o in gpu_opts.items()]
        src = f"CMakeLists.txt: option({gpu_opts[b]})" if b in gpu_opts else "CMakeLists.txt"
        cmds.append(Command(Verb.BUILD, b, "configure", ("cmake", "-S", ".", "-B", tree,
                                                         "-DCMAKE_BUILD_TYPE=Release", *defs), src))
        cmds.append(Command(Verb.BUILD, b, "build", ("cmake", "--build", tree, "--parallel"), src))
        if has_tests:
            cmds.append(Command(Verb.TEST, b, "ctest", ("ctest", "--test-dir", tree,
                                                        "--output-on-failure"),
                                f"CMakeLists.txt: add_test({', '.join(tests) or 'enable_testing'})"))
        for exe in exes:
            if "bench" in exe.lower():
                cmds.append(Command(Verb.BENCH, b, exe, (f"{tree}/{exe}",),
                                    f"CMakeLists.txt: add_executable({exe})"))
    return Project("cmake", path, name, tuple(backends), tuple(cmds), (name, *exes, *tests))


# --- Cargo ---------------------------------------------------------------------------------------


def read_cargo(path: Path) -> Project:
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    name = str(doc.get("package", {}).get("name") or path.parent.name)
    features = [f for f in doc.get("features", {}) if _backend_of(f)]
    benches = [str(b["name"]) for b in doc.get("bench", []) if isinstance(b, dict) and b.get("name")]
    bench_dir = path.parent / "benches"
    if not benches and bench_dir.is_dir():
        benches = sorted(p.stem for p in bench_dir.glob("*.rs"))
    backends = ["cpu", *dict.fromkeys(b for f in features if (b := _backend_of(f)))]
    # rustup's proxies need their homes; tasks get no $HOME, so name them explicitly.
    homes = {"CARGO_HOME": os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo"),
             "RUSTUP_HOME": os.environ.get("RUSTUP_HOME") or os.path.expanduser("~/.rustup")}
    env = tuple((k, v) for k, v in homes.items() if os.path.isdir(v))
    binds = tuple(v for _, v in env)
    cmds: list[Command] = []
    for b in backends:
        feat = [f for f in features if _backend_of(f) == b][:1]
        flags = ("--release", *(("--features", feat[0]) if feat else ()),
                 "--target-dir", f"target/cis-{b}")
        src = f"Cargo.toml: features.{feat[0]}" if feat else "Cargo.toml"
        cmds.append(Command(Verb.BUILD, b, "build", ("cargo", "build", *flags), src, env, binds))
        cmds.append(Command(Verb.TEST, b, "test", ("cargo", "test", *flags), src, env, binds))
        for bench in benches:
            # cargo bench always uses the bench profile and refuses --release.
            cmds.append(Command(Verb.BENCH, b, bench, ("cargo", "bench", "--bench", bench,
                                                       *flags[1:]), f"Cargo.toml: bench {bench}",
                                env, binds))
    return Project("cargo", path, name, tuple(backends), tuple(cmds), (name, *benches))


# --- pyproject.toml ------------------------------------------------------------------------------


def read_pyproject(path: Path) -> Project:
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    proj = doc.get("project", {})
    name = str(proj.get("name") or path.parent.name)
    extras = proj.get("optional-dependencies", {})
    backends = ["cpu", *dict.fromkeys(b for g in extras if (b := _backend_of(g)))]
    deps = " ".join(map(str, proj.get("dependencies", [])))
    deps += " ".join(" ".join(map(str, v)) for v in extras.values())
    has_pytest = "pytest" in doc.get("tool", {}) or "pytest" in deps or (path.parent / "tests").is_dir()
    bench_dir = path.parent / "benchmarks"
    benches = sorted(p for p in bench_dir.glob("*.py")) if bench_dir.is_dir() else []
    cmds: list[Command] = []
    for b in backends:
        env = (("CIS_BACKEND", b),)
        if has_pytest:
            cmds.append(Command(Verb.TEST, b, "pytest", (sys.executable, "-m", "pytest", "-q"),
                                "pyproject.toml: pytest", env))
        for p in benches:
            cmds.append(Command(Verb.BENCH, b, p.stem, (sys.executable, f"benchmarks/{p.name}"),
                                f"benchmarks/{p.name}", env))
    return Project("python", path, name, tuple(backends), tuple(cmds),
                   (name, *(p.stem for p in benches)))


# --- package.json --------------------------------------------------------------------------------


def read_package_json(path: Path) -> Project:
    doc = json.loads(path.read_text(encoding="utf-8"))
    name = str(doc.get("name") or path.parent.name)
    scripts = doc.get("scripts", {}) if isinstance(doc.get("scripts"), dict) else {}
    verbs = {"build": Verb.BUILD, "test": Verb.TEST, "bench": Verb.BENCH, "benchmark": Verb.BENCH}
    backends = ["cpu"]
    cmds: list[Command] = []
    for script in scripts:
        base, _, suffix = script.partition(":")
        verb = verbs.get(base)
        if verb is None:
            continue
        backend = _backend_of(suffix) or ("cpu" if not suffix or suffix == "cpu" else None)
        if backend is None:
            continue
        if backend not in backends:
            backends.append(backend)
        cmds.append(Command(verb, backend, script, ("npm", "run", "--silent", script),
                            f"package.json: scripts.{script}"))
    return Project("node", path, name, tuple(backends), tuple(cmds), (name, *scripts))


# --- cheng-package.toml --------------------------------------------------------------------------

_MAIN = re.compile(r"^fn\s+main\s*\(", re.M)


def read_cheng(path: Path) -> Project:
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    pid = str(doc.get("package_id") or "")
    name = pid.rsplit("/", 1)[-1] or path.parent.name
    root = path.parent
    cmds: list[Command] = []
    mains = [p for p in sorted(root.glob("*.cheng"))
             if _MAIN.search(p.read_text(encoding="utf-8", errors="replace"))]
    for p in mains:
        cmds.append(Command(Verb.BUILD, "cpu", p.stem, ("chengc", p.name), f"{p.name}: fn main"))
    tests = sorted((root / "tests").glob("*.cheng")) if (root / "tests").is_dir() else []
    for p in tests:
        cmds.append(Command(Verb.TEST, "cpu", p.stem, ("chengc", f"tests/{p.name}", "--run"),
                            f"tests/{p.name}"))
    return Project("cheng", path, name, ("cpu",), tuple(cmds),
                   (name, *(p.stem for p in mains), *(p.stem for p in tests)))


READERS: dict[str, Callable[[Path], Project]] = {
    "cheng-package.toml": read_cheng, "Cargo.toml": read_cargo, "CMakeLists.txt": read_cmake,
    "pyproject.toml": read_pyproject, "package.json": read_package_json,
}


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A manifest that exists but could not be read (the sketch says so)."""

    path: Path
    reason: str


def read_projects(root: str | Path) -> tuple[list[Project], list[Unreadable]]:
    """Every manifest directly in ``root``, read (in the order of :data:`READERS`)."""
    out: list[Project] = []
    bad: list[Unreadable] = []
    for fname, reader in READERS.items():
        p = Path(root) / fname
        if not p.is_file():
            continue
        try:
            out.append(reader(p))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            bad.append(Unreadable(p, f"{type(exc).__name__}: {exc}"))
    return out, bad


__all__ = ["BUILD_ROOT", "GPU_BACKENDS", "READERS", "Command", "Project", "Unreadable", "Verb",
           "read_cargo", "read_cheng", "read_cmake", "read_package_json", "read_projects",
           "read_pyproject"]
