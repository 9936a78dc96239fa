"""The settlement steps of ``demo-compute-settle`` refuse to pass on an empty ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheng_build.cli import settle_demo_steps


def test_settle_step_fails_on_an_empty_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # the original demo fell back to an empty ledger and still "passed"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "ledger.jsonl").write_text("")
    assert settle_demo_steps.main(["settle"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "settle: the settlement holds no compute"
    assert settle_demo_steps.main(["nope"]) == 2
