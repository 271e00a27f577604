"""The one way the project drives a browser: Playwright with Debian's Chromium.

PDFs (the certification report) and PNG screenshots (each run's summary) are rendered by
headless Chromium from the same self-contained HTML a reader opens, so the PDF is the page.
Playwright's own browser download is never used: /usr/bin/chromium is the Debian package.

A page may only load file:// and data: URLs. Anything else is aborted before it is sent
and counted (`Browser.blocked`), so a test can assert a page is self-contained and no page
can reach the network from the tester.

    with launch() as b:
        b.pdf("reports/latest/certification.html", "reports/latest/certification.pdf")
        assert not b.blocked
"""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator

from ..errors import AovpnError

CHROMIUM = Path("/usr/bin/chromium")
# No network here: without the background-networking flags Chromium tries to reach Google
# (component updates, sync, field trials) at start; QUIC would bypass nothing but is noise.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
LOCAL_SCHEMES = ("file:", "data:")
TIMEOUT_MS = 60_000  # a page of ours loads from disk; this is for a hung renderer, not for speed
MISSING_FIX = "make setup (apt-get install chromium)"


class BrowserError(AovpnError):
    """Chromium is missing, would not start, or could not render a page."""


def _local(url: str) -> bool:
    return url.startswith(LOCAL_SCHEMES)


class Browser:
    """A headless Chromium for the length of a `with` block; every page it opens is local only."""

    def __init__(self, executable: str | Path = CHROMIUM):
        self.executable = Path(executable)
        self.blocked: list[str] = []   # URLs a page asked for and did not get
        self.reached: list[str] = []   # URLs outside file:/data: that answered: always empty by construction
        self._browser = None

    def __enter__(self) -> "Browser":
        if not (self.executable.is_file() and os.access(self.executable, os.X_OK)):
            raise BrowserError(f"headless Chromium not found at {self.executable}", hint=MISSING_FIX)
        from playwright.sync_api import Error
        driver = _Driver.acquire()
        try:
            self._browser = driver.chromium.launch(executable_path=str(self.executable), args=ARGS,
                                                   headless=True, timeout=TIMEOUT_MS)
        except Error as exc:
            _Driver.release()
            raise BrowserError(f"{self.executable} did not start: {_first_line(exc)}", hint=MISSING_FIX) from None
        return self

    def __exit__(self, *exc_info) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
            _Driver.release()

    @contextlib.contextmanager
    def page(self, html_path: str | Path) -> Iterator:
        """A page showing a local HTML file once it has loaded, with every non-local request blocked."""
        if self._browser is None:
            raise RuntimeError("Browser used outside its with block")
        path = Path(html_path).resolve()
        if not path.is_file():
            raise BrowserError(f"{path}: no such page to render")
        from playwright.sync_api import Error
        page = self._browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.route(lambda url: not _local(url), self._block)
        page.on("response", lambda r: None if _local(r.url) else self.reached.append(r.url))
        try:
            page.goto(path.as_uri(), wait_until="load")
            yield page
        except Error as exc:
            raise BrowserError(f"{path}: Chromium could not render it: {_first_line(exc)}") from None
        finally:
            page.close()

    def _block(self, route) -> None:
        self.blocked.append(route.request.url)
        route.abort("blockedbyclient")

    def pdf(self, html_path: str | Path, pdf_path: str | Path) -> Path:
        """The page printed to an A4 PDF, backgrounds (the verdict colours) included."""
        pdf_path = Path(pdf_path)
        with self.page(html_path) as page:
            page.pdf(path=str(pdf_path), format="A4", print_background=True,
                     margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
        return pdf_path

    def screenshot(self, html_path: str | Path, png_path: str | Path, selector: str = "#summary") -> Path:
        """A PNG of the element `selector`, or of the whole page when there is no such element."""
        png_path = Path(png_path)
        with self.page(html_path) as page:
            if selector and page.locator(selector).count():
                page.locator(selector).first.screenshot(path=str(png_path))
            else:
                page.screenshot(path=str(png_path), full_page=True)
        return png_path


class _Driver:
    """Playwright's driver process, one per thread and shared within it: its sync API keeps
    to the thread that started it, and in one thread a Browser may be opened while another
    is (a screenshot during a certification). The summary's screenshot has a thread of its
    own (report/pages.py)."""
    _threads = threading.local()

    @classmethod
    def acquire(cls):
        own = cls._threads
        if getattr(own, "playwright", None) is None:
            from playwright.sync_api import sync_playwright
            try:
                own.playwright = sync_playwright().start()
            except Exception as exc:  # the driver process (Playwright's own node) died at start: no type of its own
                raise BrowserError(f"Playwright's driver did not start: {_first_line(exc)}",
                                   hint="make setup (it installs Debian's chromium and libatomic1, which "
                                        "Playwright's driver needs)") from None
            own.users = 0
        own.users += 1
        return own.playwright

    @classmethod
    def release(cls) -> None:
        own = cls._threads
        own.users -= 1
        if own.users == 0 and own.playwright is not None:
            own.playwright.stop()
            own.playwright = None


def launch(executable: str | Path = CHROMIUM) -> Browser:
    """`with launch() as browser:` — one Chromium for several pages."""
    return Browser(executable)


def pdf(html_path: str | Path, pdf_path: str | Path, *, executable: str | Path = CHROMIUM) -> Path:
    with launch(executable) as b:
        return b.pdf(html_path, pdf_path)


def screenshot(html_path: str | Path, png_path: str | Path, selector: str = "#summary", *,
               executable: str | Path = CHROMIUM) -> Path:
    with launch(executable) as b:
        return b.screenshot(html_path, png_path, selector)


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "message", "") or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
