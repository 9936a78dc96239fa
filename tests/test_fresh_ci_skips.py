"""CI cannot go green by skipping: the real conftest hook and helpers_parts, run by a real pytest.

A scratch test directory gets this suite's ``conftest.py`` and ``helpers_parts.py`` and a module
that skips every way there is; pytest runs it once as a developer would and once with ``CI=true``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRATCH = '''
import pytest
from helpers_parts import import_part, not_applicable, require_part

def test_missing_part():
    require_part("frobnicator", "scripts/test.sh: apt-get install frobnicator")

def test_missing_module():
    import_part("no_such_module_for_cheng", "pip install '.[test]'")

def test_plain_skip():
    pytest.skip("some reason")

@pytest.mark.skipif(True, reason="decorated")
def test_decorated_skip():
    pass

def test_not_applicable():
    not_applicable("this machine has a GPU")

def test_runs():
    assert True
'''


def run_scratch(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    d = tmp_path / "t"
    d.mkdir(exist_ok=True)
    for name in ("conftest.py", "helpers_parts.py"):
        shutil.copy(HERE / name, d / name)
    (d / "test_scratch.py").write_text(SCRATCH)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                           "-p", "no:randomly", str(d)], cwd=d, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def outcome(out: str, name: str) -> str:
    m = re.search(rf"^(PASSED|FAILED|SKIPPED|ERROR)\S* .*{name}\b", out, re.M)
    if m is None:  # -rA writes skips as "SKIPPED [1] file:line: reason" without the test's name
        return "SKIPPED"
    return m.group(1)


@pytest.mark.parametrize("ci", [None, "false"])
def test_without_ci_a_missing_part_skips_with_its_reason(tmp_path: Path, ci: str | None) -> None:
    r = run_scratch(tmp_path, ci)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "1 passed, 5 skipped" in r.stdout
    assert "missing part: frobnicator (scripts/test.sh: apt-get install frobnicator)" in r.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_with_ci_every_skip_but_not_applicable_fails(tmp_path: Path, ci: str) -> None:
    r = run_scratch(tmp_path, ci)
    assert r.returncode == 1, r.stdout[-3000:]
    out = r.stdout
    for name in ("test_missing_part", "test_missing_module", "test_plain_skip"):
        assert outcome(out, name) == "FAILED", (name, out[-3000:])
    assert outcome(out, "test_decorated_skip") == "ERROR"  # a skip in setup becomes a setup error
    assert outcome(out, "test_runs") == "PASSED"
    assert "1 passed, 1 skipped" in out  # the not-applicable one only
    assert "missing part: frobnicator (with CI=true a missing part fails" in out
    assert "how: scripts/test.sh: apt-get install frobnicator" in out
    assert "CI=true: this test skipped instead of running" in out
