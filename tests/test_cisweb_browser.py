"""The 6767 page in a real headless browser (Debian chromium driven by Playwright): open a run
with a Confirmed task, click confirm, see the task run and the page update without a reload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers_cis import make_dag, sh, task
from helpers_cisweb import CHROMIUM, CHROMIUM_ARGS, confirm_dag, start_run, web_server
from helpers_parts import import_part, require_part

pytestmark = [pytest.mark.network, pytest.mark.slow]



@pytest.fixture()
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        require_part(f"chromium ({CHROMIUM})", "scripts/test.sh: apt-get install chromium")
    sync_api = import_part("playwright.sync_api", "pip install '.[test]' (scripts/test.sh does; "
                           "the Debian chromium is used, no browser download)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_click_confirm_and_watch_the_run_finish(tmp_path: Path, browser) -> None:
    home = tmp_path / "cis"
    rid = start_run(home, confirm_dag(tmp_path, work=1.0))
    with web_server(home) as srv:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(srv.issue_login())  # the one-time link signs this browser in
        page.goto(f"{srv.url}#run={rid}")
        card = page.locator(".card.confirmed", has_text="deploy")
        card.wait_for(timeout=20_000)
        assert "network: none" in card.inner_text() and "unblocks: 1 task(s) (announce)" in card.inner_text()
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads
        row = page.locator("#task-1")
        assert row.get_attribute("data-state") == "Pending"
        card.get_by_role("button", name="confirm").click()
        page.locator("#task-1[data-state=Running]").wait_for(timeout=20_000)
        page.locator("#toast", has_text="confirm task 1: ok").wait_for(timeout=10_000)
        page.locator("#task-1[data-state=Completed]").wait_for(timeout=30_000)
        # The Recommended countdown of the next task appears and ticks; run it now from the page.
        rec = page.locator(".card.recommended", has_text="announce")
        rec.wait_for(timeout=20_000)
        rec.get_by_role("button", name="run now").click()
        page.locator("#detail h2 .badge", has_text="Succeeded").wait_for(timeout=30_000)
        assert page.evaluate("window.__sameDocument") is True
        assert int(page.evaluate("document.body.dataset.updates")) > 3  # pushed, not reloaded
        assert page.locator(".card.confirmed").count() == 0
        assert errors == []
    assert (tmp_path / "deployed.txt").read_text() == "deployed\n"


def test_arbitrated_side_by_side_continue_and_the_report_chart(tmp_path: Path, browser) -> None:
    from cheng_build.cis.dag.model import TaskLevel
    from cheng_build.cis.targets.report import Row, chart_png

    (tmp_path / "chart.png").write_bytes(chart_png([Row("cpu", "b", "measured", 1.0, {"x_per_s": 5.0}),
                                                    Row("cuda", "b", "skipped", note="no GPU")], "t"))
    home = tmp_path / "cis"
    dag = make_dag(tmp_path, [
        task(0, "report", sh("cp chart.png report.png"), cwd=".", outputs=["report.png"]),
        task(1, "release", sh("echo released > released.txt"), cwd=".", deps=[0],
             level=TaskLevel.arbitrated(("ops", "qa"))),
    ])
    rid = start_run(home, dag)
    with web_server(home) as srv:
        page = browser.new_page()
        page.goto(srv.issue_login())  # the one-time link signs this browser in
        page.goto(f"{srv.url}#run={rid}")
        card = page.locator(".card.arbitrated", has_text="release")
        card.wait_for(timeout=20_000)
        text = card.inner_text()
        assert "stakeholders: ops, qa" in text and "asked" in text and "happened" in text
        assert "echo released" in text
        # The chart PNG written by our own encoder decodes in a real browser.
        img = page.locator("img.chart")
        img.wait_for(timeout=20_000)
        page.wait_for_function("document.querySelector('img.chart').complete")
        assert page.evaluate("document.querySelector('img.chart').naturalWidth") == 720
        card.get_by_role("button", name="continue").click()
        page.locator("#task-1[data-state=Completed]").wait_for(timeout=30_000)
    assert (tmp_path / "released.txt").read_text() == "released\n"
