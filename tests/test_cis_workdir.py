"""The shared work directory of the built-in CIS targets and the shared step-program scaffolding."""

from __future__ import annotations

from pathlib import Path

import pytest

from cheng_build.cis.targets import closedloop, compute_demo, demo_io_lease
from cheng_build.cli.step_program import StepProgram
from cheng_build.core.errors import InputError


@pytest.mark.parametrize("target", [closedloop, demo_io_lease, compute_demo])
def test_foreign_directory_is_refused_and_untouched(tmp_path: Path, target: object) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(InputError) as exc:
        target.prepare_workdir(tmp_path)  # type: ignore[attr-defined]
    assert exc.value.exit_code == 2 and "not empty" in exc.value.what
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_rerun_removes_own_leftovers_only(tmp_path: Path) -> None:
    wd = demo_io_lease.prepare_workdir(tmp_path / "wd")
    (wd / "store").mkdir()
    (wd / "store" / "old").write_text("x")
    (wd / "extra.txt").write_text("not ours")  # not a name the target owns: left alone
    again = demo_io_lease.prepare_workdir(wd)
    assert again == wd and not (wd / "store").exists() and (wd / "extra.txt").is_file()
    assert (wd / demo_io_lease.MARKER).is_file() and (wd / "data" / "short.bin").stat().st_size


def test_compute_demo_rerun_clears_everything_but_its_marker(tmp_path: Path) -> None:
    wd = compute_demo.prepare_workdir(tmp_path / "wd")
    (wd / "root").mkdir()
    (wd / "link").symlink_to(tmp_path)  # a link is removed, never followed
    compute_demo.prepare_workdir(wd)
    assert sorted(p.name for p in wd.iterdir()) == [compute_demo.MARKER]
    assert tmp_path.is_dir()


def test_closedloop_workdir_holds_the_example_packages(tmp_path: Path) -> None:
    wd = closedloop.prepare_workdir(None)
    try:
        assert (wd / "app" / "cheng-package.toml").is_file() and (wd / "trust").is_dir()
        assert (wd / closedloop.MARKER).is_file()
    finally:
        import shutil

        shutil.rmtree(wd)


def test_step_program_usage_and_flags(capsys: pytest.CaptureFixture[str]) -> None:
    prog = StepProgram(prog="x_steps", label="x", timed=True)
    steps = {"one": lambda argv: 0 if prog.flag(argv, "k") == "v=w" else 1}
    assert prog.main(steps, []) == 2
    assert capsys.readouterr().err.startswith("x_steps: name a step: one")
    assert prog.main(steps, ["one", "--k=v=w"]) == 0
    assert "one: " in capsys.readouterr().out
    assert prog.main(steps, ["one", "--k:v=w"]) == 0
    with pytest.raises(SystemExit, match="x_steps: missing --k"):
        prog.main(steps, ["one"])
    assert prog.fail("broke", "because") == 1
    assert capsys.readouterr().err == "x: broke\n  why: because\n"


def test_checked_steps_report_failures_by_step_name(capsys: pytest.CaptureFixture[str]) -> None:
    from cheng_build.cli.step_program import StepFailed
    from cheng_build.core.errors import InputError as Bad

    def fails() -> None:
        raise StepFailed("nothing was written")

    def refused() -> None:
        raise Bad("the key is missing", why="no keys/ folder", how="run setup first")

    prog = StepProgram(prog="y_steps", label="y")
    steps = {"ok": lambda: None, "fails": fails, "refused": refused}
    assert prog.main_checked(steps, ["ok"]) == 0
    assert prog.main_checked(steps, ["fails"]) == 1
    assert capsys.readouterr().err == "fails: nothing was written\n"
    assert prog.main_checked(steps, ["refused"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("refused: the key is missing") and "run setup first" in err
    assert prog.main_checked(steps, ["nope"]) == 2
    assert capsys.readouterr().err.startswith("y_steps: name a step: ok, fails, refused")
