"""The import graph of a Cheng program, walked with the existing compiler's resolution rules.

Syntax read (one statement per line, leading indentation allowed, ``#`` and ``//`` comments)::

    import cheng/<pkg>/<path> [as alias] [, other/path [as alias]]...
    import cheng/<pkg>/[a, b/c]            # grouped: cheng/<pkg>/a and cheng/<pkg>/b/c
    from cheng/<pkg>/<path> import Name, Other

Resolution of ``cheng/<pkg>/<rest>`` (DESIGN.md section 4, seed A1.3.1), first existing file wins:

* roots: ``PKG_ROOT``, then ``PKG_ROOTS`` split on ``,`` or ``;`` when either occurs, else on
  ``:``; no root at all -> ``~/.cheng-packages``;
* in each root, in order, the package directory is the root itself when its
  ``cheng-package.toml`` says ``package_id = "pkg://cheng/<pkg>"``, else ``root/cheng-<pkg>/``,
  else ``root/<pkg>/``;
* inside the package directory: ``src/<rest>.cheng``, ``cheng/<rest>.cheng``, ``<rest>.cheng``.

``std/...`` imports belong to the compiler's own library: they are recorded, not resolved (the
compiler binary's digest stands for them). Any other import is refused, because a file the
wrapper cannot see would be an input the action cache does not key on. A bare ``cheng/<pkg>``
import means the module named after the package (``<rest>`` = ``<pkg>``).

The walker is a pure function of the file system; file contents come through a ``FactSource``
(the stat cache in :mod:`cheng_build.build.inputs`), so a no-op build reads no source file.

(Over 400 lines on purpose: the import syntax, the resolution rules and the walk are together the
compiler's one resolution algorithm, documented above in one place.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path

from cheng_build.build.errors import (
    ImportCycleError,
    ImportEscapeError,
    ImportPathError,
    UnresolvedImportError,
)
from cheng_build.core.record import dataclass

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # a structural interface only mypy checks; nothing tests it with isinstance

MANIFEST_NAME = "cheng-package.toml"
DEFAULT_ROOT = "~/.cheng-packages"
STAGED_ROOTS_DIR = "pkgroots"

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_STMT = re.compile(r"^\s*(import|from)\s+(.*)$")


class ImportKind(Enum):
    """Who owns an import path."""

    PACKAGE = "package"  # cheng/<pkg>/...: resolved by us under the package roots
    TOOLCHAIN = "toolchain"  # std/...: the compiler's own library


class FileRole(Enum):
    """Why a file is an input of the build."""

    ENTRY = "entry"
    MODULE = "module"
    MANIFEST = "manifest"


@dataclass(frozen=True, slots=True)
class ImportStmt:
    """One imported module path and the 1-based line it came from."""

    line: int
    path: str


@dataclass(frozen=True, slots=True)
class GraphFile:
    """A file the compiler will read: where it is, where it goes in the input tree, its digest."""

    source: Path
    staged: str
    role: FileRole
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ImportGraph:
    """Everything resolution found: the inputs (sorted by staged path) and the roots they use.

    ``staged_roots`` is the ``PKG_ROOTS`` value that makes the compiler resolve every import to
    the same file inside the staged input tree (only the roots that supplied a file, in order).
    """

    entry: Path
    files: tuple[GraphFile, ...]
    edges: Mapping[str, tuple[str, ...]]
    toolchain_imports: tuple[str, ...]
    roots: tuple[Path, ...]
    staged_roots: tuple[str, ...]

    @property
    def pkg_roots_value(self) -> str:
        """``PKG_ROOTS`` for the staged tree (comma-separated, relative to the staged root)."""
        return ",".join(self.staged_roots)


class FactSource(Protocol):
    """Where the walker gets a file's digest and parsed facts (the stat cache, or plain reads)."""

    def module_facts(self, path: Path) -> tuple[int, str, tuple[ImportStmt, ...]]:
        """``(size, sha256 hex, imports)`` of a Cheng source file."""
        ...

    def manifest_facts(self, path: Path) -> tuple[int, str, str | None]:
        """``(size, sha256 hex, package_id or None)`` of a ``cheng-package.toml``."""
        ...


# --- parsing ------------------------------------------------------------------------------------


def _strip_comment(text: str) -> str:
    cut = len(text)
    for marker in ("#", "//"):
        i = text.find(marker)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def _split_top(text: str) -> list[str]:
    """Split on commas outside ``[...]`` groups."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _expand(item: str, line: int) -> list[str]:
    item = item.strip()
    m = re.match(r"^(\S+?)\s+as\s+\S+$", item)
    if m:
        item = m.group(1)
    if "[" in item:
        head, _, tail = item.partition("[")
        if not tail.endswith("]") or not head.endswith("/"):
            raise ImportPathError(f"bad grouped import '{item}' on line {line}",
                                  how="write it as import prefix/[a, b]")
        return [head + sub.strip() for sub in tail[:-1].split(",") if sub.strip()]
    return [item]


def parse_imports(text: str) -> tuple[ImportStmt, ...]:
    """Every imported module path in a Cheng source, in order of appearance.

    Raises:
        ImportPathError: a malformed grouped import.
    """
    out: list[ImportStmt] = []
    for no, raw in enumerate(text.splitlines(), start=1):
        if "import" not in raw:
            continue
        m = _STMT.match(raw)
        if not m:
            continue
        body = _strip_comment(m.group(2)).strip()
        if not body:
            continue
        if m.group(1) == "from":
            path, sep, _ = body.partition(" import ")
            if not sep:
                continue
            out.append(ImportStmt(no, path.strip()))
            continue
        for item in _split_top(body):
            for path in _expand(item, no):
                if path:
                    out.append(ImportStmt(no, path))
    return tuple(out)


def classify(path: str, *, where: str = "") -> tuple[ImportKind, str, str]:
    """Split an import path into ``(kind, pkg, rest)``; ``rest`` is ``pkg`` for a bare package.

    Raises:
        ImportPathError: a ``.``/``..`` or empty segment, or a prefix other than cheng/ or std/.
    """
    segs = path.split("/")
    at = f" ({where})" if where else ""
    for seg in segs:
        if seg in ("", ".", "..") or not _SEGMENT.match(seg):
            raise ImportPathError(
                f"bad import path '{path}'{at}",
                why="import paths are package-absolute: no empty, '.' or '..' segments",
                how="write import cheng/<pkg>/<path> or std/<path>",
            )
    if segs[0] == "std" and len(segs) >= 2:
        return ImportKind.TOOLCHAIN, "std", "/".join(segs[1:])
    if segs[0] == "cheng" and len(segs) >= 2:
        rest = "/".join(segs[2:]) if len(segs) > 2 else segs[1]
        return ImportKind.PACKAGE, segs[1], rest
    raise ImportPathError(
        f"unsupported import '{path}'{at}",
        why="the resolver knows cheng/<pkg>/<path> (package roots) and std/<path> (the compiler)",
        how="import a package module as cheng/<pkg>/<path>",
    )


# --- roots --------------------------------------------------------------------------------------


def split_roots(value: str) -> list[str]:
    """Split a ``PKG_ROOTS`` value: on ``,`` or ``;`` when either occurs, else on ``:``."""
    parts = re.split(r"[,;]", value) if ("," in value or ";" in value) else value.split(":")
    return [p.strip() for p in parts if p.strip()]


def search_roots(env: Mapping[str, str], extra: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """The package roots in search order: ``PKG_ROOT``, ``PKG_ROOTS``, then ``extra``.

    With none of them, ``~/.cheng-packages`` (expanded with ``HOME`` from ``env``).
    """
    roots: list[str] = []
    if env.get("PKG_ROOT", "").strip():
        roots.append(env["PKG_ROOT"].strip())
    roots.extend(split_roots(env.get("PKG_ROOTS", "")))
    roots.extend(os.fspath(e) for e in extra)
    if not roots:
        home = env.get("HOME") or os.path.expanduser("~")
        roots.append(DEFAULT_ROOT.replace("~", home, 1))
    out: list[Path] = []
    for r in roots:
        p = Path(os.path.abspath(os.path.expanduser(r)))
        if p not in out:
            out.append(p)
    return out


@dataclass(frozen=True, slots=True)
class _Hit:
    root_index: int
    pkg_dir: Path
    file: Path
    manifest: Path | None  # the package directory's cheng-package.toml, when it has one


class Resolver:
    """Resolves ``cheng/<pkg>/<rest>`` with the compiler's rules, memoising directory probes.

    Probing is lazy and stops at the first hit; a package directory that does not exist is one
    ``stat`` (memoised per root and package), not three, so twenty roots stay cheap.
    """

    def __init__(self, roots: Sequence[Path], facts: FactSource,
                 snapshots: Mapping[Path, str] | None = None) -> None:
        self.roots = tuple(roots)
        # The package flow's locked snapshots: root -> the one package it may supply (its
        # name, ``fs`` for pkg://cheng/fs). Such a root is the package itself and supplies no
        # other; that package comes from no other root (a dependency shipping ``fs/src/...``
        # must not stand in for the locked pkg://cheng/fs).
        snaps = snapshots or {}
        self._owner: dict[int, str] = {}
        self._pinned: dict[str, int] = {}
        for i, r in enumerate(self.roots):
            name = snaps.get(r)
            if name is not None:
                self._owner[i] = name
                self._pinned.setdefault(name, i)
        self._root_strs = tuple(os.fspath(r) for r in self.roots)
        self._facts = facts
        self._root_ids: dict[str, str | None] = {}
        self._isfile: dict[str, bool] = {}
        self._isdir: dict[str, bool] = {}
        self._names: dict[str, frozenset[str]] = {}
        self._pkg_index: dict[str, list[tuple[int, str]]] = {}
        self._memo: dict[str, _Hit] = {}
        self._real: dict[str, str] = {}  # package dir -> its real path

    def _exists(self, p: str) -> bool:
        hit = self._isfile.get(p)
        if hit is None:
            hit = self._isfile[p] = os.path.isfile(p)
        return hit

    def _dir(self, parent: str, name: str) -> bool:
        # One listing per root instead of a stat per (root, package): with twenty roots and
        # twenty packages that is 20 directory reads instead of up to 800 stats.
        names = self._names.get(parent)
        if names is None:
            try:
                names = self._names[parent] = frozenset(os.listdir(parent))
            except OSError:
                names = self._names[parent] = frozenset()
        if name not in names:
            return False
        p = os.path.join(parent, name)
        hit = self._isdir.get(p)
        if hit is None:
            hit = self._isdir[p] = os.path.isdir(p)
        return hit

    def root_package_id(self, root: Path | str) -> str | None:
        """``package_id`` of ``root/cheng-package.toml``, or None when absent."""
        r = os.fspath(root)
        if r not in self._root_ids:
            mf = os.path.join(r, MANIFEST_NAME)
            self._root_ids[r] = self._facts.manifest_facts(Path(mf))[2] if self._exists(mf) else None
        return self._root_ids[r]

    def _pkg_dirs(self, i: int, pkg: str) -> list[tuple[str, bool]]:
        """Package directories of ``pkg`` in root ``i``, in order: ``(dir, exists)``."""
        root = self._root_strs[i]
        owner = self._owner.get(i)
        if owner is not None:
            return [(root, True)] if owner == pkg else []
        dirs: list[tuple[str, bool]] = []
        if self.root_package_id(root) == f"pkg://cheng/{pkg}":
            dirs.append((root, True))
        for name in (f"cheng-{pkg}", pkg):
            dirs.append((os.path.join(root, name), self._dir(root, name)))
        return dirs

    def _existing_dirs(self, pkg: str) -> list[tuple[int, str]]:
        """Every existing package directory of ``pkg``, in search order (memoised per package)."""
        got = self._pkg_index.get(pkg)
        if got is None:
            pinned = self._pinned.get(pkg)
            where = range(len(self.roots)) if pinned is None else (pinned,)
            got = self._pkg_index[pkg] = [(i, d) for i in where
                                          for d, present in self._pkg_dirs(i, pkg) if present]
        return got

    def _check_inside(self, path: str, pkg_dir: str, f: str, importer: str) -> None:
        """The module, its links resolved on the real tree, must be a file of its package: a
        snapshot whose ``src/x.cheng`` links (through other links) to ``~/.ssh/id_rsa`` would
        otherwise put that file into the build's inputs and the bundle."""
        from cheng_build.core.contain import outside, real_root

        root = self._real.get(pkg_dir)
        if root is None:
            root = self._real[pkg_dir] = real_root(pkg_dir)
        where = outside(root, f)
        if where is not None:
            raise ImportEscapeError(
                f"import {path} leaves its package",
                why=(f"imported from {importer}\n" if importer else "")
                + f"{f} is a symlink (or runs through one) leading to {where}, outside {pkg_dir}",
                how="a package's modules must be its own files: replace the link with the file")

    def resolve(self, path: str, *, importer: str = "") -> _Hit:
        """The file ``path`` names.

        Raises:
            UnresolvedImportError: no candidate exists; the message lists every path searched.
            ImportPathError: the path itself is malformed.
        """
        if path in self._memo:
            return self._memo[path]
        _, pkg, rest = classify(path, where=importer)
        for i, d in self._existing_dirs(pkg):  # root order, then package-dir order
            for inner in ("src/", "cheng/", ""):
                f = os.path.join(d, f"{inner}{rest}.cheng")
                if self._exists(f):
                    self._check_inside(path, d, f, importer)
                    mf = os.path.join(d, MANIFEST_NAME)
                    hit = _Hit(i, Path(d), Path(f), Path(mf) if self._exists(mf) else None)
                    self._memo[path] = hit
                    return hit
        searched = []
        for i, root in enumerate(self.roots):
            pid = self.root_package_id(root)
            present = pid is not None or self._exists(os.path.join(self._root_strs[i], MANIFEST_NAME))
            state = f"package_id {pid!r}" if present else "absent"
            searched.append(f"{root / MANIFEST_NAME} ({state})")
            for d, _ in self._pkg_dirs(i, pkg):
                searched += [os.path.join(d, f"{inner}{rest}.cheng") for inner in ("src/", "cheng/", "")]
        other_case = self._other_case(pkg, rest)
        how = ("fetch the package (chengc --lock:<file>), or point PKG_ROOT/PKG_ROOTS or "
               "--pkg-roots at a directory holding it")
        if other_case is not None:
            # Code written on a case-insensitive file system (macOS) imports cheng/DiLoCo/...
            # from a directory named diloco; here the names must match exactly.
            how = (f"{other_case} exists, but its name differs only in case: this file system "
                   "is case-sensitive, so make the import match the file's name (or rename it)")
        raise UnresolvedImportError(
            f"unresolved import {path}",
            why=(f"imported from {importer}\n" if importer else "") + "searched:\n  " + "\n  ".join(searched),
            how=how,
        )

    def _other_case(self, pkg: str, rest: str) -> str | None:
        """A file the import would name on a case-insensitive file system, or None.

        Only asked after a failed lookup, so it may list directories freely.
        """
        for root in self._root_strs:
            for name in (f"cheng-{pkg}", pkg):
                for d in _ci_children(root, name):
                    for inner in ("src/", "cheng/", ""):
                        found = _ci_path(d, f"{inner}{rest}.cheng")
                        if found is not None:
                            return found
        return None


def _ci_children(parent: str, name: str) -> list[str]:
    """Entries of ``parent`` whose name equals ``name`` ignoring case (exact one first)."""
    try:
        names = sorted(os.listdir(parent), key=lambda n: n != name)
    except OSError:
        return []
    return [os.path.join(parent, n) for n in names if n.lower() == name.lower()]


def _ci_path(base: str, rel: str) -> str | None:
    """An existing file ``base/rel`` matched segment by segment ignoring case, or None."""
    here = [base]
    for seg in (s for s in rel.split("/") if s):
        here = [c for h in here for c in _ci_children(h, seg)]
        if not here:
            return None
    return next((h for h in here if os.path.isfile(h)), None)


# --- the walk -----------------------------------------------------------------------------------


def walk(entry: Path, roots: Sequence[Path], facts: FactSource,
         *, on_file: Callable[[Path], None] | None = None,
         snapshots: Mapping[Path, str] | None = None,
         watch: Callable[..., None] | None = None) -> ImportGraph:
    """Walk the import graph from ``entry`` and stage every input under a relative path.

    ``snapshots`` (the package flow): each locked snapshot root and the package name it alone
    supplies (see :class:`Resolver`). ``watch`` is called once, after a successful walk, with
    every path the resolver probed or listed and their directories (for the no-op fast path:
    a module appearing earlier in the search order, or a file swapped for a link, changes one).

    The staged tree is ``<entry name>`` plus ``pkgroots/<n>/...`` mirroring each root that
    supplied a file (renumbered from 0 in search order), so resolution inside the staged tree,
    with ``PKG_ROOTS`` = :attr:`ImportGraph.pkg_roots_value`, picks exactly the same files.

    Raises:
        UnresolvedImportError, ImportPathError, ImportCycleError; OSError when a file vanishes.
    """
    entry = Path(os.path.abspath(entry))
    resolver = Resolver(roots, facts, snapshots)
    size, digest, stmts = facts.module_facts(entry)
    modules: dict[Path, tuple[int, str, tuple[ImportStmt, ...]]] = {entry: (size, digest, stmts)}
    hits: dict[Path, _Hit] = {}
    toolchain: set[str] = set()
    edges: dict[Path, list[Path]] = {}

    # Iterative DFS with an explicit stack, so a cycle can be reported as the whole chain.
    state: dict[Path, int] = {entry: 1}  # 1 = on stack, 2 = done
    stack: list[tuple[Path, list[Path]]] = []

    def children(path: Path) -> list[Path]:
        kids: list[Path] = []
        for st in modules[path][2]:
            kind, _, _ = classify(st.path, where=f"{path}:{st.line}")
            if kind is ImportKind.TOOLCHAIN:
                toolchain.add(st.path)
                continue
            hit = resolver.resolve(st.path, importer=f"{path}:{st.line}")
            hits.setdefault(hit.file, hit)
            if hit.file not in modules:
                if on_file is not None:
                    on_file(hit.file)
                modules[hit.file] = facts.module_facts(hit.file)
            if hit.file not in kids:
                kids.append(hit.file)
        edges[path] = kids
        return list(reversed(kids))

    stack.append((entry, children(entry)))
    while stack:
        node, todo = stack[-1]
        if not todo:
            state[node] = 2
            stack.pop()
            continue
        nxt = todo.pop()
        st = state.get(nxt)
        if st == 1:
            chain = [n for n, _ in stack]
            chain = [*chain[chain.index(nxt):], nxt]
            raise ImportCycleError(
                "import cycle detected",
                why=" -> ".join(os.fspath(p) for p in chain),
                how="break the cycle: move the shared declarations into a module both can import",
            )
        if st is None:
            state[nxt] = 1
            stack.append((nxt, children(nxt)))

    used_roots = sorted({h.root_index for h in hits.values()})
    renum = {r: n for n, r in enumerate(used_roots)}
    staged_of: dict[Path, str] = {entry: entry.name}
    files: dict[str, GraphFile] = {entry.name: GraphFile(entry, entry.name, FileRole.ENTRY, size, digest)}

    def stage(path: Path, root_index: int) -> str:
        rel = path.relative_to(resolver.roots[root_index]).as_posix()
        return f"{STAGED_ROOTS_DIR}/{renum[root_index]}/{rel}"

    for f, hit in hits.items():
        s = stage(f, hit.root_index)
        staged_of[f] = s
        sz, dg, _ = modules[f]
        files[s] = GraphFile(f, s, FileRole.MODULE, sz, dg)
        if hit.manifest is not None:
            ms = stage(hit.manifest, hit.root_index)
            if ms not in files:
                msz, mdg, _ = facts.manifest_facts(hit.manifest)
                files[ms] = GraphFile(hit.manifest, ms, FileRole.MANIFEST, msz, mdg)

    if watch is not None:
        probed = [*resolver._isfile, *resolver._isdir, *resolver._names, os.fspath(entry)]
        watch(*probed, *{os.path.dirname(p) for p in probed})
    return ImportGraph(
        entry=entry,
        files=tuple(files[k] for k in sorted(files)),
        edges={staged_of[k]: tuple(staged_of[c] for c in v) for k, v in sorted(edges.items())},
        toolchain_imports=tuple(sorted(toolchain)),
        roots=tuple(resolver.roots[r] for r in used_roots),
        staged_roots=tuple(f"{STAGED_ROOTS_DIR}/{n}" for n in range(len(used_roots))),
    )


__all__ = [
    "MANIFEST_NAME",
    "FactSource",
    "FileRole",
    "GraphFile",
    "ImportGraph",
    "ImportKind",
    "ImportStmt",
    "Resolver",
    "classify",
    "parse_imports",
    "search_roots",
    "split_roots",
    "walk",
]
