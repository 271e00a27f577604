"""The matrix summary of report.html: cells laid out in grids, drawn as linked squares.

Connectivity cells (a network condition in their place) go in one grid: a row per
condition, a column per protocol / profile / gateway. Checks without a condition go in a
second grid: a row per test (and profile), a column per gateway. Each square is a link
to the cell's evidence; cells that share a position split its square, so none is hidden.

    >>> a = CellRecord({"id": "test_sstp_x[mschapv2-via-open-to-gw1]", "state": "pass"})
    >>> place_of(a)
    {'protocol': 'sstp', 'profile': 'mschapv2', 'condition': 'open', 'gateway': 'gw1'}
    >>> conn, checks = layout([a])
    >>> conn.rows, conn.cols, [m.state for m in conn.marks[0, 0]]
    (['open'], ['sstp / mschapv2 / gw1'], ['pass'])
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from matplotlib.patches import Patch, Rectangle

from . import charts
from .html import COLOURS, TEXT_ON
from .runfile import CellRecord, RunResults

NO_CONDITION = "-"   # the condition of checks that do not run under a network condition
NOT_TESTED = "not-tested"

# A glyph per state, so the picture does not rely on colour alone.
GLYPHS = {"pass": "\u2713", "fail": "\u2717", "inconclusive": "?", "not-applicable": "\u2013", "error": "!",
          "flaky": "\u21bb", NOT_TESTED: ""}
LEGEND = ("pass", "fail", "inconclusive", "not-applicable", "error", "flaky", NOT_TESTED)

# Older records have no "place": the parametrisation ids follow "<profile>-via-<condition>-to-<gateway>".
_ID = re.compile(r"^(?P<test>[^\[]+)(?:\[(?P<param>.*)\])?$")
_CONNECTIVITY = re.compile(r"^(?:(?P<profile>.+?)-)?via-(?P<condition>.+)-(?:to|on)-(?P<gateway>[^-]+)$")
_PROTOCOL = re.compile(r"^test_(ikev2|sstp|tlsvpn)_")

CELL_IN = 0.3   # the side of one square, inches: ~110 cells stay readable on a screen


@dataclass(frozen=True)
class Mark:
    """One cell's square (or its share of a square)."""
    anchor: str
    id: str
    state: str
    flaky: bool

    @property
    def look(self) -> str:
        """The palette key: flaky cells are never drawn as a plain pass."""
        return "flaky" if self.flaky else self.state


@dataclass
class Grid:
    title: str
    rows: list[str] = field(default_factory=list)
    cols: list[str] = field(default_factory=list)
    marks: dict[tuple[int, int], list[Mark]] = field(default_factory=dict)

    def add(self, row: str, col: str, mark: Mark) -> None:
        for labels, label in ((self.rows, row), (self.cols, col)):
            if label not in labels:
                labels.append(label)  # in the order first seen
        self.marks.setdefault((self.rows.index(row), self.cols.index(col)), []).append(mark)

    def __len__(self) -> int:
        return sum(len(m) for m in self.marks.values())


def cell_test(cell: CellRecord) -> str:
    return cell.data.get("test") or _ID.match(cell.id).group("test")


def place_of(cell: CellRecord) -> dict[str, str]:
    """The cell's place; for records without one, what its id says (checks when it names no condition)."""
    if cell.place.get("condition"):
        return dict(cell.place)
    m = _ID.match(cell.id)
    name, param = cell_test(cell), m.group("param") or ""
    proto = _PROTOCOL.match(name)
    conn = _CONNECTIVITY.match(param)
    if conn:
        return {"protocol": proto.group(1) if proto else name.removeprefix("test_"),
                "profile": conn.group("profile") or "-", "condition": conn.group("condition"),
                "gateway": conn.group("gateway")}
    return {"protocol": proto.group(1) if proto else "-", "profile": "-", "condition": NO_CONDITION,
            "gateway": param or "-"}


def every_cell(results: RunResults) -> list[CellRecord]:
    """The cells that ran, then the planned ones that did not (state "not-tested")."""
    ran = {c.nodeid for c in results.cells}
    missing = [CellRecord({"id": n.rsplit("::", 1)[-1], "nodeid": n, "state": NOT_TESTED})
               for n in results.planned if n not in ran]
    return [*results.cells, *missing]


def layout(cells: Iterable[CellRecord]) -> tuple[Grid, Grid]:
    conn, checks = Grid("Connectivity"), Grid("Checks")
    for cell in cells:
        p = place_of(cell)
        mark = Mark(cell.anchor, cell.id, cell.state, cell.flaky)
        if p.get("condition", NO_CONDITION) == NO_CONDITION:
            test, profile = cell_test(cell), p.get("profile") or "-"
            # Some records repeat the test's name as its profile: once is enough in a label.
            row = test + ("" if profile in ("-", test.removeprefix("test_")) else f" / {profile}")
            checks.add(row, p.get("gateway") or "-", mark)
        else:
            col = " / ".join(p.get(k) or "-" for k in ("protocol", "profile", "gateway"))
            conn.add(p["condition"], col, mark)
    return conn, checks


def draw(grid: Grid) -> str:
    """The grid as an inline SVG; every mark is a link to "#" + its cell's anchor."""
    nr, nc = len(grid.rows), len(grid.cols)
    fig = charts.figure(max(nc, 1) * CELL_IN, max(nr, 1) * CELL_IN)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, nc)
    ax.set_ylim(nr, 0)
    for (r, c), marks in sorted(grid.marks.items()):
        share = 1 / len(marks)
        for i, mark in enumerate(marks):
            url = "#" + mark.anchor
            edge = "#999999" if mark.look == NOT_TESTED else "#ffffff"
            ax.add_patch(Rectangle((c + i * share, r), share, 1, facecolor=COLOURS.get(mark.look, "#555555"),
                                   edgecolor=edge, linewidth=1, url=url))
            if len(marks) <= 2 and GLYPHS.get(mark.look):
                ax.text(c + (i + 0.5) * share, r + 0.5, GLYPHS[mark.look], ha="center", va="center",
                        fontsize=8 if len(marks) == 1 else 6, color=TEXT_ON.get(mark.look, "#ffffff"), url=url)
    ax.set_xticks([c + 0.5 for c in range(nc)], grid.cols, rotation=60, ha="left", rotation_mode="anchor")
    ax.set_yticks([r + 0.5 for r in range(nr)], grid.rows)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return charts.svg(fig)


def legend() -> str:
    """The states and their colours, drawn once for both grids."""
    fig = charts.figure(7.5, 0.3)
    handles = [Patch(facecolor=COLOURS[s], edgecolor="#999999", label=f"{GLYPHS[s]} {s}".strip()) for s in LEGEND]
    fig.legend(handles=handles, loc="center", ncol=len(handles), frameon=False, handlelength=1.2)
    return charts.svg(fig)
