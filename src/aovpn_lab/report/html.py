"""The HTML every page shares: one skeleton, one style sheet, one verdict palette, one
evidence block. Pages are self-contained (no network): styles inline, pictures inline SVG.

    >>> "<svg" in page("t", "<svg></svg>") and "http" not in page("t", "").split("<body>")[1]
    True
    >>> esc("<b>")
    '&lt;b&gt;'
"""
from __future__ import annotations

import html
import json
from typing import Any

# Verdict states and their colours; charts (matplotlib) and HTML badges use the same ones.
COLOURS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "inconclusive": "#ef8f00",
    "not-applicable": "#9e9e9e",
    "error": "#6a1b9a",
    "not-tested": "#ffffff",
    "flaky": "#1565c0",
}
TEXT_ON = {"not-tested": "#333", "not-applicable": "#111"}

STYLE = """
body{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:1.5em;color:#1b1b1b;max-width:1600px}
h1{font-size:1.5em;margin:.2em 0} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0} th,td{padding:.2em .6em;vertical-align:top;text-align:left}
table.grid th,table.grid td{border:1px solid #ddd} table.grid tr:nth-child(even){background:#fafafa}
.badge{display:inline-block;padding:0 .45em;border-radius:.3em;color:#fff;font-size:90%;white-space:nowrap}
.muted{color:#666} .small{font-size:88%} pre{white-space:pre-wrap;margin:0}
details>summary{cursor:pointer} .evidence{margin:.3em 0 1em 1em}
.picture svg{max-width:100%;height:auto} nav a{margin-right:1em}
.picture svg text{pointer-events:none} /* a glyph on a matrix square must not catch the click meant for its link */
@media print{nav{display:none} details{display:block} details>summary{list-style:none}}
"""


def esc(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def badge(state: str, text: str | None = None) -> str:
    colour = COLOURS.get(state, "#555")
    fg = TEXT_ON.get(state, "#fff")
    border = ";border:1px solid #999" if state == "not-tested" else ""
    return f"<span class='badge' style='background:{colour};color:{fg}{border}'>{esc(text or state)}</span>"


def page(title: str, body: str, *, nav: list[tuple[str, str]] | None = None) -> str:
    links = "".join(f"<a href='{esc(href)}'>{esc(text)}</a>" for text, href in (nav or []))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>{f'<nav>{links}</nav>' if links else ''}"
            f"<h1>{esc(title)}</h1>{body}</body></html>")


def table(header: list[str], rows: list[list[str]], cls: str = "grid") -> str:
    """Rows of already-escaped HTML cells."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def evidence(v: dict[str, Any]) -> str:
    """A verdict (Verdict.to_json()) as HTML: the sentence, the fix, then each evidence item."""
    rows = []
    for key, value in (v.get("evidence") or {}).items():
        if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            cell = _records(value)
        elif isinstance(value, (dict, list)):
            cell = f"<pre>{esc(json.dumps(value, indent=1, default=str))}</pre>"
        elif isinstance(value, str) and "\n" in value:
            cell = f"<pre>{esc(value)}</pre>"
        else:
            cell = esc(value)
        rows.append(f"<tr><th>{esc(key)}</th><td>{cell}</td></tr>")
    head = (f"<p>{badge(v.get('state', 'error'))} <b>{esc(v.get('requirement'))}</b>: expected "
            f"<b>{esc(v.get('expected'))}</b>, observed <b>{esc(v.get('observed'))}</b> &mdash; "
            f"{esc(v.get('reason'))}</p>")
    fix = v.get("fix")
    show_fix = fix and (v.get("state") != "pass" or v.get("expected") != "connected")
    return (f"<div class='aovpn-evidence'>{head}{f'<p><b>Fix:</b> {esc(fix)}</p>' if show_fix else ''}"
            f"<table class='small'>{''.join(rows)}</table></div>")


def _records(items: list[dict]) -> str:
    """A list of records (e.g. IKE messages) as a compact table rather than a JSON dump."""
    cols = [k for k in items[0] if k not in ("src", "dst", "wire_bytes")]
    rows = [[esc(" ".join(map(str, it.get(c))) if isinstance(it.get(c), list) else it.get(c, "")) for c in cols]
            for it in items]
    return table(cols, rows, cls="small")
