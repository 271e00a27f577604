"""The history's pictures: pass rate per run, and per-cell time as a cells x runs heatmap.

Both take plain series (one value per run, oldest first) and return inline SVG via
charts.svg; the history decides what the values are.

    >>> s = pass_rate(["r1", "r2"], [1.0, 0.5], [0, 2], ["r1/report.html", "r2/report.html"])
    >>> s.startswith("<svg") and 'xlink:href="r2/report.html"' in s
    True
    >>> "cell a" in cell_times(["r1", "r2", "r3"], {"cell a": [1.0, 2.0, None], "cell b": [1.0, 1.0, 1.0]})
    True
"""
from __future__ import annotations

import math
import re
import statistics

import matplotlib
import numpy as np

from . import charts
from .html import COLOURS

ROWS = 20      # cells in the time picture: those whose time varies most
CLIP = 2.0     # colour scale: log2(time / the cell's median), +-2 = 4x slower or faster
FLOOR_S = 0.001  # results.json resolution: a 0 s time is "under 1 ms"


def label(run_id: str) -> str:
    """A run's short name on an axis: '20261202T101500Z-1a2b3c' -> '12-02 10:15'.

    >>> label("20261202T101500Z-1a2b3c"), label("nightly-7")
    ('12-02 10:15', 'nightly-7')
    """
    m = re.match(r"\d{4}(\d\d)(\d\d)T(\d\d)(\d\d)", run_id)
    return f"{m[1]}-{m[2]} {m[3]}:{m[4]}" if m else run_id[:16]


def pass_rate(runs: list[str], passed: list[float | None], flaky: list[int], hrefs: list[str],
              current: int | None = None) -> str:
    """Above: the share of applicable cells that passed cleanly (the scale starts near the lowest
    value, so a single failing cell shows). Below: the flaky cells per run. Each mark links to its run."""
    fig = charts.figure(max(4.0, 0.28 * len(runs) + 1.5), 3.0)
    top, low = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    x = list(range(len(runs)))
    y = [math.nan if v is None else 100 * v for v in passed]
    top.plot(x, y, color=COLOURS["pass"], linewidth=1.2)
    top.scatter(x, y, color=COLOURS["pass"], s=14, zorder=3).set_urls(hrefs)
    seen = [v for v in y if not math.isnan(v)]
    floor = max(0.0, math.floor((min(seen, default=100.0) - 2) / 5) * 5)
    top.set_ylim(floor, 100.5)
    top.set_ylabel("% passed")
    for bar, href in zip(low.bar(x, flaky, color=COLOURS["flaky"], width=0.6), hrefs):
        bar.set_url(href)
    low.set_ylim(0, max(1, *flaky) * 1.15)
    low.set_ylabel("flaky")
    low.yaxis.get_major_locator().set_params(integer=True)
    for ax in (top, low):
        ax.grid(axis="y", color="#eee")
        if current is not None:
            ax.axvline(current, color="#999", linewidth=0.8, linestyle=":")
    low.set_xticks(x, [label(r) for r in runs], rotation=60, ha="right", fontsize=7)
    return charts.svg(fig)


def _variation(times: list[float | None]) -> float:
    seen = [max(t, FLOOR_S) for t in times if t is not None]
    return math.log2(max(seen) / min(seen)) if len(seen) > 1 else 0.0


def cell_times(runs: list[str], times: dict[str, list[float | None]], rows: int = ROWS) -> str:
    """The cells whose time varies most, each run coloured by its time against the cell's median."""
    chosen = sorted((c for c in times if _variation(times[c]) > 0), key=lambda c: (-_variation(times[c]), c))[:rows]
    fig = charts.figure(max(4.0, 0.28 * len(runs) + 1.5), 0.8 + 0.18 * max(len(chosen), 1))
    ax = fig.gca()
    if not chosen:
        ax.text(0.5, 0.5, "no cell's time varied across these runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return charts.svg(fig)
    grid = np.full((len(chosen), len(runs)), np.nan)
    for i, cell in enumerate(chosen):
        seen = [max(t, FLOOR_S) for t in times[cell] if t is not None]
        mid = statistics.median(seen)
        for j, t in enumerate(times[cell]):
            if t is not None:
                grid[i, j] = max(-CLIP, min(CLIP, math.log2(max(t, FLOOR_S) / mid)))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#ffffff")  # white: the cell was not in that run
    mesh = ax.pcolormesh(np.ma.masked_invalid(grid), cmap=cmap, vmin=-CLIP, vmax=CLIP, edgecolors="#f4f4f4",
                         linewidth=0.3)
    ax.set_xticks([j + 0.5 for j in range(len(runs))], [label(r) for r in runs], rotation=60, ha="right",
                  fontsize=7)
    ax.set_yticks([i + 0.5 for i in range(len(chosen))], chosen, fontsize=7)
    ax.invert_yaxis()  # the most varying cell on top
    bar = fig.colorbar(mesh, ax=ax, fraction=0.03, pad=0.01)
    bar.set_ticks([-2, -1, 0, 1, 2], labels=["4x faster", "2x", "median", "2x", "4x slower"])
    bar.ax.tick_params(labelsize=7)
    ax.set_title("cell time against the cell's median (the cells that vary most)", fontsize=8)
    return charts.svg(fig)
