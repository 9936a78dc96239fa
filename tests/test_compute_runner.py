"""The runner: a request's DAG in the CIS sandbox, input read-only, out/ as the result."""

from __future__ import annotations

from pathlib import Path

from helpers_compute import code_dir, put

from cheng_build.compute.records import ExecRequest
from cheng_build.compute.runner import execute


def _run(tmp: Path, cmd: list[str]) -> object:
    root = tmp / "root"
    inp = tmp / "inp"
    inp.mkdir()
    (inp / "data.txt").write_text("abc\n")
    req = ExecRequest(request_id="req-1", code_cid=put(root, code_dir(tmp / "code", cmd)),
                      input_cid=put(root, inp))
    return execute(root, req, tmp / "ws")


def test_result_is_out_and_workspace_is_removed(tmp_path: Path) -> None:
    res = _run(tmp_path, ["sh", "-c", "cat input/data.txt input/data.txt > out/twice"])
    assert res.status == "ok" and res.result_cid.startswith("bafy")  # type: ignore[attr-defined]
    assert not (tmp_path / "ws").exists()
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import parse_cid
    from cheng_build.cas.exporter import read_path

    data = read_path(Blockstore(tmp_path / "root"), parse_cid(res.result_cid), "twice")  # type: ignore[attr-defined]
    assert data == b"abc\nabc\n"


def test_a_task_that_changes_its_input_fails(tmp_path: Path) -> None:
    res = _run(tmp_path, ["sh", "-c", "chmod -R u+w input; echo forged > input/data.txt; "
                                      "touch out/x"])
    assert res.status == "err"  # type: ignore[attr-defined]
    assert res.error == "a task changed input/ (it is read-only)"  # type: ignore[attr-defined]


def test_a_failing_task_is_an_err_receipt(tmp_path: Path) -> None:
    res = _run(tmp_path, ["sh", "-c", "echo boom >&2; exit 3"])
    assert res.status == "err" and res.error.startswith("task run failed")  # type: ignore[attr-defined]
    assert res.measured.cpu_ms >= 0 and res.measured.source  # type: ignore[attr-defined]
