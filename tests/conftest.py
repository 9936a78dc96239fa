"""Session-wide test isolation: no test writes state under the user's home.

Every place the code keeps per-user state has an environment override (found by grepping
``cheng_build`` for ``Path.home``, ``expanduser`` and ``~/.``); each is pointed into one
session temp dir before any test runs:

- ``PKG_TRUST_DIR``: remembered registry checkpoints (default ``~/.cheng/trust``,
  :mod:`cheng_build.trust.checkpoint`);
- ``PKG_AUDIT_LOG``: the L2 audit log (default ``~/.cheng/audit.jsonl``, :mod:`cheng_build.trust.audit`);
- ``CIS_HOME``: the CIS run database and task dirs (default ``~/.cis``, :mod:`cheng_build.cis.run.store`).

``HOME`` itself is left alone: git's identity, npm's cache and pre-commit's environments live
there and the tests that need them use the real ones. What remains home-relative is only read
(``~/.cheng/cheng-pkg-config.toml``, ``~/.cheng-packages``); the tests that care set ``HOME``
themselves. A test that wants another value overrides these with ``monkeypatch`` as usual (it
is restored after the test).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

STATE_VARS = {"PKG_TRUST_DIR": "trust", "PKG_AUDIT_LOG": "audit.jsonl", "CIS_HOME": "cis"}


@pytest.fixture(scope="session", autouse=True)
def _isolated_state_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("user-state")
    saved = {k: os.environ.get(k) for k in STATE_VARS}
    for var, rel in STATE_VARS.items():
        os.environ[var] = str(root / rel)
    try:
        yield root
    finally:
        for var, old in saved.items():
            if old is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = old


# --- CI cannot go green by skipping ---------------------------------------------------------------
# With CI=true, a skipped test is a failed one: a part CI should have installed is missing (the
# tests say which through helpers_parts.require_part; this catches any skip that does not). Only
# a skip whose reason starts with helpers_parts.NOT_APPLICABLE stays a skip.


def _skip_is_allowed(reason: str) -> bool:
    from helpers_parts import NOT_APPLICABLE, in_ci

    return not in_ci() or NOT_APPLICABLE in reason


def _skip_reason(longrepr: object) -> str:
    # A skip's longrepr is (file, line, "Skipped: <reason>").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report.longrepr)
        if not _skip_is_allowed(reason):
            report.outcome = "failed"
            report.longrepr = (f"CI=true: this test skipped instead of running ({reason}).\n"
                               "Install what it needs in scripts/test.sh; tests name a missing "
                               "part with helpers_parts.require_part(name, how).")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        reason = _skip_reason(report.longrepr)
        if not _skip_is_allowed(reason):
            report.outcome = "failed"
            report.longrepr = (f"CI=true: {collector.nodeid} was skipped whole at collection "
                               f"({reason}). Skip per test, with helpers_parts.require_part.")
