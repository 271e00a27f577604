"""report.html: a run's page, built from its results.json alone.

In order: the header (run, counts, a banner when the run is incomplete, the environment),
the matrix summary (pictures whose squares link to each cell's evidence), the requirement
list with each requirement's status, the sections given by the caller (e.g. the history),
then the detail: one row per cell with its evidence folded beneath it. The page is
self-contained and the same results always give the same bytes (`report rebuild`).

    >>> from .runfile import RunResults
    >>> r = RunResults.from_data({"tool": "aovpn-lab", "schema": 2, "run_id": "r1", "cells": [
    ...     {"id": "test_x[gw1]", "nodeid": "t.py::test_x[gw1]", "state": "pass"}]}, "/nowhere/results.json")
    >>> text = render(r)
    >>> text.startswith("<!DOCTYPE html>") and "id='summary'" in text and f"id='{r.cells[0].anchor}'" in text
    True
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import requirements
from ..verdict import STATES
from . import matrixview, runfile
from .html import badge, esc, evidence, page, table
from .runfile import CellRecord, RunResults

PAGE_NAME = "report.html"
PYTEST_HTML = "pytest-html.html"   # pytest-html's own page, with pytest's logs
ERROR, NOT_TESTED = "error", matrixview.NOT_TESTED
COUNTED = (*STATES, ERROR)         # the states a requirement's cells are counted in

# Wide evidence (message tables) scrolls inside its row rather than widening the whole detail table.
WIDE = "overflow-x:auto;max-width:calc(100vw - 5em)"
BANNER = "background:#fff3cd;border:1px solid #e0b000;padding:.4em .8em;margin:.6em 0"

# Opens the evidence a link points at (a folded <details> would hide what the reader followed)
# and shows the cell's row above it.
OPEN_TARGET = ("<script>(function(){function show(){var id=decodeURIComponent(location.hash.slice(1));"
               "var d=id&&document.getElementById(id);if(d&&d.tagName==='DETAILS'){d.open=true;"
               "var row=d.closest('tr');(row&&row.previousElementSibling||d).scrollIntoView();}}"
               "window.addEventListener('hashchange',show);"
               "window.addEventListener('load',show);})();</script>")


def render(results: RunResults, *, sections: Sequence[tuple[str, str]] = ()) -> str:
    cells = matrixview.every_cell(results)
    extra = [(f"section-{i}", title, body) for i, (title, body) in enumerate(sections, 1)]
    nav = [("Summary", "#summary"), ("Requirements", "#requirements"),
           *((title, "#" + sid) for sid, title, _ in extra), ("Detail", "#detail")]
    if (results.run_dir / PYTEST_HTML).exists():
        nav.append(("pytest's page", PYTEST_HTML))
    body = "".join([
        _header(results),
        _summary(cells),
        _requirements(results.cells),
        *(f"<h2 id='{sid}'>{esc(title)}</h2>{html}" for sid, title, html in extra),
        _detail(cells),
        OPEN_TARGET,
    ])
    return page(f"aovpn-lab run {results.run_id}", body, nav=nav)


def write(run_dir: Path, *, sections: Sequence[tuple[str, str]] = ()) -> Path:
    """run_dir/report.html from run_dir/results.json, written atomically."""
    run_dir = Path(run_dir)
    text = render(runfile.load(run_dir), sections=sections)
    out = run_dir / PAGE_NAME
    tmp = out.with_name(f".{PAGE_NAME}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out


def _header(results: RunResults) -> str:
    data = results.data
    counts = results.counts()
    badges = [badge(s, f"{counts[s]} {s}") for s in STATES]
    if counts[ERROR]:
        badges.append(badge(ERROR, f"{counts[ERROR]} {ERROR}"))
    flaky = sum(1 for c in results.cells if c.flaky)
    if flaky:
        badges.append(badge("flaky", f"{flaky} flaky"))
    facts = [("run", results.run_id), ("started", results.started or "-"), ("finished", data.get("finished")),
             ("inventory", data.get("inventory")), ("variant", results.variant),
             ("selection", data.get("selection"))]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    env = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _flat(results.environment))
    return (f"<table class='small'>{rows}</table><p>{' '.join(badges)}</p>{_banner(results)}"
            + (f"<details open><summary>Environment</summary><table class='small'>{env}</table></details>" if env else ""))


def _banner(results: RunResults) -> str:
    if results.complete:
        return ""
    planned = results.planned
    ran = {c.nodeid for c in results.cells}
    why = results.data.get("interrupted")
    text = (f"incomplete: {sum(1 for n in planned if n in ran)} of {len(planned)} planned cells ran"
            + (f" (interrupted by {why})" if why else ""))
    return f"<p class='banner' style='{BANNER}'><b>{esc(text)}</b></p>"


def _flat(env: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in env.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key} / ")
        else:
            yield prefix + str(key), value


def _summary(cells: list[CellRecord]) -> str:
    conn, checks = matrixview.layout(cells)
    parts = [f"<div class='picture'>{matrixview.legend()}</div>"]
    for grid, axes in ((conn, "rows: network conditions; columns: protocol / profile / gateway"),
                       (checks, "rows: checks (and profile); columns: gateway or case")):
        if len(grid):
            parts.append(f"<h3>{esc(grid.title)} <span class='muted small'>({len(grid)} cells; {esc(axes)})</span>"
                         f"</h3><div class='picture'>{matrixview.draw(grid)}</div>")
    if not cells:
        parts.append("<p class='muted'>No cell ran.</p>")
    return f"<h2>Matrix summary</h2><div id='summary'>{''.join(parts)}</div>"


def _requirements(cells: Sequence[CellRecord]) -> str:
    cited: dict[str, list[CellRecord]] = {}
    for cell in cells:
        for rid in cell.requirements:
            cited.setdefault(rid, []).append(cell)
    catalogue = requirements.catalogue()
    # Every catalogued requirement, then any a cell cites that the catalogue lacks: none is hidden.
    rows = []
    for rid in [*catalogue, *(r for r in cited if r not in catalogue)]:
        req = catalogue.get(rid)
        mine = cited.get(rid, [])
        status = runfile.requirement_status(c.state for c in mine)
        first = next((c for c in mine if c.state == status), None)
        name = f"<a href='#{first.anchor}'>{esc(rid)}</a>" if first else esc(rid)
        name = _nowrap(name)
        text = esc(req.text) if req else "<i>not in the requirement catalogue</i>"
        if req is not None and req.checked_by == "audit" and not mine:
            text += "<p class='small muted'>Checked on the deployment by <code>aovpn-lab audit</code>: no cell of " \
                    "the suite can observe it.</p>"
        if status == "not-applicable":
            reasons = dict.fromkeys(c.reason for c in mine if c.reason)
            text += "<ul class='small'>" + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>"
        links = "".join(f"<li>{badge(c.state)} <a href='#{c.anchor}'>{esc(c.id)}</a></li>" for c in mine)
        listing = f"<details><summary>{len(mine)}</summary><ul class='small'>{links}</ul></details>" if mine else "0"
        rows.append([name, esc(req.level if req else "?"), badge(status),
                     *(str(sum(1 for c in mine if c.state == s) or "") for s in COUNTED), listing, text])
    return ("<h2 id='requirements'>Requirements</h2>"
            + table(["requirement", "level", "status", *COUNTED, "cells", "text"], rows))


def _detail(cells: list[CellRecord]) -> str:
    head = "".join(f"<th>{h}</th>" for h in
                   ("verdict", "cell", "requirements", "expected", "observed", "reason", "duration"))
    rows = []
    for cell in cells:
        v = cell.verdict
        state = badge(cell.state) + (" " + badge("flaky") if cell.flaky else "")
        duration = f"{cell.duration_s:.1f} s" if cell.state != NOT_TESTED else "-"
        row = [state, f"<code>{esc(cell.id)}</code>", "<br>".join(_nowrap(esc(r)) for r in cell.requirements) or "-",
               esc(v.get("expected")), esc(v.get("observed")), esc(_first_line(cell.reason)), duration]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                    f"<tr><td colspan='{len(row)}'><details id='{cell.anchor}'><summary class='small muted'>"
                    f"evidence</summary><div class='evidence' style='{WIDE}'>{_evidence(cell)}</div></details></td></tr>")
    return (f"<h2 id='detail'>Detail</h2><table class='grid'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _first_line(text: str) -> str:
    """The row's reason: a pytest message can be a whole traceback, which the evidence holds."""
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else "-"


def _nowrap(html: str) -> str:
    """Requirement ids read as one word: a line break at their hyphens splits them."""
    return f"<span style='white-space:nowrap'>{html}</span>"


def _evidence(cell: CellRecord) -> str:
    parts = [f"<p class='small muted'>{esc(cell.nodeid)}</p>"]
    if cell.state == NOT_TESTED:
        parts.append("<p>Planned, but the run ended before this cell ran.</p>")
    if cell.verdict:
        parts.append(evidence(cell.verdict))
    attempts = cell.data.get("attempts") or []
    if attempts:
        rows = [[badge(a.get("state", ERROR)), esc(a.get("reason")), esc(a.get("duration_s"))] for a in attempts]
        parts.append("<p><b>Earlier attempts</b></p>" + table(["state", "reason", "duration (s)"], rows, "small"))
    if cell.captures:
        parts.append("<p><b>Captures:</b> " + ", ".join(f"<a href='{esc(p)}'>{esc(p)}</a>" for p in cell.captures)
                     + "</p>")
    message = cell.data.get("message")
    if message and (not cell.verdict or cell.state == ERROR):
        parts.append(f"<p><b>pytest:</b></p><pre class='small'>{esc(message)}</pre>")
    return "".join(parts)
