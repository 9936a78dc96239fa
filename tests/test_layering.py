"""The layering the README draws, held over every import in ``cheng_build`` (module level, inside
functions and under ``TYPE_CHECKING`` alike), and no import circles between modules.

    cli -> (build | pkg | cis | storage | compute | settle) -> (trust | cas | ledger) -> (core | _native)

An import may go down any number of layers. Sideways within a layer only along the edges in
:data:`SIDEWAYS`, each with its reason; upwards never. ``cheng_build/cis/`` is held the same way
by :data:`CIS_LAYERS` (ninja's split: the model, then what runs next, then how it runs). A new
top-level package or cis sub-package must be placed in a table before it can import anything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import cheng_build

# Top-level packages of cheng_build, top layer first.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"cli"}),
    frozenset({"build", "pkg", "cis", "storage", "compute", "settle"}),
    frozenset({"trust", "cas", "ledger"}),
    frozenset({"core", "_native"}),
)
# (importer, imported) within one layer, and why it is allowed.
SIDEWAYS: Mapping[tuple[str, str], str] = {
    ("build", "pkg"): "chengc's package flow (resolve -> verify -> fetch) is pkg's, run by build",
    ("cis", "build"): "closedloop finds the compiler the way chengc does",
    ("storage", "pkg"): "storage reuses pkg's libp2p transport, p2p fetch and serve node",
    ("compute", "cis"): "compute jobs are CIS DAGs run by the engine",
    ("compute", "pkg"): "compute moves job inputs over pkg's libp2p transport, bitswap node and serve",
    ("_native", "core"): "the binding raises core's errors",
}

# Sub-packages (and single modules) of cheng_build.cis, top layer first.
CIS_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"view", "targets", "doctor"}),
    frozenset({"node"}),  # the web view shows which node ran a task of a room run
    frozenset({"coffee"}),
    frozenset({"run"}),
    frozenset({"plan", "sandbox"}),
    frozenset({"dag"}),
)
CIS_SIDEWAYS: Mapping[tuple[str, str], str] = {}

ROOT = Path(cheng_build.__file__).parent


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement: who imports what, and where."""

    importer: str  # dotted module name
    imported: str  # dotted module name (a submodule when ``from pkg import submodule``)
    where: str  # path:line, for the failure message


def module_names(root: Path) -> dict[str, Path]:
    """Every module under the package directory ``root`` by dotted name."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(root: Path) -> Iterator[Import]:
    """Every import of one of ``root``'s own modules, anywhere in a module's syntax tree."""
    mods = module_names(root)
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_pkg else name.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            where = f"{path.relative_to(root.parent)}:{getattr(node, 'lineno', 0)}"
            for t in targets:
                if t in mods and t != name:
                    yield Import(name, t, where)


def _rank(layers: tuple[frozenset[str], ...], part: str) -> int | None:
    return next((i for i, layer in enumerate(layers) if part in layer), None)


def violations(found: Iterator[Import] | list[Import], prefix: str,
               layers: tuple[frozenset[str], ...], sideways: Mapping[tuple[str, str], str]) -> list[str]:
    """Imports between parts of ``prefix`` (``cheng_build`` or ``cheng_build.cis``) that go up a
    layer or sideways without a reason, and parts no layer names."""
    out: list[str] = []
    depth = prefix.count(".") + 1
    for imp in found:
        a, b = imp.importer.split("."), imp.imported.split(".")
        if imp.importer == prefix or imp.imported == prefix:
            continue
        if not (imp.importer.startswith(prefix + ".") and imp.imported.startswith(prefix + ".")):
            continue
        pa, pb = a[depth], b[depth]
        if pa == pb:
            continue
        ra, rb = _rank(layers, pa), _rank(layers, pb)
        if ra is None or rb is None:
            missing = pa if ra is None else pb
            out.append(f"{imp.where}: {prefix}.{missing} is in no layer (add it to the table)")
        elif rb < ra or (rb == ra and (pa, pb) not in sideways):
            out.append(f"{imp.where}: {imp.importer} imports {imp.imported} "
                       f"({pa} -> {pb} goes {'up' if rb < ra else 'sideways'})")
    return out


def cycles(found: list[Import]) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module)."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        graph.setdefault(imp.importer, set()).add(imp.imported)
        graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the module graph is a few hundred nodes deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_packages_import_only_down_the_layers() -> None:
    assert violations(imports(ROOT), "cheng_build", LAYERS, SIDEWAYS) == []


def test_cis_sub_packages_import_only_down_the_layers() -> None:
    assert violations(imports(ROOT), "cheng_build.cis", CIS_LAYERS, CIS_SIDEWAYS) == []


def test_no_import_circles() -> None:
    assert cycles(list(imports(ROOT))) == []


def test_every_top_level_package_and_cis_part_has_a_layer() -> None:
    tops = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert {t for t in tops if _rank(LAYERS, t) is None} == set()
    cis = {p.stem if p.suffix == ".py" else p.name for p in (ROOT / "cis").iterdir()
           if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert {c for c in cis if _rank(CIS_LAYERS, c) is None} == set()


def _tree(tmp: Path, files: dict[str, str]) -> Path:
    root = tmp / "cheng_build"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_check_catches_an_upward_import_inside_a_function_and_a_circle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/a.py": "def f():\n    from cheng_build.cas import b\n",
        "cas/__init__.py": "",
        "cas/b.py": "from cheng_build.core import a\n",
        "cas/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n",
        "pkg/__init__.py": "",
        "pkg/d.py": "from ..build import e\n",
        "build/__init__.py": "",
        "build/e.py": "import cheng_build.nowhere.x\nfrom cheng_build.pkg import d\n",
        "nowhere/__init__.py": "",
        "nowhere/x.py": "",
    })
    found = list(imports(root))
    assert Import("cheng_build.cas.c", "cheng_build.cas.b", "cheng_build/cas/c.py:3") in found
    bad = violations(found, "cheng_build", LAYERS, SIDEWAYS)
    assert any("core.a imports cheng_build.cas.b" in v and "goes up" in v for v in bad), bad
    assert any("pkg.d imports cheng_build.build.e" in v and "sideways" in v for v in bad), bad
    assert any("cheng_build.nowhere is in no layer" in v for v in bad), bad
    assert not any("build.e imports cheng_build.pkg.d" in v for v in bad), bad  # allowed sideways
    assert sorted(cycles(found)) == [["cheng_build.build.e", "cheng_build.pkg.d"],
                                     ["cheng_build.cas.b", "cheng_build.core.a"]]
