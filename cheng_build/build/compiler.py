"""Finding the real Cheng compiler and handing a build to it.

Discovery order (first hit wins): ``--compiler:<path>``, ``CHENG_COMPILER``, the config file's
``[toolchain] compiler`` (the file ``PKG_CONFIG`` names, else ``./cheng-pkg-config.toml``, else
``~/.cheng/cheng-pkg-config.toml``; a relative path is relative to that file), then the next
``chengc`` on ``PATH`` that is not this wrapper.

The hand-off runs the compiler with a cleared environment (only the allow-list plus the values
we set), a fixed working directory (the staged input tree) and relative paths, so the same
inputs give the same command line wherever they are built. Every way the subprocess can fail
is mapped to a typed error in one place, :func:`compiler_errors`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from enum import Enum
from pathlib import Path

from cheng_build.build.errors import CompilerFailedError, NoCompilerError
from cheng_build.core.record import dataclass

CONFIG_NAME = "cheng-pkg-config.toml"
WRAPPER_MARK = b"cheng_build.cli.chengc"  # what pip's console-script shim for us contains

# Environment variables handed to the compiler from the caller's environment (their values are
# part of the action-cache key). Extend with CHENGC_ENV_ALLOW=NAME,NAME or --env-allow.
DEFAULT_ENV_ALLOW = ("PATH", "CC", "CFLAGS", "LDFLAGS", "SDKROOT", "MACOSX_DEPLOYMENT_TARGET",
                     "CHENG_STDLIB")


class CompilerSource(Enum):
    """Where the compiler path came from (shown by --explain and in errors)."""

    FLAG = "--compiler"
    ENV = "CHENG_COMPILER"
    CONFIG = "config [toolchain] compiler"
    PATH = "PATH"


@dataclass(frozen=True, slots=True)
class Compiler:
    """A compiler executable that exists and may be run."""

    path: Path
    source: CompilerSource


@dataclass(frozen=True, slots=True)
class Invocation:
    """One compiler run: argv (relative paths), env, and the directory it runs in."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a successful compiler run printed."""

    stdout: bytes
    stderr: bytes


def _is_executable(p: Path) -> bool:
    try:
        st = p.stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and os.access(p, os.X_OK)


def is_wrapper(p: Path, self_path: Path | None = None) -> bool:
    """True when ``p`` is this wrapper (the same file, or pip's shim that imports it)."""
    try:
        real = p.resolve()
        if self_path is not None and real == self_path.resolve():
            return True
        with open(real, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return WRAPPER_MARK in head


def _config_file(env: Mapping[str, str], cwd: Path) -> Path | None:
    """The config file, found as :func:`cheng_build.trust.config.find_config_file` finds it:
    ``PKG_CONFIG``, else ``./cheng-pkg-config.toml``, else ``~/.cheng/cheng-pkg-config.toml``."""
    if env.get("PKG_CONFIG"):
        return Path(env["PKG_CONFIG"]).expanduser()
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    for cand in (cwd / CONFIG_NAME, home / ".cheng" / CONFIG_NAME):
        if cand.is_file():
            return cand
    return None


def _config_compiler(env: Mapping[str, str], cwd: Path) -> tuple[Path | None, Path | None]:
    return config_toolchain_path(env, cwd, "compiler")


def config_table(env: Mapping[str, str], cwd: Path, name: str) -> dict[str, object]:
    """The config file's ``[<name>]`` table (empty when there is no file or no such table).

    Raises:
        InputError: the file is not valid TOML, or ``<name>`` is not a table.
    """
    cfg = _config_file(env, cwd)
    if cfg is None or not cfg.is_file():
        return {}
    import tomllib

    from cheng_build.core.errors import InputError

    try:
        doc = tomllib.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read {cfg}", why=str(exc)) from None
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise InputError(f"{cfg}: [{name}] is not a table")
    return dict(table)


def config_toolchain_path(env: Mapping[str, str], cwd: Path, name: str) -> tuple[Path | None, Path | None]:
    """``[toolchain] <name>`` of the config file as a path (relative to the file), and the file.

    Used for ``compiler`` and ``sign_key``; an unreadable file or a missing value gives None.
    """
    cfg = _config_file(env, cwd)
    if cfg is None or not cfg.is_file():
        return None, None
    import tomllib

    try:
        doc = tomllib.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None, cfg
    value = doc.get("toolchain", {}).get(name) if isinstance(doc.get("toolchain"), dict) else None
    if not isinstance(value, str) or not value:
        return None, cfg
    p = Path(os.path.expanduser(value))
    return (p if p.is_absolute() else cfg.parent / p), cfg


def find_compiler(flag: str | None, env: Mapping[str, str], *, cwd: Path | None = None,
                  self_path: Path | None = None) -> Compiler:
    """Find the real compiler.

    Raises:
        NoCompilerError: none found, or the one named explicitly is missing or not executable.
    """
    cwd = cwd or Path.cwd()
    explicit: list[tuple[str | None, CompilerSource]] = [
        (flag, CompilerSource.FLAG), (env.get("CHENG_COMPILER"), CompilerSource.ENV)]
    for value, source in explicit:
        if value:
            p = Path(os.path.expanduser(value))
            p = p if p.is_absolute() else cwd / p
            if not _is_executable(p):
                raise NoCompilerError(f"compiler not found: {value}",
                                      why=f"named by {source.value}; it is missing or not executable",
                                      how="point --compiler:<path> or CHENG_COMPILER at the Cheng compiler")
            return Compiler(p, source)
    cfg_path, cfg_file = _config_compiler(env, cwd)
    if cfg_path is not None:
        if not _is_executable(cfg_path):
            raise NoCompilerError(f"compiler not found: {cfg_path}",
                                  why=f"named by [toolchain] compiler in {cfg_file}",
                                  how="fix the path in the config file, or pass --compiler:<path>")
        return Compiler(cfg_path, CompilerSource.CONFIG)
    searched: list[str] = []
    for d in env.get("PATH", "").split(os.pathsep):
        if not d:
            continue
        cand = Path(d) / "chengc"
        searched.append(os.fspath(cand))
        if _is_executable(cand) and not is_wrapper(cand, self_path):
            return Compiler(cand, CompilerSource.PATH)
    raise NoCompilerError(
        "no Cheng compiler found",
        why="tried --compiler, CHENG_COMPILER, [toolchain] compiler in "
        f"{cfg_file or CONFIG_NAME}, and 'chengc' on PATH other than this wrapper"
        + (f" ({len(searched)} directories)" if searched else " (PATH is empty)"),
        how="pass --compiler:<path>, set CHENG_COMPILER=<path>, or add\n"
        "[toolchain]\ncompiler = \"/path/to/chengc\"\nto cheng-pkg-config.toml",
    )


def compiler_env(caller: Mapping[str, str], allow: Sequence[str], fixed: Mapping[str, str]) -> dict[str, str]:
    """The compiler's whole environment: allow-listed caller values, then our fixed values."""
    env = {k: caller[k] for k in sorted(set(allow)) if k in caller}
    env.update(fixed)
    return env


@contextlib.contextmanager
def compiler_errors(compiler: Path) -> Iterator[None]:
    """Map every way of failing to *start* the compiler to :class:`NoCompilerError`."""
    try:
        yield
    except FileNotFoundError as exc:
        raise NoCompilerError(f"cannot run compiler {compiler}", why=str(exc),
                              how="check that the file exists and its interpreter line is valid") from exc
    except PermissionError as exc:
        raise NoCompilerError(f"cannot run compiler {compiler}", why=str(exc),
                              how=f"chmod +x {compiler}") from exc
    except OSError as exc:
        raise NoCompilerError(f"cannot run compiler {compiler}", why=str(exc),
                              how="check that it is a program for this machine") from exc


def run(compiler: Path, inv: Invocation) -> Outcome:
    """Run the compiler; return its output, or raise with it.

    Raises:
        NoCompilerError: it could not be started.
        CompilerFailedError: it exited non-zero (carries its stdout/stderr and exit code).
    """
    from cheng_build.build.spawn import run_captured  # the cache-hit path never starts a process

    with compiler_errors(compiler):
        code, stdout, stderr = run_captured([os.fspath(compiler), *inv.argv], os.fspath(inv.cwd), inv.env)
    if code != 0:
        how = "the compiler's own messages are above"
        if code < 0:
            how = f"it was killed by signal {-code}"
        raise CompilerFailedError(f"compiler failed with exit code {code}",
                                  returncode=code, stdout=stdout, stderr=stderr,
                                  why=f"{compiler} {' '.join(inv.argv)}", how=how)
    return Outcome(stdout, stderr)


def self_path() -> Path | None:
    """The path this process was started as, to skip ourselves on PATH."""
    try:
        return Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    except OSError:
        return None


__all__ = [
    "DEFAULT_ENV_ALLOW",
    "Compiler",
    "CompilerSource",
    "Invocation",
    "Outcome",
    "compiler_env",
    "compiler_errors",
    "find_compiler",
    "is_wrapper",
    "run",
    "self_path",
]
