"""A workspace's identity: which checkout a node holds, so it only claims work it can do.

A git checkout is its ``HEAD`` commit (``git:<sha>``); anything else is the SHA-256 of its
sorted (path, SHA-256 of contents) list (``tree:<hex>``), skipping dot-directories (``.git``,
``.venv``, caches). Two nodes with the same identity hold the same files, so a task's local
input paths mean the same thing on both: no file ever has to cross between them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

MAX_FILES = 50_000


class WorkspaceError(Exception):
    pass


def _git_head(root: Path) -> str | None:
    if not (root / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = r.stdout.strip()
    return f"git:{sha}" if r.returncode == 0 and len(sha) in (40, 64) else None


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if not p.is_file() or p.is_symlink():
                continue
            n += 1
            if n > MAX_FILES:
                raise WorkspaceError(f"workspace {root} has more than {MAX_FILES} files: make it a git "
                                     "checkout (its commit is then its identity)")
            fh = hashlib.sha256()
            with open(p, "rb") as fp:
                while block := fp.read(1 << 20):
                    fh.update(block)
            rel = p.relative_to(root).as_posix()
            h.update(rel.encode() + b"\0" + fh.digest())
    return "tree:" + h.hexdigest()


def identity(root: str | os.PathLike[str]) -> str:
    """``git:<commit>`` or ``tree:<sha256>`` of the workspace at ``root``.

    Raises:
        WorkspaceError: not a directory, or too large to hash.
    """
    p = Path(root).resolve()
    if not p.is_dir():
        raise WorkspaceError(f"workspace {root} is not a directory")
    return _git_head(p) or _tree_hash(p)


def find_root(dag_file: str | os.PathLike[str]) -> Path:
    """The workspace a DAG file belongs to: its git top level, else its own directory."""
    d = Path(dag_file).resolve().parent
    for cand in (d, *d.parents):
        if (cand / ".git").exists():
            return cand
    return d
