"""The chengc driver's own errors, subclasses of the shared tree in :mod:`cheng_build.core.errors`.

Each names one failure a developer can act on; the CLI prints ``chengc: <what>`` and the why/how.
"""

from __future__ import annotations

from cheng_build.core.errors import EXIT_CHECK_FAILED, ChengError, InputError, IntegrityError, UsageError


class NoCompilerError(UsageError):
    """No Cheng compiler could be found, or the one named cannot be run (exit 2)."""


class ImportPathError(InputError):
    """An ``import`` line names a path the Cheng resolver refuses (``..``, empty segment, prefix)."""


class ImportEscapeError(IntegrityError):
    """A module file leads, through symlinks, outside its package (exit 1): a hostile package
    trying to make the build read (and bundle) a file of the machine it runs on."""


class UnresolvedImportError(ChengError):
    """``import cheng/<pkg>/<path>`` resolves to no file under any package root (exit 1)."""


class ImportCycleError(ChengError):
    """The import graph has a cycle; the existing compiler refuses those too (exit 1)."""


class CompilerFailedError(ChengError):
    """The compiler ran and failed; carries its output so the CLI can show it first.

    The exit code is the compiler's own, so ``chengc`` keeps masquerading as the compiler.
    """

    def __init__(self, what: str, *, returncode: int, stdout: bytes, stderr: bytes,
                 why: str | None = None, how: str | None = None) -> None:
        code = returncode if 0 < returncode < 126 else EXIT_CHECK_FAILED
        super().__init__(what, why=why, how=how, exit_code=code)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class NotReproducibleError(IntegrityError):
    """Two builds of the same inputs in two fresh roots gave different outputs (exit 1)."""


class InputChangedError(ChengError):
    """An input file changed while chengc was reading it; nothing was built (exit 1)."""


__all__ = [
    "CompilerFailedError",
    "ImportCycleError",
    "ImportEscapeError",
    "ImportPathError",
    "InputChangedError",
    "NoCompilerError",
    "NotReproducibleError",
    "UnresolvedImportError",
]
