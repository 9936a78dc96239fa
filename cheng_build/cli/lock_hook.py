"""The lock check behind ``hooks/cheng-lock-verify`` (pre-commit) and ``hooks/ci-verify-lock`` (CI).

For every package directory touched (a staged ``cheng.lock.*`` or ``cheng-package.*``), or every
package directory of the repository in CI mode, it runs ``cheng-pkg verify --lock --manifest``:
the lock must verify against the registry (single version, signatures, registry match) and still
match the manifest beside it. A manifest with dependencies but no lock is refused too. Each
directory's result is printed with the verify error lines, so the blocked commit says why.

Flags (before the file names): ``--registry:<path>`` (else ``PKG_REGISTRY``, the config file,
``build/cheng_registry/registry.jsonl``), ``--level:L0|L1|L2``, ``--config:<file>``.
Exit 0 when every directory passes, else the worst exit code (1 failed check, 2 bad input).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cheng_build.core.errors import ChengError

_LOCK_NAMES = ("cheng.lock.toml", "cheng.lock.yaml", "cheng.lock.yml", "cheng.lock.json")
_MANIFEST_NAMES = ("cheng-package.toml", "cheng-package.yaml", "cheng-package.yml",
                   "cheng-package.json")
_PASSED = ("--registry", "--level", "--config")


def _first(directory: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    return None


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    flags: list[str] = []
    files: list[str] = []
    it = iter(argv)
    for tok in it:
        if tok.startswith(_PASSED):
            if "=" in tok or ":" in tok.split("--", 1)[1]:
                flags.append(tok)
            else:
                flags.append(f"{tok}={next(it, '')}")
        elif tok.startswith("--"):
            flags.append(tok)
        else:
            files.append(tok)
    return flags, files


def _repo_dirs() -> list[Path]:
    """Every directory of the repository that holds a lock or a manifest (CI mode)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             check=True, capture_output=True).stdout.decode("utf-8", "replace")
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [os.path.join(d, f) for d, _, fs in os.walk(".") for f in fs]
    wanted = set(_LOCK_NAMES) | set(_MANIFEST_NAMES)
    return sorted({Path(n).parent for n in names if Path(n).name in wanted})


def check_dirs(dirs: Sequence[Path], flags: Sequence[str]) -> int:
    """Verify the lock of each directory; print results; return the worst exit code."""
    from cheng_build.cli.pkg import main as pkg_main

    worst = 0
    for d in dirs:
        lock = _first(d, _LOCK_NAMES)
        manifest = _first(d, _MANIFEST_NAMES)
        if lock is None:
            if manifest is None:
                continue
            broken, has_deps = _manifest_state(manifest)
            if broken is not None:
                # Say why the manifest is bad; "it has dependencies" would be a guess.
                for line in broken.lines("verify"):
                    print(line, file=sys.stderr)
                worst = max(worst, broken.exit_code)
                continue
            if not has_deps:
                continue
            print(f"verify: missing --lock\n  why: {manifest} has dependencies but no "
                  f"cheng.lock.toml beside it\n  how: run 'cheng-pkg resolve --manifest:{manifest} "
                  f"--out:{d / 'cheng.lock.toml'}' and add the lock", file=sys.stderr)
            worst = max(worst, 1)
            continue
        argv = ["verify", f"--lock={lock}", *flags]
        if manifest is not None:
            argv.append(f"--manifest={manifest}")
        print(f"{lock}:", file=sys.stderr)
        worst = max(worst, pkg_main(argv))
    return worst


def _manifest_state(manifest: Path) -> tuple[ChengError | None, bool]:
    """(the error loading ``manifest`` raises or None, whether it has dependencies)."""
    from cheng_build.core.errors import ChengError
    from cheng_build.pkg.manifest import load_manifest

    try:
        return None, bool(load_manifest(manifest).dependencies)
    except ChengError as exc:
        return exc, False


def main(argv: Sequence[str] | None = None, *, ci: bool = False) -> int:
    """Entry point of both hook scripts."""
    flags, files = _split(list(sys.argv[1:] if argv is None else argv))
    if ci and not files:
        dirs = _repo_dirs()
    else:
        picked = {Path(f) for f in files if Path(f).is_dir()}  # CI: package directories
        picked |= {Path(f).parent for f in files
                   if Path(f).name in _LOCK_NAMES or Path(f).name in _MANIFEST_NAMES}
        dirs = sorted(picked)
    return check_dirs(dirs, flags)


__all__ = ["check_dirs", "main"]
