"""Does a path, with every symlink on it resolved on the real tree, stay inside a root?

A text-only check of a link's target (``normpath(dirname(link) + target)``) is wrong as soon as
the target runs through another link: ``d1/.../d30/l -> ../..(x30)`` and
``src/evil.cheng -> ../d1/.../d30/l/../..(x31)/etc/passwd`` both look contained as text (the
``l/..`` cancels), yet the second leaves the tree, because ``l`` is itself a climb upward.
The only sound answer resolves the path component by component on the file system, which is
what :func:`os.path.realpath` does (following each link where it is met, loops included).
"""

from __future__ import annotations

import os

_O_PATH = getattr(os, "O_PATH", None)


def _resolved(path: str | os.PathLike[str]) -> str:
    """The kernel's resolution of ``path`` where it can give one (Linux: open with ``O_PATH``,
    read ``/proc/self/fd/N``; three system calls, against one ``lstat`` per component in
    :func:`os.path.realpath`, which is pure Python and shows on chengc's no-op path); else, or
    for a path that does not open (a dangling link), :func:`os.path.realpath`."""
    if _O_PATH is not None:
        try:
            fd = os.open(path, _O_PATH | os.O_CLOEXEC)
        except OSError:
            return os.path.realpath(path)
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("/"):
                return target
        except OSError:
            pass
        finally:
            os.close(fd)
    return os.path.realpath(path)


def real_root(root: str | os.PathLike[str]) -> str:
    """``root`` with its own links resolved (the reference every path is compared against)."""
    return _resolved(root)


def outside(real_root_path: str, path: str | os.PathLike[str]) -> str | None:
    """Where ``path`` really leads when that is outside ``real_root_path``; None when inside.

    ``real_root_path`` must come from :func:`real_root`. A dangling link resolves as far as the
    tree allows; what remains is judged as text below its last existing directory.
    """
    real = _resolved(path)
    if real == real_root_path or real.startswith(real_root_path.rstrip(os.sep) + os.sep):
        return None
    return real


__all__ = ["outside", "real_root"]
