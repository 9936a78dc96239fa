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
from pathlib import Path

from cheng_build.build.action import build_graph
from cheng_build.build.imports import search_roots, walk
from cheng_build.build.inputs import StatCache, listing_digest, read_inputs
from cheng_build.build.request import META_NAME, BuildRequest, BuildResult, Emit, Status, output_path
from cheng_build.build.stage import Background, rmtree
from cheng_build.core.errors import InputError, UsageError


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
    graph = walk(source, roots, stat_cache, snapshots=snapshots, watch=stat_cache.watch)

    if req.emit is Emit.BUNDLE:
        from cheng_build.build.bundle import write_bundle

        dest = req.bundle_out or output.with_name(output.name + ".car")
        root_id = write_bundle(dest, read_inputs(graph.files))
        stat_cache.remember_root(listing_digest(graph.files), root_id)
        stat_cache.save()
        return BuildResult(Status.BUNDLED, graph, root_id, output=dest, files_read=stat_cache.reads,
                           warnings=pkg.warnings if pkg else ())

    staged: list[Path] = []  # a fresh root already holding exactly the inputs, for the first compile
    bg = Background()
    try:
        return build_graph(req, cwd, source, output, graph, stat_cache, cache_root, pkg, staged, bg)
    finally:
        for d in staged:
            rmtree(d)
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


__all__ = ["build"]
