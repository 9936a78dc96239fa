"""How a DAG runs our own programs as tasks: ``<this python> -m cheng_build.cli.<tool>``.

The engine clears the environment and bubblewrap hides ``/tmp``, ``/home``, ``/root``, ``/run``
and ``$HOME`` from tasks, so a task that runs cheng_build must be told where the package is
(``PYTHONPATH``, only when it is not installed in the interpreter's site-packages) and, when that
place is one the sandbox hides (a checkout under ``$HOME`` or ``/tmp``), have it bound back in.
"""

from __future__ import annotations

import enum
import os
import site
from pathlib import Path


class Tool(enum.Enum):
    """Every one of our programs a DAG task (or ``cis`` itself) runs as ``python -m <module>``.

    One place, so a renamed CLI module fails ``tests/test_cis_entrypoints.py`` instead of a run of
    ``cis run closedloop`` half-way through; cis never imports these (cli sits above cis).
    """

    CHENGC = "cheng_build.cli.chengc"
    CIS = "cheng_build.cli.cis"
    CLOSEDLOOP_STEPS = "cheng_build.cli.closedloop_steps"
    COMPUTE_DEMO_STEPS = "cheng_build.cli.compute_demo_steps"
    PKG = "cheng_build.cli.pkg"
    REGISTRY = "cheng_build.cli.registry"
    SETTLE_DEMO_STEPS = "cheng_build.cli.settle_demo_steps"
    SKETCH_STEPS = "cheng_build.cli.sketch_steps"
    STORAGE = "cheng_build.cli.storage"
    STORAGE_DEMO_STEPS = "cheng_build.cli.storage_demo_steps"


def module_argv(tool: Tool) -> tuple[str, str]:
    """``("-m", <module>)``: the arguments after the interpreter that run ``tool``."""
    return ("-m", tool.value)


HIDDEN = ("/tmp", "/var/tmp", "/home", "/root", "/run")


def hidden_by_sandbox(path: str) -> bool:
    """Would bubblewrap's tmpfs over the private directories hide ``path`` from a task?"""
    p = os.path.realpath(path)
    roots = (*HIDDEN, os.path.expanduser("~"))
    return any(p == h or p.startswith(h.rstrip("/") + "/") for h in roots if h and h != "/")


def package_parent() -> str:
    """The directory that holds the ``cheng_build`` package this process runs."""
    return str(Path(__file__).resolve().parents[3])


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


__all__ = ["Tool", "bind_dirs", "hidden_by_sandbox", "module_argv", "package_parent", "pythonpath_env"]
