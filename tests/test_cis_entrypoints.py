"""Every program cis runs as ``python -m <module>`` (``selfrun.Tool``) exists and runs as a script.

cis builds these argv tuples as strings (cli sits above cis, so it cannot import them); a renamed
CLI module would otherwise break ``cis run closedloop`` or a sketch only when a task starts.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from cheng_build.cis.sandbox.selfrun import Tool, module_argv


@pytest.mark.parametrize("tool", list(Tool), ids=lambda t: t.name)
def test_each_entry_point_resolves_to_a_script_module(tool: Tool) -> None:
    spec = importlib.util.find_spec(tool.value)
    assert spec is not None and spec.origin is not None, f"{tool.value} is not importable"
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    guards = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert guards, f"{tool.value} has no `if __name__ == \"__main__\"` block: `python -m` would do nothing"


def test_module_argv_is_what_python_runs() -> None:
    out = subprocess.run([sys.executable, *module_argv(Tool.PKG), "--help"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "pkg" in out.stdout


def test_no_cis_module_spells_a_cli_module_outside_the_registry() -> None:
    root = Path(importlib.util.find_spec("cheng_build.cis").origin).parent  # type: ignore[union-attr, arg-type]
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.startswith("cheng_build.cli.") and path.name != "selfrun.py":
                offenders.append(f"{path.relative_to(root)}:{node.lineno}: {node.value}")
    assert not offenders, offenders
