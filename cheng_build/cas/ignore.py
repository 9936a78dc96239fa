"""Which paths a package snapshot leaves out: built-in exclusions plus ``.chengignore``.

Built in (matched by name at any depth, like a ``.gitignore`` line without a slash): ``.git``,
``chengcache``, ``build``, ``dist``, ``__pycache__``. Then the root's ``.chengignore`` is read, in
the gitignore syntax people already know (a subset that covers real use):

- blank lines and ``#`` comments are skipped; ``\\#`` and ``\\!`` escape a leading ``#``/``!``;
- ``!pattern`` re-includes what an earlier line excluded (so ``!build/`` keeps a ``build`` dir);
- a trailing ``/`` matches directories only;
- a pattern with no other ``/`` matches a name at any depth; with one it is anchored at the root;
- ``*`` and ``?`` never cross ``/``; ``**`` does (``**/x``, ``a/**``, ``a/**/b``); ``[abc]`` classes.

As in git, once a directory is excluded nothing below it is looked at, so a later ``!`` cannot
re-include a file inside it. Only the snapshot root's ``.chengignore`` is read (one file to audit).
"""

from __future__ import annotations

import re
from pathlib import Path

from cheng_build.core.record import dataclass

__all__ = ["BUILTIN_EXCLUDES", "IgnoreRules", "Rule", "compile_pattern"]

BUILTIN_EXCLUDES: tuple[str, ...] = (".git", "chengcache", "build", "dist", "__pycache__")
IGNORE_FILE = ".chengignore"


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled line: the regex over a root-relative POSIX path, and its flags."""

    pattern: str
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _char_class(body: str) -> str | None:
    """A regex class for the glob class ``[body]`` (never matching ``/``), or ``None`` if invalid."""
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    members = "".join("\\" + ch if ch in "\\[]^" else ch for ch in body)
    cls = f"[^/{members}]" if negate else f"[{members}]"
    try:
        re.compile(cls)
    except re.error:
        return None
    return cls


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i = 0
    n = len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                before_ok = i == 0 or glob[i - 1] == "/"
                after = glob[i + 2:i + 3]
                if before_ok and after == "/":
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                if before_ok and i + 2 == n:
                    out.append(".*")
                    i += 2
                    continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":  # a leading ] is a member, not the end
                j += 1
            k = glob.find("]", j)
            cls = _char_class(glob[i + 1:k]) if k >= 0 else None
            if cls is None:
                out.append(re.escape(c))  # no valid class: a literal [
            else:
                out.append(cls)
                i = k + 1
                continue
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_pattern(line: str) -> Rule | None:
    """Compile one ``.chengignore`` line; ``None`` for blanks and comments."""
    text = line.rstrip("\n").rstrip("\r")
    # Trailing spaces are ignored unless escaped, as in git.
    while text.endswith(" ") and not text.endswith("\\ "):
        text = text[:-1]
    if not text or text.startswith("#"):
        return None
    negate = False
    if text.startswith("!"):
        negate = True
        text = text[1:]
    elif text.startswith("\\!") or text.startswith("\\#"):
        text = text[1:]
    dir_only = text.endswith("/")
    body = text.rstrip("/")
    if not body:
        return None
    anchored = "/" in body
    body = body.lstrip("/")
    rx = _glob_to_regex(body)
    full = f"^{rx}$" if anchored else f"^(?:.*/)?{rx}$"
    return Rule(line.strip(), re.compile(full, re.DOTALL), negate, dir_only)


@dataclass(frozen=True, slots=True)
class IgnoreRules:
    """An ordered rule list; the last matching rule decides (as in git)."""

    rules: tuple[Rule, ...] = ()

    @classmethod
    def for_snapshot(cls, root: Path) -> IgnoreRules:
        """The built-in exclusions followed by ``root/.chengignore`` when it exists."""
        lines = list(BUILTIN_EXCLUDES)
        f = root / IGNORE_FILE
        if f.is_file():
            lines.extend(f.read_text(encoding="utf-8", errors="replace").splitlines())
        return cls.from_lines(lines)

    @classmethod
    def from_lines(cls, lines: list[str]) -> IgnoreRules:
        """Compile lines in order."""
        return cls(tuple(r for r in (compile_pattern(x) for x in lines) if r is not None))

    def excluded(self, relpath: str, is_dir: bool) -> bool:
        """Whether the root-relative POSIX path ``relpath`` is left out."""
        verdict = False
        for rule in self.rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(relpath):
                verdict = not rule.negate
        return verdict
