"""How a DAG runs our own programs as tasks: ``<this python> -m cheng_build.cli.<tool>``.

The engine clears the environment and bubblewrap hides ``/tmp``, ``/home``, ``/root``, ``/run``
and ``$HOME`` from tasks, so a task that runs cheng_build must be told where the package is
(``PYTHONPATH``, only when it is not installed in the interpreter's site-packages) and, when that
place is one the sandbox hides (a checkout under ``$HOME`` or ``/tmp``), have it bound back in.
"""

from __future__ import annotations

import os
import site
from pathlib import Path

HIDDEN = ("/tmp", "/var/tmp", "/home", "/root", "/run")


def hidden_by_sandbox(path: str) -> bool:
    """Would bubblewrap's tmpfs over the private directories hide ``path`` from a task?"""
    p = os.path.realpath(path)
    roots = (*HIDDEN, os.path.expanduser("~"))
    return any(p == h or p.startswith(h.rstrip("/") + "/") for h in roots if h and h != "/")


def package_parent() -> str:
    """The directory that holds the ``cheng_build`` package this process runs."""
    return str(Path(__file__).resolve().parents[2])


def pythonpath_env() -> dict[str, str]:
    """``{"PYTHONPATH": ...}`` when cheng_build is not in the interpreter's site-packages."""
    parent = package_parent()
    installed = {os.path.realpath(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    return {} if os.path.realpath(parent) in installed else {"PYTHONPATH": parent}


def bind_dirs() -> tuple[str, ...]:
    """Directories a task running our programs needs bound in (``sandbox.writable``: the engine
    has no read-only extra binds): the package's parent when the sandbox would hide it."""
    parent = package_parent()
    return (parent,) if hidden_by_sandbox(parent) else ()


__all__ = ["bind_dirs", "hidden_by_sandbox", "package_parent", "pythonpath_env"]
