"""The browser: Debian's Chromium prints PDFs and screenshots of local pages, and no page reaches the network."""
from __future__ import annotations

import struct
import threading
from pathlib import Path

import pytest

from aovpn_lab.report import browser, charts, html
from aovpn_lab.report.browser import BrowserError

needs_chromium = pytest.mark.skipif(not browser.CHROMIUM.exists(), reason=f"no Chromium at {browser.CHROMIUM}")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def chromium():
    if not browser.CHROMIUM.exists():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}")
    with browser.launch() as b:
        yield b


@pytest.fixture
def summary_page(tmp_path: Path) -> Path:
    fig = charts.figure(2, 1)
    fig.gca().bar([0, 1], [3, 1], color=[html.COLOURS["pass"], html.COLOURS["fail"]])
    body = (f"<div id='summary'>{html.badge('pass')} 3 passed, {html.badge('fail')} 1 failed</div>"
            + "<p>filler</p>" * 80 + f"<div class='picture'>{charts.svg(fig)}</div>")
    path = tmp_path / "summary.html"
    path.write_text(html.page("Run summary", body))
    return path


def test_a_page_prints_to_a_pdf(chromium, summary_page: Path, tmp_path: Path):
    out = chromium.pdf(summary_page, tmp_path / "summary.pdf")
    assert out.read_bytes().startswith(b"%PDF")


def test_the_summary_element_is_screenshot_as_a_png_smaller_than_the_whole_page(chromium, summary_page: Path,
                                                                                tmp_path: Path):
    element = png_size(chromium.screenshot(summary_page, tmp_path / "summary.png"))
    whole = png_size(chromium.screenshot(summary_page, tmp_path / "page.png", selector="#no-such-element"))
    assert element[1] < whole[1]


@needs_chromium
def test_a_page_made_from_the_shared_skeleton_requests_nothing_outside_the_file(summary_page: Path, tmp_path: Path):
    with browser.launch() as b:
        b.pdf(summary_page, tmp_path / "s.pdf")
        assert b.blocked == [] and b.reached == []


@needs_chromium
def test_a_network_request_of_a_page_is_blocked_counted_and_never_sent(tmp_path: Path):
    page = tmp_path / "leaky.html"
    page.write_text("<html><body><div id='summary'>x</div><img src='http://198.51.100.1/x.png'></body></html>")
    with browser.launch() as b:
        b.screenshot(page, tmp_path / "leaky.png")
        assert b.blocked == ["http://198.51.100.1/x.png"]
        assert b.reached == []


@needs_chromium
def test_the_one_shot_functions_write_their_files_while_another_browser_is_open(chromium, summary_page: Path,
                                                                                 tmp_path: Path):
    assert browser.pdf(summary_page, tmp_path / "a.pdf").read_bytes()[:4] == b"%PDF"
    assert png_size(browser.screenshot(summary_page, tmp_path / "a.png"))[0] > 0


def test_a_missing_chromium_is_one_line_naming_the_path_and_the_fix(summary_page: Path, tmp_path: Path):
    with pytest.raises(BrowserError) as exc:
        browser.pdf(summary_page, tmp_path / "a.pdf", executable=tmp_path / "chromium")
    assert exc.value.message == f"headless Chromium not found at {tmp_path / 'chromium'}"
    assert exc.value.hint == "make setup (apt-get install chromium)"
    assert not (tmp_path / "a.pdf").exists()


def test_a_missing_page_is_named(chromium, tmp_path: Path):
    with pytest.raises(BrowserError) as exc:
        chromium.pdf(tmp_path / "absent.html", tmp_path / "a.pdf")
    assert "absent.html: no such page to render" in str(exc.value)


def test_a_driver_that_dies_at_start_is_one_line_with_the_fix_and_a_run_still_gets_its_pages(
        summary_page: Path, tmp_path: Path, monkeypatch):
    """What a machine without libatomic1 does: Playwright's own node exits before it speaks."""
    import playwright.sync_api

    class Dead:
        def start(self):
            raise Exception("Connection closed while reading from the driver")
    monkeypatch.setattr(playwright.sync_api, "sync_playwright", lambda: Dead())
    # a fresh process: no driver already started by an earlier test
    monkeypatch.setattr(browser._Driver, "_threads", threading.local())
    with pytest.raises(BrowserError) as err:
        browser.screenshot(summary_page, tmp_path / "s.png")
    assert "driver did not start" in str(err.value) and "libatomic1" in str(err.value)
    from aovpn_lab.report import runfile
    from aovpn_lab.report.pages import build_run_pages
    run = tmp_path / "run"
    runfile.write(run / "results.json", {"tool": "aovpn-lab", "schema": 2, "run_id": "r", "cells": []})
    written = build_run_pages(run, history_dir=tmp_path)
    assert (run / "report.html").is_file() and not (run / "summary.png").exists()
    assert run / "report.html" in written


def test_the_summary_screenshot_waits_in_its_own_thread_for_the_page(chromium, summary_page: Path, tmp_path: Path):
    # started before the page exists (as `aovpn-lab run` starts it while cells run), beside
    # a browser of this thread, it takes the PNG once told the page is written
    from aovpn_lab.report.pages import SCREENSHOT, Screenshot
    run = tmp_path / "run"
    run.mkdir()
    shot = Screenshot(run).start()
    (run / "report.html").write_text(summary_page.read_text())
    shot.page_written()
    assert shot.result() == run / SCREENSHOT and png_size(run / SCREENSHOT)[0] > 0
    assert chromium.screenshot(summary_page, tmp_path / "here.png").is_file()  # this thread's browser still works


def test_a_summary_screenshot_whose_page_never_came_writes_nothing(tmp_path: Path):
    from aovpn_lab.report.pages import SCREENSHOT, Screenshot
    assert Screenshot(tmp_path).start().result() is None and not (tmp_path / SCREENSHOT).exists()
    assert Screenshot(tmp_path).result() is None   # never started: nothing to wait for
