"""*How* a task process is started: cleared env, own directory, rlimits, and real isolation.

(Over 400 lines: the three modes share one launch path, one set of rlimits and one pids
cgroup, and each isolation property is easiest to audit where the argv that enforces it is
built; the probes that prove them are in :mod:`.probe`.)

Three modes, best first; :func:`detect_mode` probes the machine once per process:

``bubblewrap``
    ``bwrap`` works here: the system is mounted read-only, ``$HOME``, ``/home``, ``/root`` and
    ``/tmp`` are replaced by empty tmpfs, the DAG's directory is visible read-only, only the task
    directory (plus declared ``writable`` dirs) can be written, and the task gets its own user,
    pid, ipc, uts and network namespaces (no network unless ``network = true``).
``namespaces``
    No working bwrap, but ``unshare`` can create user + mount + network + pid namespaces: no
    network but a loopback of its own (``lo`` up, as bwrap gives), own pids and ``/proc`` (the
    engine's environment is not visible), ``/sys/fs/cgroup`` covered and every capability dropped
    (see :mod:`nsinit`), but the file system is not read-only. Said plainly in ``cis doctor``.
``unsandboxed``
    Neither works: only the cleared environment, the task directory as cwd, and rlimits. A task
    whose ``sandbox.isolation = "required"`` is refused.

In every mode the task's environment is exactly its declared ``env`` (nothing is inherited),
rlimits are set (CPU seconds, address space, open files, processes, file size) and the process
gets ``PR_SET_PDEATHSIG`` so it dies with the engine (a resumed run never races an orphan).

The kernel exempts uid 0 from ``RLIMIT_NPROC``, so when the engine runs as root the process limit
is enforced by a ``pids`` cgroup per task (cgroup v1 ``/sys/fs/cgroup/pids``, when writable);
failing that, a sandboxed task that writes only its own directory and whose program ``nobody`` can
reach runs as ``nobody`` (65534). Otherwise the limit is not enforced for root, and
``cis verify-sandbox`` says so.

``CIS_SANDBOX=bubblewrap|namespaces|unsandboxed`` forces a mode (``bwrap`` is accepted for
``bubblewrap``; tests use it to prove the fallbacks are honest).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import resource
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cheng_build.cis.dag.model import Isolation, SandboxConfig

NOBODY = 65534
_PR_SET_PDEATHSIG = 1


class SandboxMode(enum.Enum):
    """What isolation this machine gives."""

    BUBBLEWRAP = "bubblewrap"
    NAMESPACES = "namespaces"
    UNSANDBOXED = "unsandboxed"


_MODE: SandboxMode | None = None
_LIBC: Any = None


def _probe(argv: Sequence[str]) -> bool:
    try:
        r = subprocess.run(argv, env={}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def unshare_path() -> str | None:
    return shutil.which("unshare")


_PROBE_VERSION = "2"  # bump when a mode's probe changes: a cached answer is then probed again
NSINIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nsinit.py")
# Its native twin (built with the C core): about 1 ms per task instead of a Python start-up.
NSINIT_NATIVE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "_native", "cis-nsinit")
# Root-owned directories a namespaces task (root in its user namespace, so the engine's uid
# outside) must not write: the pids cgroup it was put in is one of them.
NS_COVERED = ("/sys/fs/cgroup",)


def _cache_key() -> str:
    parts = [_PROBE_VERSION, os.uname().release, str(os.geteuid()), " ".join(nsinit_argv())]
    for prog in (bwrap_path(), unshare_path()):
        try:
            st = os.stat(prog) if prog else None
        except OSError:
            st = None
        parts.append(f"{prog}:{st.st_mtime_ns}:{st.st_size}" if st else "-")
    return "|".join(parts)


def detect_mode(*, refresh: bool = False, cache_dir: str | os.PathLike[str] | None = None) -> SandboxMode:
    """The best mode that actually works here (probed by running ``/bin/true`` inside it).

    The probe costs a sandbox start, so its answer is kept in ``cache_dir/sandbox-mode`` (the
    run database's directory), keyed by kernel release, uid and the bwrap/unshare binaries.
    """
    global _MODE
    if os.environ.get("CIS_SANDBOX"):
        # The setting wins over any earlier answer in this process: a long-lived process (a
        # node, a test session) may change it between runs.
        return _detect(refresh)
    if _MODE is not None and not refresh:
        return _MODE
    cache = Path(cache_dir) / "sandbox-mode" if cache_dir is not None else None
    if cache is not None and not refresh and not os.environ.get("CIS_SANDBOX"):
        try:
            key, value = cache.read_text().split("\n")[:2]
            if key == _cache_key():
                _MODE = SandboxMode(value)
                return _MODE
        except (OSError, ValueError):
            pass
    mode = _detect(refresh)
    if cache is not None and not os.environ.get("CIS_SANDBOX"):
        try:
            from cheng_build.core.atomic import atomic_write_text

            atomic_write_text(cache, f"{_cache_key()}\n{mode.value}\n")
        except OSError:
            pass
    return mode


def _detect(refresh: bool) -> SandboxMode:
    global _MODE
    forced = os.environ.get("CIS_SANDBOX")
    if forced:
        try:
            _MODE = SandboxMode("bubblewrap" if forced == "bwrap" else forced)
        except ValueError:
            from cheng_build.core.errors import UsageError

            raise UsageError(f"CIS_SANDBOX={forced!r} is not a sandbox mode",
                             how="use bubblewrap, namespaces or unsandboxed") from None
        return _MODE
    true = shutil.which("true") or "/bin/true"
    bw = bwrap_path()
    if bw and _probe([bw, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                      "--unshare-all", "--die-with-parent", true]):
        _MODE = SandboxMode.BUBBLEWRAP
    elif (us := unshare_path()) and _probe(namespaces_argv(us, [true], network=False)):
        _MODE = SandboxMode.NAMESPACES
    else:
        _MODE = SandboxMode.UNSANDBOXED
    return _MODE


class IsolationRefusedError(Exception):
    """The task demands isolation this machine cannot give."""


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything needed to start one task process."""

    argv: tuple[str, ...]  # argv[0] already resolved to an absolute path
    env: Mapping[str, str]
    cwd: str
    task_dir: str
    sandbox: SandboxConfig
    read_only: tuple[str, ...] = ()  # extra dirs to show read-only (the DAG's directory)
    writable: tuple[str, ...] = ()  # extra dirs the task may write
    home: str = field(default_factory=lambda: str(Path.home()))


def effective_mode(cfg: SandboxConfig, machine: SandboxMode | None = None) -> SandboxMode:
    """The mode a task with ``cfg`` runs in here.

    Raises:
        IsolationRefusedError: ``isolation = "required"`` but bubblewrap does not work here.
    """
    machine = machine or detect_mode()
    if cfg.isolation is Isolation.NONE:
        return SandboxMode.UNSANDBOXED
    if cfg.isolation is Isolation.REQUIRED and machine is not SandboxMode.BUBBLEWRAP:
        raise IsolationRefusedError(
            f"the task demands isolation but this machine is {machine.value}")
    return machine


_PROC_COUNT: list[float] = [0.0, 0.0]  # (when counted, count)


def _user_process_count() -> int:
    """Processes (threads count too, as the kernel does) of our real uid; cached for 2 s."""
    import time

    now = time.monotonic()
    if now - _PROC_COUNT[0] < 2.0:
        return int(_PROC_COUNT[1])
    uid = str(os.getuid())
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status", "rb") as fh:
                fields = dict(line.split(b":", 1) for line in fh.read().splitlines() if b":" in line)
        except OSError:
            continue
        if fields.get(b"Uid", b"").split()[:1] == [uid.encode()]:
            n += int(fields.get(b"Threads", b"1").strip() or 1)
    _PROC_COUNT[:] = [now, float(n)]
    return n


def _rlimits(cfg: SandboxConfig) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    if cfg.cpu_seconds:
        out.append((resource.RLIMIT_CPU, cfg.cpu_seconds))
    if cfg.memory_mib:
        out.append((resource.RLIMIT_AS, cfg.memory_mib * 1024 * 1024))
    if cfg.open_files:
        out.append((resource.RLIMIT_NOFILE, cfg.open_files))
    if cfg.processes:
        # RLIMIT_NPROC counts every process of the real uid, not just the task's; for a normal
        # user the limit is therefore "this many more than the user already runs".
        extra = 0 if os.geteuid() == 0 else _user_process_count()
        out.append((resource.RLIMIT_NPROC, cfg.processes + extra))
    if cfg.file_size_mib:
        out.append((resource.RLIMIT_FSIZE, cfg.file_size_mib * 1024 * 1024))
    return out


_PIDS_V1 = "/sys/fs/cgroup/pids"
_CGROUPS: dict[int, str] = {}
_CG_SEQ = [0]
# Engines also run in worker threads of one process (a `cis node` runs one per claimed task):
# the cgroup sequence and the stale list are shared, so they change under a lock.
_STALE_LOCK = threading.Lock()


def pids_cgroup_available() -> bool:
    """Can this process create pids cgroups (root with cgroup v1's pids controller)?"""
    return os.geteuid() == 0 and os.path.isfile(os.path.join(_PIDS_V1, "cgroup.procs")) and \
        os.access(_PIDS_V1, os.W_OK)


def _make_pids_cgroup(limit: int) -> str | None:
    with _STALE_LOCK:  # engines in worker threads of one process must not share a name
        _CG_SEQ[0] += 1
        seq = _CG_SEQ[0]
    path = os.path.join(_PIDS_V1, f"cis-{os.getpid()}-{seq}")
    try:
        os.mkdir(path)
        with open(os.path.join(path, "pids.max"), "w") as fh:
            fh.write(str(limit))
    except OSError:
        return None
    return path


_STALE: list[str] = []


def release(popen: subprocess.Popen[bytes], *, wait: bool = False) -> None:
    """Free what :func:`launch` set up for a process that has exited (its pids cgroup).

    A cgroup can stay busy for a moment while the task's pid namespace is torn down; rather than
    stall the engine, a busy one is retried on later calls (``wait=True`` retries up to ~0.5 s).
    """
    path = _CGROUPS.pop(popen.pid, None)
    with _STALE_LOCK:
        if path:
            _STALE.append(path)
    _sweep_stale(wait)


def _sweep_stale(wait: bool) -> None:
    for attempt in range(50 if wait else 1):
        with _STALE_LOCK:
            for p in list(_STALE):
                try:
                    os.rmdir(p)
                except FileNotFoundError:
                    pass
                except OSError:
                    continue
                _STALE.remove(p)
            if not _STALE:
                return
        if wait and attempt < 49:
            import time

            time.sleep(0.01)


_SWEPT_AT = [-1e18]  # monotonic time of this process's last sweep
SWEEP_EVERY_S = 10.0


def sweep_orphan_cgroups() -> None:
    """Remove empty pids cgroups left by engines that died (``cis-<engine pid>-<n>``).

    At most once every ``SWEEP_EVERY_S`` per process: an orphan needs an engine killed, and a
    ``cis node`` starts an engine per task it runs (walking the cgroup tree each time was a
    twentieth of its CPU)."""
    import time

    now = time.monotonic()
    if now - _SWEPT_AT[0] < SWEEP_EVERY_S:
        return
    _SWEPT_AT[0] = now
    if not pids_cgroup_available():
        return
    try:
        names = os.listdir(_PIDS_V1)
    except OSError:
        return
    for name in names:
        if not name.startswith("cis-"):
            continue
        try:
            pid = int(name.split("-")[1])
            os.kill(pid, 0)
            continue  # its engine is alive
        except (ValueError, IndexError):
            continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(_PIDS_V1, name))


def release_all() -> None:
    """Retry removing every busy cgroup left by :func:`release` (end of a run)."""
    _sweep_stale(wait=True)


@functools.lru_cache(maxsize=256)
def _reachable_by_others(path: str) -> bool:
    """Can a user other than the owner run ``path`` (every ancestor searchable by "other")?

    Cached: a run asks this for the same program and directories for every task.
    """
    import stat

    real = os.path.realpath(path)
    parts = real.split("/")
    for i in range(2, len(parts)):
        try:
            if not os.stat("/".join(parts[:i])).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    try:
        return bool(os.stat(real).st_mode & stat.S_IXOTH)
    except OSError:
        return False


def _child_setup(limits: list[tuple[int, int]], cgroup: str | None = None) -> Callable[[], None]:
    global _LIBC
    if _LIBC is None:
        import ctypes  # only on this fallback path: it costs start-up time

        _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded in the parent: nothing to load after fork
    libc = _LIBC

    def setup() -> None:
        # Runs in the child after fork and after any uid change (which would clear it).
        libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
        if cgroup is not None:
            fd = os.open(os.path.join(cgroup, "cgroup.procs"), os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        for res, value in limits:
            _soft, hard = resource.getrlimit(res)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(res, (cap, cap))

    return setup


def _hidden_dirs(home: str) -> list[str]:
    out = []
    for d in (home, "/home", "/root", "/tmp", "/var/tmp", "/run"):
        if d and os.path.isdir(d) and d != "/" and d not in out:
            out.append(d)
    return out


def program_prefixes(program: str, hidden: Sequence[str]) -> list[str]:
    """Installation prefixes (``<prefix>/bin/prog``) of a program that lives in a hidden dir.

    A Python from pyenv lives in ``~/.pyenv/versions/X``: hiding ``$HOME`` must not hide the
    program the task runs, so its prefix (and nothing else of ``$HOME``) is shown read-only.
    """
    out: list[str] = []
    for p in (os.path.abspath(program), os.path.realpath(program)):
        if any(p == h or p.startswith(h.rstrip("/") + "/") for h in hidden):
            prefix = os.path.dirname(os.path.dirname(p))
            if prefix not in hidden and prefix not in out and prefix != "/":
                out.append(prefix)
    return out


_SOCKET_SCAN_LIMIT = 100_000  # directory entries per scan; a larger tree is scanned only so far
_SOCKET_SCAN_TTL_S = 2.0
_SOCKET_SCANS: dict[str, tuple[float, tuple[str, ...]]] = {}


def visible_sockets(dirs: Sequence[str]) -> list[str]:
    """UNIX sockets (and other non-file, non-dir, non-link entries such as FIFOs) under
    ``dirs``, links not followed. A run's tasks share one DAG directory, so a scan is reused for
    ``_SOCKET_SCAN_TTL_S`` seconds."""
    import stat
    import time

    out: list[str] = []
    now = time.monotonic()
    for top in dict.fromkeys(dirs):
        cached = _SOCKET_SCANS.get(top)
        if cached is not None and now - cached[0] < _SOCKET_SCAN_TTL_S:
            out += cached[1]
            continue
        found: list[str] = []
        todo, seen = [top], 0
        while todo and seen < _SOCKET_SCAN_LIMIT:
            try:
                it = os.scandir(todo.pop())
            except OSError:
                continue
            with it:
                for e in it:
                    seen += 1
                    if e.is_dir(follow_symlinks=False):
                        todo.append(e.path)
                    elif not e.is_file(follow_symlinks=False) and not e.is_symlink():
                        with contextlib.suppress(OSError):
                            if stat.S_ISSOCK(e.stat(follow_symlinks=False).st_mode):
                                found.append(e.path)
        _SOCKET_SCANS[top] = (now, tuple(found))
        out += found
    return list(dict.fromkeys(out))


@functools.cache
def _native_nsinit_ok() -> bool:
    return os.access(NSINIT_NATIVE, os.X_OK)


def nsinit_argv() -> list[str]:
    """How :mod:`nsinit` runs: the native ``cis-nsinit`` when it was built, else the Python
    one (``CIS_NSINIT=python`` forces it; the tests prove both)."""
    if os.environ.get("CIS_NSINIT") != "python" and _native_nsinit_ok():
        return [NSINIT_NATIVE]
    import sys

    return [sys.executable, "-I", "-S", NSINIT]


def namespaces_argv(unshare: str, argv: Sequence[str], *, network: bool) -> list[str]:
    """``unshare`` (user, mount, pid with its own /proc, and network unless ``network``) then
    :mod:`nsinit`, which brings ``lo`` up, covers :data:`NS_COVERED` and drops every capability
    before it becomes ``argv``."""
    flags = ["-U", "-r", "-m", "-p", "-f", "--kill-child", "--mount-proc"]
    init = nsinit_argv()
    if not network:
        flags.append("-n")
        init.append("--lo")
    for d in NS_COVERED:
        init += ["--cover", d]
    return [unshare, *flags, "--", *init, "--", *argv]


def build_argv(spec: LaunchSpec, mode: SandboxMode) -> list[str]:
    """The full argv (sandbox wrapper + task argv) for ``mode``."""
    if mode is SandboxMode.UNSANDBOXED:
        return list(spec.argv)
    if mode is SandboxMode.NAMESPACES:
        return namespaces_argv(unshare_path() or "unshare", spec.argv,
                               network=spec.sandbox.network)
    bw = bwrap_path() or "bwrap"
    argv = [bw, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for d in _hidden_dirs(spec.home):
        argv += ["--tmpfs", d]  # replaced by empty dirs; what tasks need is bound back below
    hidden = _hidden_dirs(spec.home)
    for d in (*spec.read_only, *program_prefixes(spec.argv[0], hidden)):
        if os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    for d in (spec.task_dir, *spec.writable):
        if os.path.isdir(d):
            argv += ["--bind", d, d]
    # "No network" must also cover UNIX sockets a host process listens on inside the dirs the
    # task is shown: each is replaced by /dev/null in the task's view.
    for sock in visible_sockets((*spec.read_only, *spec.writable)):
        argv += ["--ro-bind", "/dev/null", sock]
    # No --new-session: the engine already gave the task its own session without a terminal, and
    # keeping bwrap and the task in one process group lets SIGTERM reach the task itself.
    argv += ["--chdir", spec.cwd, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL"]
    if spec.sandbox.network:
        argv.append("--share-net")
    return [*argv, "--", *spec.argv]


def _drop_to_nobody(spec: LaunchSpec, mode: SandboxMode) -> bool:
    # Only when root, sandboxed, limited in processes, and writing nothing but its own directory
    # (we cannot hand a user's project directory to nobody).
    return (os.geteuid() == 0 and mode is SandboxMode.BUBBLEWRAP and spec.sandbox.processes > 0
            and not spec.writable and os.path.realpath(spec.cwd).startswith(
                os.path.realpath(spec.task_dir))
            and all(_reachable_by_others(p) for p in (spec.argv[0], os.path.dirname(spec.task_dir),
                                                      *spec.read_only)))


_PRLIMIT_FLAGS = {resource.RLIMIT_CPU: "cpu", resource.RLIMIT_AS: "as",
                  resource.RLIMIT_NOFILE: "nofile", resource.RLIMIT_NPROC: "nproc",
                  resource.RLIMIT_FSIZE: "fsize"}


@functools.cache
def _util_linux() -> tuple[str | None, str | None]:
    return shutil.which("setpriv"), shutil.which("prlimit")


def wrapped_argv(spec: LaunchSpec, mode: SandboxMode) -> list[str]:
    """The command line :func:`launch` runs for ``spec`` (without a cgroup join): what the
    benchmark spawns bare to separate the engine's own cost from the process's."""
    limits = _rlimits(spec.sandbox)
    drop = os.geteuid() == 0 and spec.sandbox.processes > 0 and _drop_to_nobody(spec, mode)
    wrapper = _exec_wrapper(limits, drop, None, pdeathsig=mode is not SandboxMode.BUBBLEWRAP)
    return [*(wrapper or []), *build_argv(spec, mode)]


_JOIN_CGROUP = 'echo $$ > "$0" && exec "$@"'  # fixed text; the task's argv follows as "$@"


def _exec_wrapper(limits: list[tuple[int, int]], drop: bool, cgroup: str | None,
                  pdeathsig: bool = True) -> list[str] | None:
    """``setpriv --pdeathsig KILL [--reuid nobody] -- prlimit --<res>=<n> --``, or None when
    util-linux's setpriv/prlimit are missing.

    Why not ``preexec_fn``: a Python callback in the child forces ``fork()`` of the whole engine
    instead of ``vfork()``, which costs several ms per task; two tiny execs cost about one.
    """
    sp, pl = _util_linux()
    if not sp or not pl:
        return None
    argv: list[str] = []
    if pdeathsig or drop:
        argv += [sp, "--pdeathsig", "KILL"]
        if drop:
            argv += ["--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]
        argv.append("--")
    argv.append(pl)
    for res, value in limits:
        _soft, hard = resource.getrlimit(res)
        cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
        argv.append(f"--{_PRLIMIT_FLAGS[res]}={cap}:{cap}")
    argv.append("--")
    if cgroup is not None:
        # Join the pids cgroup before anything else runs, then become the task.
        argv += ["/bin/sh", "-c", _JOIN_CGROUP, os.path.join(cgroup, "cgroup.procs")]
    return argv


def launch(spec: LaunchSpec, mode: SandboxMode, *, stdout: IO[bytes] | int,
           stderr: IO[bytes] | int) -> subprocess.Popen[bytes]:
    """Start the task process (its own session, so the engine can signal the whole group).

    Raises:
        OSError: the program cannot be started (not found, not executable).
    """
    argv = build_argv(spec, mode)
    limits = _rlimits(spec.sandbox)
    root_limited = os.geteuid() == 0 and spec.sandbox.processes > 0
    drop = root_limited and _drop_to_nobody(spec, mode)
    cgroup = _make_pids_cgroup(spec.sandbox.processes) \
        if root_limited and not drop and pids_cgroup_available() else None
    # bwrap --die-with-parent already ties bwrap and the task to the engine (prlimit and the
    # cgroup stub exec into bwrap, so its parent is the engine); other modes need setpriv for it.
    wrapper = _exec_wrapper(limits, drop, cgroup, pdeathsig=mode is not SandboxMode.BUBBLEWRAP)
    if drop:
        _hand_to_nobody(spec.task_dir)
    cwd = spec.cwd if mode is not SandboxMode.BUBBLEWRAP else "/"
    try:
        if wrapper is not None:
            # Fast path: vfork + exec of the wrapper, which sets the limits and execs the task.
            popen = subprocess.Popen([*wrapper, *argv], env=dict(spec.env), cwd=cwd,
                                     stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                     close_fds=True, start_new_session=True)
        else:
            # No util-linux: the limits are set by a callback in the forked child (slower).
            popen = subprocess.Popen(
                argv, env=dict(spec.env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout,
                stderr=stderr, close_fds=True, start_new_session=True,
                preexec_fn=_child_setup(limits, cgroup))
    except BaseException:
        if cgroup:
            with contextlib.suppress(OSError):
                os.rmdir(cgroup)
        raise
    if cgroup:
        _CGROUPS[popen.pid] = cgroup
    return popen


def _hand_to_nobody(task_dir: str) -> None:
    # A fresh task directory holds only the log files the engine just created.
    with os.scandir(task_dir) as it:
        for entry in it:
            os.lchown(entry.path, NOBODY, NOBODY)
    os.chown(task_dir, NOBODY, NOBODY)


def process_limit_enforced(spec: LaunchSpec, mode: SandboxMode) -> bool:
    """Will ``spec.sandbox.processes`` actually bind (the kernel exempts root from RLIMIT_NPROC)?"""
    if not spec.sandbox.processes:
        return False
    if os.geteuid() != 0:
        return True
    return _drop_to_nobody(spec, mode) or pids_cgroup_available()


def resolve_program(program: str, env: Mapping[str, str]) -> str | None:
    """Absolute path of ``program``: as given when it has a slash, else searched on the task's
    declared ``PATH`` and then the engine's own ``PATH`` (the engine finds programs; the task
    still gets only its declared env)."""
    if "/" in program:
        return program if os.access(program, os.X_OK) else None
    return shutil.which(program, path=env.get("PATH")) or shutil.which(program)


def make_read_only(path: str | os.PathLike[str]) -> None:
    """Checkpoint: keep a failed task's directory for inspection, read-only (files 0444, dirs 0555)."""
    for root, dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, 0o444)
        for name in dirs:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, 0o555)
    os.chmod(path, 0o555)
