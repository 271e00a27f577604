"""Pictures as inline SVG, drawn by matplotlib (Agg-free SVG backend, no display, no network).

Every chart in every page comes through `svg()`: a figure becomes an <svg> element with
its text kept as text (searchable, selectable) and with hyperlinks where an artist has a
URL (`artist.set_url("#cell-...")`), so a matrix cell is a link to its evidence.

    >>> fig = figure(2, 1)
    >>> _ = fig.gca().bar([0], [1], url="#x")
    >>> s = svg(fig)
    >>> s.startswith("<svg") and 'xlink:href="#x"' in s
    True
"""
from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("svg")  # before pyplot: never a GUI backend, whatever the environment says
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

plt.rcParams.update({
    "svg.fonttype": "none",       # text stays text in the SVG
    "svg.hashsalt": "aovpn-lab",  # stable ids: the same data gives the same picture
    "font.family": "DejaVu Sans",
    "font.size": 9,
})


def figure(width_in: float, height_in: float) -> Figure:
    """A figure not registered with pyplot (no global state to close)."""
    return Figure(figsize=(width_in, height_in))


def svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # inline: without the XML declaration and DOCTYPE
    # Links stay in the page (matplotlib opens them in a new window), and no RDF metadata
    # block, whose namespace URLs would read as references to the web.
    text = text.replace(' target="_blank"', "")
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
