"""The generated pages as a user sees them, in headless Chromium (Debian's, driven by
Playwright): the matrix summary renders and every cell in it leads to that cell's evidence,
the history's trend picture is there, the compare page shows the break, and each run
folder keeps a PNG screenshot of its summary. The runs are two recorded lab runs
(tests/data/report: variant default, then rras-defaults) put into one history folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from aovpn_lab.report import compare, runfile
from aovpn_lab.report.browser import CHROMIUM, launch
from aovpn_lab.report.pages import SCREENSHOT, build_run_pages

DATA = Path(__file__).parents[1] / "data" / "report"
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make setup installs it)")


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    for run_id, name in (("20261201T010000Z-aaaaaa", "default"), ("20261202T010000Z-bbbbbb", "rras-defaults")):
        data = json.loads((DATA / f"{name}.json").read_text())
        data["run_id"] = run_id
        data["started"] = run_id[:4] + "-" + run_id[4:6] + "-" + run_id[6:8] + "T01:00:00Z"
        if name == "rras-defaults":  # one cell passed only on its second attempt
            cell = next(c for c in data["cells"] if c["state"] == "pass")
            cell["flaky"], cell["attempts"] = True, [{"state": "fail", "reason": "no-response", "duration_s": 1.0}]
        runfile.write(folder / run_id / "results.json", data)
    for run in sorted(p for p in folder.iterdir() if p.is_dir()):
        build_run_pages(run, history_dir=folder)
    return folder


def _runs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / "results.json").is_file())


def test_every_run_folder_keeps_a_png_screenshot_of_its_summary(history):
    for run in _runs(history):
        assert (run / SCREENSHOT).read_bytes()[:8] == PNG


def test_the_matrix_summary_renders_and_each_cell_leads_to_its_evidence(history):
    run = _runs(history)[-1]
    results = runfile.load(run)
    with launch() as browser, browser.page(run / "report.html") as page:
        summary = page.locator("#summary")
        box = summary.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 200  # drawn, not an empty box
        links = summary.locator("svg a")
        order = [links.nth(i).get_attribute("xlink:href") or links.nth(i).get_attribute("href")
                 for i in range(links.count())]
        hrefs = set(order)
        assert hrefs == {"#" + c.anchor for c in results.cells}
        for href in hrefs:  # every link has its evidence on the page
            assert page.locator(f"details[id='{href[1:]}']").count() == 1
        # following one: its evidence opens and shows the verdict's reason
        failing = next(c for c in results.cells if c.state == "fail")
        links.nth(order.index("#" + failing.anchor)).click()
        details = page.locator(f"details[id='{failing.anchor}']")
        assert details.get_attribute("open") is not None
        assert details.locator(".aovpn-evidence").first.is_visible()
        assert failing.verdict["observed"] in details.inner_text()
        assert browser.blocked == [] and browser.reached == []  # nothing outside the file was asked for


def test_the_report_shows_the_trend_picture_and_the_flaky_cell(history):
    run = _runs(history)[-1]
    with launch() as browser, browser.page(run / "report.html") as page:
        trend = page.locator("#trend svg")
        assert trend.count() >= 1 and trend.first.is_visible()
        assert trend.first.bounding_box()["height"] > 50
        assert "flaky" in page.locator("body").inner_text()
    with launch() as browser, browser.page(history / "history.html") as page:
        assert page.locator("svg").first.is_visible()


def test_the_compare_page_shows_the_break(history, tmp_path):
    base, cand = (runfile.load(p) for p in _runs(history))
    result = compare.compare(base, cand)
    page_path, _ = compare.write(result, tmp_path)
    with launch() as browser, browser.page(page_path) as page:
        breaks = page.locator("#breaks .break")
        assert breaks.count() == len(result.of("breaks")) > 0
        assert breaks.first.is_visible()
        assert "test_gateway_refuses_weak_ike_proposals[of-gw1]" in page.locator("#breaks").inner_text()
