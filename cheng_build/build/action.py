"""One build action (ninja's Edge): the key from compiler, flags, input root and environment; a
cache hit placed, or a miss compiled (:mod:`.stage`), stored and recorded; the artifact, its
``cheng.meta.toml`` and, with ``--sign``, its attestation written. Steps over one :class:`Job`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cheng_build.build import compiler as compiler_mod
from cheng_build.build.action_cache import ActionCache, CasArtifactStore, Entry, KeyParts, canonical_env
from cheng_build.build.action_cache import explain as explain_miss
from cheng_build.build.fastcid import CHUNK
from cheng_build.build.imports import ImportGraph
from cheng_build.build.inputs import StatCache, listing_digest, read_inputs
from cheng_build.build.request import META_NAME, STAGED_OUT_DIR, BuildRequest, BuildResult, Emit, Status
from cheng_build.build.stage import (
    Background,
    fresh_build,
    mkdtemp,
    place,
    preload_cas,
    stage_parent,
    write_if_changed,
)
from cheng_build.core.record import dataclass

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from cheng_build.build.packages import PackageContext
    from cheng_build.build.provenance import Attester, BuildFacts

# Per-run paths the compiler gets but the key ignores (they differ between two fresh roots).
_PER_RUN_ENV = ("HOME", "TMPDIR")


# Flags that cannot change the artifact, so they stay out of the key.
_UNKEYED_FLAGS = ("--jobs",)


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


def input_root(graph: ImportGraph, stat_cache: StatCache, staged: list[Path],
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
    root = Path(mkdtemp("chengc-0-", stage_parent(env)))
    staged.append(root)
    stage_tree(root, data)
    cid = tree_cid(root)
    stat_cache.remember_root(listing, cid)
    return cid, data


@dataclass
class Job:
    """One build of an import graph, everything its steps share: the request, the compiler and
    its environment, the action key, the cache and where the results go."""

    req: BuildRequest
    cwd: Path
    source: Path
    output: Path
    graph: ImportGraph
    stat_cache: StatCache
    pkg: PackageContext | None
    staged: list[Path]
    bg: Background
    root_id: str
    comp: compiler_mod.Compiler
    epoch: str
    epoch_source: str  # where SOURCE_DATE_EPOCH came from (a GIT one may move unseen)
    env: dict[str, str]
    out_rel: str
    argv: tuple[str, ...]
    parts: KeyParts
    inputs_map: dict[str, tuple[str, str]]
    cache: ActionCache
    use_cache: bool
    meta_path: Path
    attester: Attester | None


def build_graph(req: BuildRequest, cwd: Path, source: Path, output: Path, graph: ImportGraph,
                 stat_cache: StatCache, cache_root: Path, pkg: PackageContext | None,
                 staged: list[Path], bg: Background) -> BuildResult:
    root_id, data = input_root(graph, stat_cache, staged, req.env)
    if req.emit is Emit.CHECK:
        stat_cache.save()
        return BuildResult(Status.CHECKED, graph, root_id, files_read=stat_cache.reads,
                           warnings=pkg.warnings if pkg else ())
    job = _job(req, cwd, source, output, graph, stat_cache, cache_root, pkg, staged, bg, root_id)
    why: list[str] = []
    if job.use_cache and not req.reproducible_check:
        hit = _from_cache(job, why)
        if hit is not None:
            return hit
    last = _miss_reasons(job, why)
    return _compile(job, data, last, why)


def _job(req: BuildRequest, cwd: Path, source: Path, output: Path, graph: ImportGraph,
         stat_cache: StatCache, cache_root: Path, pkg: PackageContext | None, staged: list[Path],
         bg: Background, root_id: str) -> Job:
    """Step 1: the compiler, its fixed environment and the action key."""
    chengc_cache = cache_root / "chengc"
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
    return Job(
        req=req, cwd=cwd, source=source, output=output, graph=graph, stat_cache=stat_cache,
        pkg=pkg, staged=staged, bg=bg, root_id=root_id, comp=comp, epoch=epoch.value,
        epoch_source=epoch.source.name, env=env,
        out_rel=out_rel, argv=argv, parts=parts,
        inputs_map={f.staged: (os.fspath(f.source), f.sha256) for f in graph.files},
        cache=ActionCache(chengc_cache, CasArtifactStore(cache_root)),
        use_cache=not (req.no_cache or req.run),
        meta_path=req.meta_out or output.parent / META_NAME,
        attester=_attester(req, stat_cache, chengc_cache))


def _from_cache(job: Job, why: list[str]) -> BuildResult | None:
    """Step 2: a cache hit, placed and recorded; None (and the reason in ``why``) otherwise."""
    hit = job.cache.lookup(job.parts)
    if hit is None:
        return None
    from cheng_build.core.errors import NotFoundError

    try:
        return _finish(job, Status.HIT, hit, None, [f"cache hit: key {job.parts.key[:16]}"], 0)
    except NotFoundError:
        # The store dropped the artifact (cheng-pkg gc): a cache may forget, so rebuild.
        # A *corrupt* artifact (DigestMismatchError) is not forgiven: it is reported.
        why.append(f"cached artifact {hit.ref} is no longer in the store; rebuilding")
        return None


def _miss_reasons(job: Job, why: list[str]) -> Entry | None:
    """Step 3: why this is built (into ``why``); returns this output's last cache entry."""
    req = job.req
    if not job.use_cache:
        why.append("cache not used: " + ("--run runs the program, a side effect no cache can replay"
                                         if req.run else "--no-cache"))
    elif req.reproducible_check:
        why.append("cache not consulted: --reproducible-check always builds twice")
    last = job.cache.last_for(job.output) if job.use_cache else None
    if job.use_cache and not req.reproducible_check and not why:
        why += explain_miss(job.parts, job.inputs_map, last)
    return last


def _compile(job: Job, data: Mapping[str, bytes] | None, last: Entry | None,
             why: list[str]) -> BuildResult:
    """Step 4: compile in a fresh root, store the artifact, record the entry, place it."""
    if data is None:
        data = read_inputs(job.graph.files)
    # The CAS modules are needed after the compiler only for an artifact over one chunk (a
    # smaller one is stored as a raw block without them); judge by this output's last artifact,
    # so a small one does not pay their import's CPU on every miss.
    if job.use_cache and (last is None or last.size > CHUNK):
        job.bg.run(preload_cas)
    if job.attester is not None:
        from cheng_build.build.provenance import inputs_path

        job.attester.preload(inputs_path(job.meta_path.parent, job.output.name), data)
    meter = None
    if job.req.ledger is not None:
        from cheng_build.build.metering import ChildMeter

        meter = ChildMeter()
    compiled, runs = fresh_build(job.req, job.comp, job.graph, data, job.argv, job.env,
                                  job.out_rel, job.staged, job.bg)
    if meter is not None:
        _record_usage(job, meter.stop())
    from cheng_build.core.sha256 import sha256

    sha = sha256(compiled.data).hexdigest()
    output_cid, ref = _store_artifact(job, compiled.data, sha)
    entry = Entry(job.parts, job.inputs_map, ref, sha, len(compiled.data), compiled.mode,
                  compiled.stdout, compiled.stderr, {"output_cid": output_cid})
    if job.use_cache:
        job.cache.record(entry, job.output)
    if job.req.run and not compiled.data:
        job.stat_cache.save()
        return BuildResult(Status.BUILT, job.graph, job.root_id, key=job.parts.key,
                           explain=tuple(why), stdout=compiled.stdout, stderr=compiled.stderr,
                           compiled=runs, files_read=job.stat_cache.reads)
    return _finish(job, Status.BUILT, entry, compiled.data, why, runs)


def _store_artifact(job: Job, data: bytes, sha: str) -> tuple[str, str]:
    """The artifact's CID and its reference in the artifact store (stored when caching)."""
    if job.use_cache:
        if len(data) <= CHUNK:
            # One block: its CID is known from the digest, so its durable write (two fsyncs)
            # overlaps the output's and the meta's instead of preceding them. A crash before it
            # lands leaves an entry whose artifact is missing: a rebuild, never a wrong build.
            from cheng_build.build.fastcid import raw_cid

            output_cid = raw_cid(sha)
            job.bg.run(lambda: job.cache.store.put(data))
            return output_cid, output_cid
        ref = job.cache.store.put(data)  # the artifact's CID in the CAS
        return ref, ref
    from cheng_build.build.fastcid import raw_cid

    if len(data) <= CHUNK:
        output_cid = raw_cid(sha)
    else:
        from cheng_build.cas.importer import add_bytes

        output_cid = str(add_bytes(None, data))
    return output_cid, output_cid


def _finish(job: Job, status: Status, entry: Entry, data: bytes | None, why: Sequence[str],
            compiled: int) -> BuildResult:
    """Step 5: the artifact in place, the meta beside it, the attestation; the result."""
    req, output, meta_path, pkg = job.req, job.output, job.meta_path, job.pkg
    meta_blob = _meta(req, job.cwd, job.source, output, entry, job.parts, job.comp, job.epoch, pkg)
    cache, stat_cache = job.cache, job.stat_cache
    if data is not None and meta_path != output:
        # A fresh build: the meta's durable write (two fsyncs) overlaps the artifact's. On a
        # hit the artifact may turn out to be gone (rebuild), so the meta waits for it there.
        job.bg.run(lambda: write_if_changed(meta_path, meta_blob))
        place(output, data, entry.sha256, entry.size, entry.mode,
               lambda: cache.store.get(entry.ref), stat_cache)
    else:
        place(output, data, entry.sha256, entry.size, entry.mode,
               lambda: cache.store.get(entry.ref), stat_cache)
        write_if_changed(meta_path, meta_blob)
    att = None
    if job.attester is not None:
        graph = job.graph
        att = job.attester.write(_facts(output, entry, graph, job.parts, job.out_rel, pkg),
                                 job.parts.key, meta_path.parent, lambda: read_inputs(graph.files))
    cache.note_target(entry, output)
    stat_cache.save()
    watch: tuple[str, ...] = ()
    if status is Status.HIT and job.epoch_source != "GIT":  # a new commit is no file we see
        watch = _hit_watch(job, att)
    return BuildResult(status, job.graph, job.root_id, output=output, meta=meta_path,
                       key=job.parts.key, explain=tuple(why), stdout=entry.stdout,
                       stderr=entry.stderr, compiled=compiled, files_read=stat_cache.reads,
                       warnings=pkg.warnings if pkg else (), package_steps=pkg.steps if pkg else (),
                       attestation=att, watch=watch, valid_until=pkg.valid_until if pkg else None)


def _hit_watch(job: Job, att: Path | None) -> tuple[str, ...]:
    """Every path a hit's answer rests on: what the stat cache and the resolver looked at, the
    compiler's discovery (config files, each ``chengc`` on PATH), the action-cache entry, the
    outputs in place and, with ``--sign``, the remembered envelope and the files beside it."""
    req, cwd, comp, stat_cache = job.req, job.cwd, job.comp, job.stat_cache
    key, output = job.parts.key, job.output
    w = stat_cache.watch
    home = Path(req.env.get("HOME") or os.path.expanduser("~"))
    if req.env.get("PKG_CONFIG"):
        w(Path(req.env["PKG_CONFIG"]).expanduser())
    w(cwd / compiler_mod.CONFIG_NAME, home / ".cheng" / compiler_mod.CONFIG_NAME, comp.path)
    if comp.source is compiler_mod.CompilerSource.PATH:
        w(*(os.path.join(d, "chengc") for d in req.env.get("PATH", "").split(os.pathsep) if d))
    w(*job.cache.files_for(key, output), output, job.meta_path)
    if att is not None and job.attester is not None:
        from cheng_build.build.provenance import inputs_path, stamp_name

        w(att, inputs_path(att.parent, output.name),
          job.attester.stamp_dir / stamp_name(key, job.attester.key_digest, output.name))
    return tuple(stat_cache.watched)


def _record_usage(job: Job, use: Any) -> None:
    """Write the metered compile's usage event to ``--ledger`` (:mod:`.metering`)."""
    import socket

    from cheng_build.build import metering

    req, pkg = job.req, job.pkg
    assert req.ledger is not None
    ledger = req.ledger if req.ledger.is_absolute() else job.cwd / req.ledger
    package_id = str(pkg.package_fields.get("package_id", "")) if pkg is not None else ""
    executor = req.env.get("CHENGC_EXECUTOR_ID") or f"node:{socket.gethostname()}"
    metering.record(ledger, use, task_id=f"chengc:{job.root_id}",
                    package_id=package_id or f"local:{job.output.name}", executor_id=executor,
                    packages=metering.used_packages(pkg.dependencies if pkg is not None else ()),
                    config_values=compiler_mod.config_table(req.env, job.cwd, "metering"))


def _attester(req: BuildRequest, stat_cache: StatCache, chengc_cache: Path) -> Attester | None:
    """The signer of ``--sign`` (None without it); nothing is imported for an unsigned build."""
    if not req.sign:
        return None
    from cheng_build.build.provenance import Attester, key_digest

    return Attester(req.sign, key_digest(req.sign, lambda p: stat_cache.file_digest(p)[1]),
                    chengc_cache / "attest")


def _facts(output: Path, entry: Entry, graph: ImportGraph, parts: KeyParts, out_rel: str,
           pkg: PackageContext | None) -> BuildFacts:
    from cheng_build.build.provenance import BuildFacts, flags_without_out

    return BuildFacts(
        artifact_name=output.name, artifact_sha256=entry.sha256,
        artifact_cid=str(entry.extra.get("output_cid", "")), entry=graph.entry.name,
        flags=flags_without_out(parts.flags), target=parts.target, env=parts.env, out=out_rel,
        input_root=parts.input_root, compiler_digest=parts.compiler_digest,
        dependencies=tuple(pkg.dependencies) if pkg is not None else ())


def _meta(req: BuildRequest, cwd: Path, source: Path, output: Path, entry: Entry, parts: KeyParts,
          comp: compiler_mod.Compiler, created_ts: str, pkg: PackageContext | None) -> bytes:
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


__all__ = ["Job", "build_graph", "input_root"]
