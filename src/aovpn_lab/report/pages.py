"""Every page of a run folder, built from its results.json: report.html (with what changed
since earlier runs of the same history folder), the history index, and the PNG screenshot
of the matrix summary. (A certification report also rests on the inventory's declaration
and the manifest of digests taken when it was certified: `aovpn-lab certify --run DIR`
writes it again.)

Used after each run (also one ended by Ctrl-C or SIGTERM) and by
`aovpn-lab report rebuild DIR`. A page that cannot be drawn (no Chromium for the
screenshot, say) is one warning line; the others are still written.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

from ..errors import AovpnError
from . import runfile

SCREENSHOT = "summary.png"


def _warn(text: str) -> None:
    print(f"aovpn-lab: warning: {text}", file=sys.stderr)


def build_run_pages(run_dir: Path, *, history_dir: Path | None = None, screenshot: bool = True,
                    shot: "Screenshot | None" = None) -> list[Path]:
    """`shot`: the run's Screenshot, already started (`aovpn-lab run` starts it while the
    last cells run); without one, one is started here when `screenshot` is true."""
    run_dir = Path(run_dir)
    if shot is None and screenshot:
        # Chromium starts (about 0.7 s, mostly waiting on its processes) while the history
        # and the page are drawn, and takes the screenshot while the history index is written.
        shot = Screenshot(run_dir).start()
    written: list[Path] = []
    try:
        try:
            results = runfile.load(run_dir)
        except AovpnError as exc:
            _warn(f"no report: {exc}")
            return written
        from . import history, page
        sections: list[tuple[str, str]] = []
        hist = None
        if history_dir is not None:
            hist = history.scan(Path(history_dir))
            for line in hist.problems:
                _warn(line)
            sections.append(("History", history.section(hist, results)))
        written.append(page.write(run_dir, sections=sections))
        if shot is not None:
            shot.page_written()
        if hist is not None:
            written.append(history.write_index(Path(history_dir)))
    finally:
        if shot is not None:
            png = shot.result()  # also when a page failed: the browser thread ends either way
            if png is not None:
                written.append(png)
    return written


class Screenshot:
    """The summary's PNG of a run folder, taken in a thread of its own once the page is
    written (the browser's sync API keeps to the thread that started it). Started early,
    it has Chromium and the pages' own imports (matplotlib) ready when the page is."""

    def __init__(self, run_dir: Path):
        self.html, self.png = Path(run_dir) / "report.html", Path(run_dir) / SCREENSHOT
        self._ready = threading.Event()
        self._written = False
        self._out: Path | None = None
        self._thread = threading.Thread(target=self._take, name="screenshot", daemon=True)

    def start(self) -> "Screenshot":
        if self._thread.ident is None:  # not started yet
            self._thread.start()
        return self

    def page_written(self) -> None:
        self._written = True
        self._ready.set()

    def _take(self) -> None:
        from . import browser, history  # noqa: F401 - history: its charts' imports, ahead of the page
        try:
            with browser.launch() as b:
                self._ready.wait()
                if self._written:
                    self._out = b.screenshot(self.html, self.png, selector="#summary")
        except AovpnError as exc:
            _warn(f"no screenshot of the summary: {exc}")

    def result(self) -> Path | None:
        self._ready.set()  # a page that failed: nothing to wait for
        if self._thread.ident is not None:
            self._thread.join()
        return self._out
