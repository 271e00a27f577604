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
from pathlib import Path

from ..errors import AovpnError
from . import runfile

SCREENSHOT = "summary.png"


def _warn(text: str) -> None:
    print(f"aovpn-lab: warning: {text}", file=sys.stderr)


def build_run_pages(run_dir: Path, *, history_dir: Path | None = None, screenshot: bool = True) -> list[Path]:
    from . import history, page
    run_dir = Path(run_dir)
    try:
        results = runfile.load(run_dir)
    except AovpnError as exc:
        _warn(f"no report: {exc}")
        return []
    written = []
    sections: list[tuple[str, str]] = []
    hist = None
    if history_dir is not None:
        hist = history.scan(Path(history_dir))
        for line in hist.problems:
            _warn(line)
        sections.append(("History", history.section(hist, results)))
    written.append(page.write(run_dir, sections=sections))
    if hist is not None:
        written.append(history.write_index(Path(history_dir)))
    if screenshot:
        from . import browser
        try:
            written.append(browser.screenshot(run_dir / "report.html", run_dir / SCREENSHOT, selector="#summary"))
        except AovpnError as exc:
            _warn(f"no screenshot of the summary: {exc}")
    return written
