"""Say so when a failed task was most likely stopped by its sandbox, not by a bug of its own.

A task without ``network = true`` gets a network namespace with only its own loopback, and under
bubblewrap it sees ``$HOME``, ``/home``, ``/root``, ``/tmp``, ``/var/tmp`` and ``/run`` empty and
everything but its own directory and ``exec.sandbox.writable`` read-only. The program then fails
with an ordinary error (``Network is unreachable``, ``Read-only file system``, ``No such file or
directory``) and the user is left to guess; :func:`explain` reads the task's logs for those
errors and turns them into a why/how that names the sandbox and the setting that changes it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

# What programs print when they have no network: the errno texts, and resolvers' messages.
_NO_NET = re.compile(
    r"Network is unreachable|ENETUNREACH|Temporary failure in name resolution|"
    r"Name or service not known|No address associated with hostname|Could not resolve host|"
    r"getaddrinfo failed|Cannot assign requested address|no peer could be reached")
_READ_ONLY = re.compile(r"Read-only file system|EROFS")
_PATH = re.compile(r"(/[^\s'\":,)\]]+)")
HIDDEN = ("/home", "/root", "/tmp", "/var/tmp", "/run")


@dataclass(frozen=True, slots=True)
class Denial:
    """Why the sandbox is the likely cause, and how to let the task through."""

    why: str
    how: list[str]


def _hidden_path(lines: Sequence[str], home: str) -> str | None:
    """A path in a "No such file or directory" line that bubblewrap hides from tasks."""
    for line in lines:
        if "No such file or directory" not in line and "ENOENT" not in line:
            continue
        for path in _PATH.findall(line):
            path = str(path)
            if any(path == d or path.startswith(d.rstrip("/") + "/") for d in (home, *HIDDEN)):
                return path
    return None


def explain(lines: Sequence[str], *, mode: str, network: bool, home: str) -> Denial | None:
    """The sandbox denial the log ``lines`` show, for a task that ran in ``mode``."""
    if mode not in ("bubblewrap", "namespaces"):
        return None
    text = "\n".join(lines)
    if not network and _NO_NET.search(text):
        return Denial(f"the sandbox ({mode}) gives this task no network: only its own loopback, "
                      "nothing outside the machine and no host service on 127.0.0.1",
                      ["if it needs the network: set `network = true` in the task's "
                       "exec.sandbox (exec = { ..., sandbox = { network = true } })",
                       "or run it outside the sandbox: isolation = \"none\" (cis verify-sandbox "
                       "shows what that gives up)"])
    if mode != "bubblewrap":
        return None  # namespaces mode hides and protects no path
    if _READ_ONLY.search(text):
        return Denial("the sandbox (bubblewrap) lets this task write only its own directory and "
                      "exec.sandbox.writable; everything else is read-only",
                      ["list the directory it writes in the task's exec.sandbox.writable "
                       "(or set exec.cwd to it)",
                       "or run it outside the sandbox: isolation = \"none\""])
    path = _hidden_path(lines, home)
    if path is not None:
        where = path if os.path.isdir(path) else os.path.dirname(path)
        return Denial(f"the sandbox (bubblewrap) hides {path}: $HOME, /home, /root, /tmp, "
                      "/var/tmp and /run are empty inside it",
                      ["put what it needs inside the DAG's directory (shown to tasks read-only)",
                       f"or show it \"{where}\" read-write through its exec.sandbox.writable",
                       "or run it outside the sandbox: isolation = \"none\""])
    return None
