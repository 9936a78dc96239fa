"""*How* a compile runs: inputs staged in a fresh root (tmpfs when it can), the compiler started
there with a cleared environment, the artifact read back, placed and written only when changed,
and the background work (staged roots deleted, modules preloaded) that overlaps it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cheng_build.build import compiler as compiler_mod
from cheng_build.build.imports import ImportGraph
from cheng_build.build.inputs import StatCache
from cheng_build.build.request import STAGED_OUT_DIR, BuildRequest
from cheng_build.core.record import dataclass

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    pass

@dataclass(frozen=True, slots=True)
class Compiled:
    data: bytes
    mode: int
    stdout: bytes
    stderr: bytes


def _compile_in(root: Path, comp: compiler_mod.Compiler, graph: ImportGraph, data: Mapping[str, bytes],
                argv: Sequence[str], env: Mapping[str, str], out_rel: str, run: bool) -> Compiled | None:
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
            return Compiled(b"", 0o755, outcome.stdout, outcome.stderr)
        from cheng_build.build.errors import CompilerFailedError

        raise CompilerFailedError(
            f"compiler wrote no output at {out_rel}", returncode=1, stdout=outcome.stdout,
            stderr=outcome.stderr, why=f"{comp.path} {' '.join(argv)} exited 0",
            how="check that the compiler honours --out:<path>")
    return Compiled(art.read_bytes(), art.stat().st_mode & 0o777, outcome.stdout, outcome.stderr)


class Background:
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


def preload_cas() -> None:
    try:
        from cheng_build.cas.importer import add_bytes

        add_bytes(None, b"")  # first-use work (CID classes, validators) happens here too
    except Exception:  # a warm-up only: the real call reports any problem
        pass


def fresh_build(req: BuildRequest, comp: compiler_mod.Compiler, graph: ImportGraph,
                 data: Mapping[str, bytes], argv: Sequence[str], env: Mapping[str, str],
                 out_rel: str, staged: list[Path], bg: Background) -> tuple[Compiled, int]:
    """Compile once (or twice for --reproducible-check) in fresh temporary roots.

    ``staged`` may hold a fresh root already holding exactly the inputs (made to compute the
    input root); the first compile uses it instead of staging again.
    """
    runs = 2 if req.reproducible_check else 1
    results: list[Compiled] = []
    for i in range(runs):
        pre = staged.pop() if staged else None
        root = pre or Path(mkdtemp(f"chengc-{i}-", stage_parent(req.env)))
        try:
            res = _compile_in(root, comp, graph, {} if pre else data, argv, env, out_rel, req.run)
            assert res is not None
            results.append(res)
        finally:
            bg.run(lambda r=root: rmtree(r))
    if runs == 2:
        from cheng_build.build.repro import check_same

        check_same(results[0].data, results[1].data, first_id=_artifact_id(results[0].data),
                   second_id=_artifact_id(results[1].data))
    return results[0], runs


def _artifact_id(data: bytes) -> str:
    from cheng_build.core.sha256 import sha256

    return "sha256:" + sha256(data).hexdigest()


def place(output: Path, data: bytes | None, sha256: str, size: int, mode: int, fetch: Any,
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


def write_if_changed(path: Path, blob: bytes) -> None:
    try:
        if path.read_bytes() == blob:
            return
    except OSError:
        pass
    from cheng_build.core.atomic import atomic_write_bytes

    atomic_write_bytes(path, blob)


# Staging a miss makes one directory per package level and one file per input; on a busy disk
# (ext4 journal) those cost ~0.5 ms each, on tmpfs microseconds. Used only when it is mounted
# exec (a compiler may run what it writes in TMPDIR; --run runs the artifact) and has room.
_SHM = "/dev/shm"


_SHM_MIN_FREE = 1 << 30


def mkdtemp(prefix: str, parent: str | None) -> str:
    """A fresh private directory; made here when the parent is known, since importing tempfile
    (shutil, bz2, lzma, random) costs a cache miss ~4 ms of CPU."""
    if parent is None:
        import tempfile

        return tempfile.mkdtemp(prefix=prefix)
    for _ in range(100):
        path = os.path.join(parent, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary directory name under {parent}")


def rmtree(path: Path) -> None:
    """Remove a staged root, best effort (as ``shutil.rmtree(ignore_errors=True)``, without its
    import); links are removed, never followed."""
    for top, dirs, files in os.walk(path, topdown=False):
        for name in files:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(top, name))
        for name in dirs:
            p = os.path.join(top, name)
            with contextlib.suppress(OSError):
                os.unlink(p) if os.path.islink(p) else os.rmdir(p)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def stage_parent(env: Mapping[str, str]) -> str | None:
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


__all__ = ["Background", "Compiled", "fresh_build", "mkdtemp", "place", "preload_cas", "rmtree",
           "stage_parent", "write_if_changed"]
