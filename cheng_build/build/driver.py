"""The chengc driver: inputs -> action cache -> compiler hand-off -> artifact + cheng.meta.toml.

What happens for ``chengc app.cheng`` (each step raises its own typed error; nothing prints):

1. the package flow, when a manifest/lock/package is named (:mod:`cheng_build.build.packages`):
   resolve -> verify -> fetch, giving package roots and the lock's ``created_ts``;
2. the import graph is walked with the compiler's resolution rules (:mod:`.imports`), file facts
   coming from the stat cache, so a no-op build reads no source;
3. the input root (Merkle root of exactly those files) and the action-cache key are computed;
4. hit: the artifact is copied out of the content store (or left alone when the output already
   holds those bytes) and the compiler is never started;
5. miss: the inputs are read (and checked against the digests the key was built from), staged in
   a fresh directory, and the compiler runs there with a cleared environment; its output is stored.

Output path (as the existing driver): ``--out:<path>`` as given; else ``--name:x`` ->
``artifacts/chengc/x``, a name containing ``/`` is used as given; the default name is the
source's base name without ``.cheng``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from cheng_build.build import compiler as compiler_mod
from cheng_build.build.action_cache import ActionCache, CasArtifactStore, Entry, KeyParts, canonical_env
from cheng_build.build.action_cache import explain as explain_miss
from cheng_build.build.fastcid import CHUNK
from cheng_build.build.imports import ImportGraph, search_roots, walk
from cheng_build.build.inputs import StatCache, listing_digest, read_inputs
from cheng_build.core.errors import InputError, UsageError

ARTIFACT_DIR = "artifacts/chengc"
META_NAME = "cheng.meta.toml"
STAGED_OUT_DIR = "out"
# Per-run paths the compiler gets but the key ignores (they differ between two fresh roots).
_PER_RUN_ENV = ("HOME", "TMPDIR")
# Flags that cannot change the artifact, so they stay out of the key.
_UNKEYED_FLAGS = ("--jobs",)


class Emit(Enum):
    """What the build stops at."""

    COMPILE = "compile"
    CHECK = "check"  # resolution only; no compiler needed
    BUNDLE = "bundle"  # a CAR of exactly the inputs, for compiling elsewhere


class Status(Enum):
    """How a build ended."""

    HIT = "hit"
    BUILT = "built"
    CHECKED = "checked"
    BUNDLED = "bundled"


@dataclass(frozen=True, slots=True)
class PackageOptions:
    """The package flags (``--manifest --lock --registry --package --channel ...``)."""

    manifest: Path | None = None
    lock: Path | None = None
    registry: Path | None = None
    package: str | None = None
    channel: str = "stable"
    lock_format: str = "toml"
    pkg_cache: Path | None = None
    skip_pkg: bool = False
    verify: bool = False

    @property
    def active(self) -> bool:
        """True when the package flow runs (something package-related was named)."""
        return not self.skip_pkg and (self.manifest is not None or self.lock is not None
                                      or self.package is not None)


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """One ``chengc`` invocation, fully parsed; paths relative to ``cwd``."""

    source: Path
    compiler_flags: tuple[str, ...] = ()  # for the compiler, in order; no --name/--out
    name: str | None = None
    out: str | None = None
    target: str | None = None
    emit: Emit = Emit.COMPILE
    run: bool = False
    compiler: str | None = None
    reproducible_check: bool = False
    no_cache: bool = False
    env_allow: tuple[str, ...] = ()
    pkg_roots: str | None = None
    meta_out: Path | None = None
    bundle_out: Path | None = None
    packages: PackageOptions = field(default_factory=PackageOptions)
    cache_dir: Path = Path("chengcache")
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = Path(".")
    sign: str | None = None  # a key file or env:VAR: write a signed provenance attestation
    ledger: Path | None = None  # meter the compile and record its usage here (--ledger)


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What the build did; the CLI turns it into output."""

    status: Status
    graph: ImportGraph
    input_root: str
    output: Path | None = None
    meta: Path | None = None
    key: str | None = None
    explain: tuple[str, ...] = ()
    stdout: bytes = b""
    stderr: bytes = b""
    compiled: int = 0  # how many times the compiler ran (0 on a hit, 2 with --reproducible-check)
    files_read: int = 0
    warnings: tuple[str, ...] = ()  # from verify (e.g. L0 placeholder signatures)
    package_steps: tuple[str, ...] = ()  # which package-flow steps ran (others were remembered)
    attestation: Path | None = None  # the signed provenance (--sign)


def output_path(source: Path, name: str | None, out: str | None, cwd: Path) -> Path:
    """Where the artifact goes (see the module docstring)."""
    if out:
        p = Path(out)
    else:
        n = name or (source.name[: -len(".cheng")] if source.name.endswith(".cheng") else source.stem)
        p = Path(n) if "/" in n else Path(ARTIFACT_DIR) / n
    return p if p.is_absolute() else cwd / p


def _display(p: Path, cwd: Path) -> str:
    try:
        return p.relative_to(cwd).as_posix()
    except ValueError:
        return os.fspath(p)


def _key_flags(flags: Sequence[str]) -> tuple[str, ...]:
    return tuple(f for f in flags if f.split(":", 1)[0].split("=", 1)[0] not in _UNKEYED_FLAGS)


def _target(req: BuildRequest) -> str:
    if req.target:
        return req.target
    u = os.uname()
    return f"host:{u.sysname.lower()}-{u.machine}"


def _env_allow(req: BuildRequest) -> tuple[str, ...]:
    extra = [n.strip() for n in req.env.get("CHENGC_ENV_ALLOW", "").split(",") if n.strip()]
    return tuple(sorted({*compiler_mod.DEFAULT_ENV_ALLOW, *req.env_allow, *extra}))


@dataclass(frozen=True, slots=True)
class _Compiled:
    data: bytes
    mode: int
    stdout: bytes
    stderr: bytes


def _compile_in(root: Path, comp: compiler_mod.Compiler, graph: ImportGraph, data: Mapping[str, bytes],
                argv: Sequence[str], env: Mapping[str, str], out_rel: str, run: bool) -> _Compiled | None:
    """Stage ``data`` under ``root`` and run the compiler there; the artifact's bytes or None."""
    if data:
        from cheng_build.build.bundle import stage_tree

        stage_tree(root, data)
    (root / STAGED_OUT_DIR).mkdir(exist_ok=True)
    (root / ".home").mkdir(exist_ok=True)
    (root / ".tmp").mkdir(exist_ok=True)
    full_env = {**env, "HOME": os.fspath(root / ".home"), "TMPDIR": os.fspath(root / ".tmp")}
    outcome = compiler_mod.run(comp.path, compiler_mod.Invocation(tuple(argv), full_env, root))
    art = root / out_rel
    if not art.is_file():
        if run:
            return _Compiled(b"", 0o755, outcome.stdout, outcome.stderr)
        from cheng_build.build.errors import CompilerFailedError

        raise CompilerFailedError(
            f"compiler wrote no output at {out_rel}", returncode=1, stdout=outcome.stdout,
            stderr=outcome.stderr, why=f"{comp.path} {' '.join(argv)} exited 0",
            how="check that the compiler honours --out:<path>")
    return _Compiled(art.read_bytes(), art.stat().st_mode & 0o777, outcome.stdout, outcome.stderr)


class _Background:
    """Work that may overlap the compiler or the final writes, joined before build() returns.

    Used for I/O the build's answer does not depend on: deleting staged roots, loading the
    content-store modules while the compiler runs (the process is only waiting then), and the
    durable write of a small artifact's block while the output and meta are written. The first
    error of a task is raised by :meth:`join` (never printed by the thread).
    """

    def __init__(self) -> None:
        self._threads: list[Any] = []
        self._errors: list[BaseException] = []

    def run(self, fn: Any) -> None:
        import threading

        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # handed to join(), in the caller's thread
                self._errors.append(exc)

        t = threading.Thread(target=body, daemon=True)
        t.start()
        self._threads.append(t)

    def join(self) -> None:
        for t in self._threads:
            t.join()
        if self._errors:
            raise self._errors[0]


def _preload_cas() -> None:
    try:
        from cheng_build.cas.importer import add_bytes

        add_bytes(None, b"")  # first-use work (CID classes, validators) happens here too
    except Exception:  # a warm-up only: the real call reports any problem
        pass


def _fresh_build(req: BuildRequest, comp: compiler_mod.Compiler, graph: ImportGraph,
                 data: Mapping[str, bytes], argv: Sequence[str], env: Mapping[str, str],
                 out_rel: str, staged: list[Path], bg: _Background) -> tuple[_Compiled, int]:
    """Compile once (or twice for --reproducible-check) in fresh temporary roots.

    ``staged`` may hold a fresh root already holding exactly the inputs (made to compute the
    input root); the first compile uses it instead of staging again.
    """
    runs = 2 if req.reproducible_check else 1
    results: list[_Compiled] = []
    for i in range(runs):
        pre = staged.pop() if staged else None
        root = pre or Path(_mkdtemp(f"chengc-{i}-", _stage_parent(req.env)))
        try:
            res = _compile_in(root, comp, graph, {} if pre else data, argv, env, out_rel, req.run)
            assert res is not None
            results.append(res)
        finally:
            bg.run(lambda r=root: _rmtree(r))
    if runs == 2:
        from cheng_build.build.repro import check_same

        check_same(results[0].data, results[1].data, first_id=_artifact_id(results[0].data),
                   second_id=_artifact_id(results[1].data))
    return results[0], runs


def _artifact_id(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def _place(output: Path, data: bytes | None, sha256: str, size: int, mode: int, fetch: Any,
           stat_cache: StatCache) -> None:
    """Put the artifact at ``output`` unless it already holds exactly these bytes and mode.

    The check goes through the stat cache, so a no-op build does not re-hash a large artifact.
    """
    try:
        st = output.stat()
        if (st.st_size == size and (st.st_mode & 0o777) == mode
                and stat_cache.file_digest(output)[1] == sha256):
            return
    except OSError:
        pass
    from cheng_build.core.atomic import atomic_write_bytes  # tempfile & co.: only when writing

    atomic_write_bytes(output, data if data is not None else fetch(), mode=mode)
    stat_cache.file_digest(output)  # remember the new file's signature


def _write_if_changed(path: Path, blob: bytes) -> None:
    try:
        if path.read_bytes() == blob:
            return
    except OSError:
        pass
    from cheng_build.core.atomic import atomic_write_bytes

    atomic_write_bytes(path, blob)


def build(req: BuildRequest) -> BuildResult:
    """Run one build.

    Raises:
        InputError: the source file is missing.
        UsageError: conflicting flags.
        UnresolvedImportError, ImportPathError, ImportCycleError: the import graph is broken.
        NoCompilerError: no compiler (not raised for ``--emit:check``/``--emit:bundle``).
        CompilerFailedError: the compiler failed.
        NotReproducibleError: ``--reproducible-check`` found two different outputs.
        ChengError subclasses from the package flow (resolve, verify, fetch).
    """
    cwd = Path(os.path.abspath(req.cwd))
    source = req.source if req.source.is_absolute() else cwd / req.source
    _check_source(source, req.source)
    if req.reproducible_check and req.run:
        raise UsageError("--reproducible-check cannot be combined with --run",
                         how="check reproducibility first, then run the artifact")

    cache_root = req.cache_dir if req.cache_dir.is_absolute() else cwd / req.cache_dir
    if cache_root.exists() and not cache_root.is_dir():
        raise InputError(f"--pkg-cache: {req.cache_dir} is not a directory",
                         why="the package and action cache is a directory (PKG_CACHE, --pkg-cache)",
                         how="pass --pkg-cache:<directory> or remove the file")
    chengc_cache = cache_root / "chengc"
    stat_cache = StatCache(chengc_cache / "stat.json")

    pkg = None
    extra_roots: list[Path] = []
    if req.packages.active:
        from cheng_build.build.packages import prepare

        pkg = prepare(req.packages, cwd=cwd, cache_root=cache_root, env=req.env, stat_cache=stat_cache,
                      default_name=output_path(source, req.name, None, cwd).name)
        extra_roots = list(pkg.roots)
        if req.packages.manifest is not None:
            # The app's own package (its manifest's directory) comes first, so its modules
            # resolve as cheng/<app>/<path> alongside the locked dependencies.
            m = req.packages.manifest
            extra_roots.insert(0, (m if m.is_absolute() else cwd / m).parent)

    if pkg is not None:
        # The package flow *sets* the roots (seed A3): the app's own directory, the locked
        # snapshots, then any --pkg-roots. PKG_ROOT/PKG_ROOTS from the environment are not
        # searched, so a stale ~/.cheng-packages can never shadow what the lock pins.
        from cheng_build.build.imports import split_roots

        extra_roots += [Path(r) for r in split_roots(req.pkg_roots or "")]
        roots = search_roots({"HOME": req.env.get("HOME", "")}, extra_roots)
    else:
        env_for_roots = dict(req.env)
        if req.pkg_roots is not None:
            env_for_roots["PKG_ROOTS"] = req.pkg_roots
        roots = search_roots(env_for_roots)
    output = output_path(source, req.name, req.out, cwd)
    if req.emit is Emit.COMPILE:
        _check_writable(output, "--out" if req.out else "--name")
        _check_writable(req.meta_out or output.parent / META_NAME, "--meta-out")
    elif req.emit is Emit.BUNDLE and req.bundle_out is not None:
        _check_writable(req.bundle_out, "--out")
    snapshots = None
    if pkg is not None:
        # Each locked snapshot supplies exactly its own package (issue 13, hole 3).
        snapshots = {Path(os.path.abspath(os.path.expanduser(r))):
                     str(d.get("package_id", "")).rsplit("/", 1)[-1]
                     for r, d in zip(pkg.roots, pkg.dependencies, strict=False)}
    graph = walk(source, roots, stat_cache, snapshots=snapshots)

    if req.emit is Emit.BUNDLE:
        from cheng_build.build.bundle import write_bundle

        dest = req.bundle_out or output.with_name(output.name + ".car")
        root_id = write_bundle(dest, read_inputs(graph.files))
        stat_cache.remember_root(listing_digest(graph.files), root_id)
        stat_cache.save()
        return BuildResult(Status.BUNDLED, graph, root_id, output=dest, files_read=stat_cache.reads,
                           warnings=pkg.warnings if pkg else ())

    staged: list[Path] = []  # a fresh root already holding exactly the inputs, for the first compile
    bg = _Background()
    try:
        return _build_graph(req, cwd, source, output, graph, stat_cache, cache_root, pkg, staged, bg)
    finally:
        for d in staged:
            _rmtree(d)
        bg.join()


def _check_source(source: Path, given: Path) -> None:
    """Refuse a missing source, a directory or a FIFO before anything reads it."""
    import stat

    how = "pass the path of a .cheng file: chengc <file.cheng> [flags]"
    try:
        st = source.stat()
    except OSError:
        kind = "a dangling symlink" if os.path.lexists(source) else None
        raise InputError(f"source is {kind}: {given}" if kind else f"source not found: {given}",
                         how=how) from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise InputError(f"source is {kind}: {given}", how=how)


def _check_writable(path: Path, flag: str) -> None:
    """Refuse an output path that is a directory or sits under a file, naming the flag."""
    if path.is_dir():
        raise UsageError(f"{flag}: {path} is a directory",
                         how=f"name the file to write, e.g. {flag}:{path / 'app'}")
    if path.exists() and not path.is_file():
        # A FIFO or device: reading it back (to skip an unchanged write) would block forever.
        raise UsageError(f"{flag}: {path} is not a regular file", how=f"pick another {flag}: path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{flag}: cannot write {path}", why=f"{parent} is a file",
                                 how=f"pick another {flag}: path")
            return


# Staging a miss makes one directory per package level and one file per input; on a busy disk
# (ext4 journal) those cost ~0.5 ms each, on tmpfs microseconds. Used only when it is mounted
# exec (a compiler may run what it writes in TMPDIR; --run runs the artifact) and has room.
_SHM = "/dev/shm"
_SHM_MIN_FREE = 1 << 30


def _mkdtemp(prefix: str, parent: str | None) -> str:
    import tempfile  # only a cache miss stages; a no-op build never needs it

    return tempfile.mkdtemp(prefix=prefix, dir=parent)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _stage_parent(env: Mapping[str, str]) -> str | None:
    """Where fresh staged roots go: ``CHENGC_STAGE_DIR``, else the user's ``TMPDIR``, else a
    usable tmpfs at /dev/shm, else the system temp directory (None)."""
    if env.get("CHENGC_STAGE_DIR"):
        return env["CHENGC_STAGE_DIR"]
    if env.get("TMPDIR"):
        return None  # the user chose where temporary files go: tempfile honours it
    try:
        vfs = os.statvfs(_SHM)
    except OSError:
        return None
    if vfs.f_flag & (os.ST_NOEXEC | os.ST_RDONLY) or vfs.f_bavail * vfs.f_frsize < _SHM_MIN_FREE:
        return None
    return _SHM if os.access(_SHM, os.W_OK | os.X_OK) else None


def _input_root(graph: ImportGraph, stat_cache: StatCache, staged: list[Path],
                env: Mapping[str, str]) -> tuple[str, dict[str, bytes] | None]:
    """The input root CID: remembered for this listing, or computed from a fresh staged tree."""
    listing = listing_digest(graph.files)
    known = stat_cache.known_root(listing)
    if known is not None:
        return known, None
    from cheng_build.build.fastcid import tree_root

    fast = tree_root((f.staged, f.size, f.sha256) for f in graph.files)
    if fast is not None:
        stat_cache.remember_root(listing, fast)
        return fast, None
    from cheng_build.build.bundle import stage_tree, tree_cid

    data = read_inputs(graph.files)
    root = Path(_mkdtemp("chengc-0-", _stage_parent(env)))
    staged.append(root)
    stage_tree(root, data)
    cid = tree_cid(root)
    stat_cache.remember_root(listing, cid)
    return cid, data


def _build_graph(req: BuildRequest, cwd: Path, source: Path, output: Path, graph: ImportGraph,
                 stat_cache: StatCache, cache_root: Path, pkg: Any, staged: list[Path],
                 bg: _Background) -> BuildResult:
    chengc_cache = cache_root / "chengc"
    root_id, data = _input_root(graph, stat_cache, staged, req.env)
    if req.emit is Emit.CHECK:
        stat_cache.save()
        return BuildResult(Status.CHECKED, graph, root_id, files_read=stat_cache.reads,
                           warnings=pkg.warnings if pkg else ())

    comp = compiler_mod.find_compiler(req.compiler, req.env, cwd=cwd, self_path=compiler_mod.self_path())
    _, comp_digest = stat_cache.file_digest(comp.path)
    comp_digest = "sha256:" + comp_digest

    from cheng_build.build.repro import source_date_epoch

    epoch = source_date_epoch(req.env, pkg.created_ts if pkg else None, source.parent)
    fixed_env = {"SOURCE_DATE_EPOCH": epoch.value, "PKG_ROOTS": graph.pkg_roots_value,
                 "LC_ALL": "C", "TZ": "UTC"}
    env = compiler_mod.compiler_env(req.env, _env_allow(req), fixed_env)
    env.pop("PKG_ROOT", None)

    basename = output.name
    out_rel = f"{STAGED_OUT_DIR}/{basename}"
    flags = (f"--name:{basename}", *req.compiler_flags)
    argv = (graph.entry.name, *flags, f"--out:{out_rel}")
    parts = KeyParts(comp_digest, _key_flags(flags), root_id, canonical_env(env, _PER_RUN_ENV), _target(req))
    inputs_map = {f.staged: (os.fspath(f.source), f.sha256) for f in graph.files}

    cache = ActionCache(chengc_cache, CasArtifactStore(cache_root))
    use_cache = not (req.no_cache or req.run)
    meta_path = req.meta_out or output.parent / META_NAME
    attester = _attester(req, stat_cache, chengc_cache)

    def finish(status: Status, entry: Entry, data: bytes | None, why: Sequence[str],
               compiled: int) -> BuildResult:
        meta_blob = _meta(req, cwd, source, output, entry, parts, comp, epoch.value, pkg)
        if data is not None and meta_path != output:
            # A fresh build: the meta's durable write (two fsyncs) overlaps the artifact's. On a
            # hit the artifact may turn out to be gone (rebuild), so the meta waits for it there.
            bg.run(lambda: _write_if_changed(meta_path, meta_blob))
            _place(output, data, entry.sha256, entry.size, entry.mode,
                   lambda: cache.store.get(entry.ref), stat_cache)
        else:
            _place(output, data, entry.sha256, entry.size, entry.mode,
                   lambda: cache.store.get(entry.ref), stat_cache)
            _write_if_changed(meta_path, meta_blob)
        att = None
        if attester is not None:
            att = attester.write(_facts(output, entry, graph, parts, out_rel, pkg), parts.key,
                                 meta_path.parent, lambda: read_inputs(graph.files))
        cache.note_target(entry, output)
        stat_cache.save()
        return BuildResult(status, graph, root_id, output=output, meta=meta_path, key=parts.key,
                           explain=tuple(why), stdout=entry.stdout, stderr=entry.stderr,
                           compiled=compiled, files_read=stat_cache.reads,
                           warnings=pkg.warnings if pkg else (), package_steps=pkg.steps if pkg else (),
                           attestation=att)

    why: list[str] = []
    if use_cache and not req.reproducible_check:
        hit = cache.lookup(parts)
        if hit is not None:
            from cheng_build.core.errors import NotFoundError

            try:
                return finish(Status.HIT, hit, None, [f"cache hit: key {parts.key[:16]}"], 0)
            except NotFoundError:
                # The store dropped the artifact (cheng-pkg gc): a cache may forget, so rebuild.
                # A *corrupt* artifact (DigestMismatchError) is not forgiven: it is reported.
                why.append(f"cached artifact {hit.ref} is no longer in the store; rebuilding")

    if not use_cache:
        why.append("cache not used: " + ("--run runs the program, a side effect no cache can replay"
                                         if req.run else "--no-cache"))
    elif req.reproducible_check:
        why.append("cache not consulted: --reproducible-check always builds twice")
    last = cache.last_for(output) if use_cache else None
    if use_cache and not req.reproducible_check and not why:
        why += explain_miss(parts, inputs_map, last)

    if data is None:
        data = read_inputs(graph.files)
    # The CAS modules are needed after the compiler only for an artifact over one chunk (a
    # smaller one is stored as a raw block without them); judge by this output's last artifact,
    # so a small one does not pay their import's CPU on every miss.
    if use_cache and (last is None or last.size > CHUNK):
        bg.run(_preload_cas)
    if attester is not None:
        from cheng_build.build.provenance import inputs_path

        attester.preload(inputs_path(meta_path.parent, output.name), data)
    meter = None
    if req.ledger is not None:
        from cheng_build.build.metering import ChildMeter

        meter = ChildMeter()
    compiled, runs = _fresh_build(req, comp, graph, data, argv, env, out_rel, staged, bg)
    if meter is not None:
        _record_usage(req, cwd, meter.stop(), root_id, output, pkg)
    import hashlib

    sha = hashlib.sha256(compiled.data).hexdigest()
    if use_cache:
        if len(compiled.data) <= CHUNK:
            # One block: its CID is known from the digest, so its durable write (two fsyncs)
            # overlaps the output's and the meta's instead of preceding them. A crash before it
            # lands leaves an entry whose artifact is missing: a rebuild, never a wrong build.
            from cheng_build.build.fastcid import raw_cid

            output_cid = ref = raw_cid(sha)
            blob = compiled.data
            bg.run(lambda: cache.store.put(blob))
        else:
            output_cid = ref = cache.store.put(compiled.data)  # the artifact's CID in the CAS
    else:
        from cheng_build.build.fastcid import raw_cid

        if len(compiled.data) <= CHUNK:
            output_cid = raw_cid(sha)
        else:
            from cheng_build.cas.importer import add_bytes

            output_cid = str(add_bytes(None, compiled.data))
        ref = output_cid
    entry = Entry(parts, inputs_map, ref, sha, len(compiled.data), compiled.mode,
                  compiled.stdout, compiled.stderr, {"output_cid": output_cid})
    if use_cache:
        cache.record(entry, output)
    if req.run and not compiled.data:
        stat_cache.save()
        return BuildResult(Status.BUILT, graph, root_id, key=parts.key, explain=tuple(why),
                           stdout=compiled.stdout, stderr=compiled.stderr, compiled=runs,
                           files_read=stat_cache.reads)
    return finish(Status.BUILT, entry, compiled.data, why, runs)


def _record_usage(req: BuildRequest, cwd: Path, use: Any, root_id: str, output: Path, pkg: Any) -> None:
    """Write the metered compile's usage event to ``--ledger`` (:mod:`.metering`)."""
    import socket

    from cheng_build.build import metering

    assert req.ledger is not None
    ledger = req.ledger if req.ledger.is_absolute() else cwd / req.ledger
    package_id = str(pkg.package_fields.get("package_id", "")) if pkg is not None else ""
    executor = req.env.get("CHENGC_EXECUTOR_ID") or f"node:{socket.gethostname()}"
    metering.record(ledger, use, task_id=f"chengc:{root_id}",
                    package_id=package_id or f"local:{output.name}", executor_id=executor,
                    packages=metering.used_packages(pkg.dependencies if pkg is not None else ()),
                    config_values=compiler_mod.config_table(req.env, cwd, "metering"))


def _attester(req: BuildRequest, stat_cache: StatCache, chengc_cache: Path) -> Any:
    """The signer of ``--sign`` (None without it); nothing is imported for an unsigned build."""
    if not req.sign:
        return None
    from cheng_build.build.provenance import Attester, key_digest

    return Attester(req.sign, key_digest(req.sign, lambda p: stat_cache.file_digest(p)[1]),
                    chengc_cache / "attest")


def _facts(output: Path, entry: Entry, graph: ImportGraph, parts: KeyParts, out_rel: str,
           pkg: Any) -> Any:
    from cheng_build.build.provenance import BuildFacts, flags_without_out

    return BuildFacts(
        artifact_name=output.name, artifact_sha256=entry.sha256,
        artifact_cid=str(entry.extra.get("output_cid", "")), entry=graph.entry.name,
        flags=flags_without_out(parts.flags), target=parts.target, env=parts.env, out=out_rel,
        input_root=parts.input_root, compiler_digest=parts.compiler_digest,
        dependencies=tuple(pkg.dependencies) if pkg is not None else ())


def _meta(req: BuildRequest, cwd: Path, source: Path, output: Path, entry: Entry, parts: KeyParts,
          comp: compiler_mod.Compiler, created_ts: str, pkg: Any) -> bytes:
    from cheng_build.build.meta_toml import dumps

    build_t = {
        "source": _display(source, cwd),
        "output": _display(output, cwd),
        "output_cid": str(entry.extra.get("output_cid", "")),
        "input_root": parts.input_root,
        "compiler": os.fspath(comp.path),
        "compiler_digest": parts.compiler_digest,
        "flags": list(parts.flags),
        "created_ts": created_ts,
    }
    if pkg is None:
        return dumps({}, build_t, None, []).encode()
    return dumps(pkg.package_fields, build_t, pkg.lock_table, pkg.dependencies).encode()


__all__ = ["ARTIFACT_DIR", "META_NAME", "BuildRequest", "BuildResult", "Emit", "PackageOptions",
           "Status", "build", "output_path"]
