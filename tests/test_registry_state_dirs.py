"""No test writes per-user state under the real home (``tests/conftest.py`` redirects it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _under(p: Path, root: Path) -> bool:
    return Path(os.path.abspath(p)).is_relative_to(os.path.abspath(root))


@pytest.mark.parametrize("var", ["PKG_TRUST_DIR", "PKG_AUDIT_LOG", "CIS_HOME"])
def test_state_dirs_point_into_the_session_temp_dir(var: str,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    value = os.environ.get(var)
    assert value, f"{var} is not set for the test session"
    assert _under(Path(value), tmp_path_factory.getbasetemp())
    assert not _under(Path(value), Path.home() / ".cheng") and not _under(Path(value), Path.home() / ".cis")


def test_the_code_resolves_its_state_into_the_temp_dir(tmp_path_factory: pytest.TempPathFactory,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from cheng_build.cis.run.store import cis_home
    from cheng_build.trust.checkpoint import CheckpointMemory
    from cheng_build.trust.config import Level, load_config

    base = tmp_path_factory.getbasetemp()
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    assert _under(CheckpointMemory().file, base)
    assert _under(cis_home(), base)
    cfg = load_config({"level": Level.L2.value})  # the environment as the tools see it
    assert _under(cfg.audit_log, base)
