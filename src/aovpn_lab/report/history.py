"""The history of runs: what changed since the previous run and since the last green one.

`aovpn-lab run --history DIR` keeps its run folders in DIR (`DIR/<run-id>/results.json`);
this module reads them all, compares a run with the ones before it, and writes the index
(`DIR/history.json`, `DIR/history.html`). A run folder whose results.json cannot be read is
one problem line (the file and what differs); the rest of the history still renders.
Folders without a results.json (`compare-*`, a run that never started) are not runs.

Runs are ordered by `started`, then by run id. Cells are matched across runs by pytest node
id, so runs of other variants or matrices simply have cells that appear or disappear.

A run is *green* when it is complete (every planned cell ended, not interrupted) and would
exit 0: no cell failed, none is inconclusive or ended in an error, and at least one passed.

Changes between a base run and a candidate:

- new failure: pass or not-applicable before, fail, inconclusive or error now;
- fixed: fail, inconclusive or error before, a clean pass now;
- flaky: the cell passed only after failed attempts (`--rerun-failures N`): listed as flaky,
  never counted as a plain pass or as fixed;
- appeared / disappeared: the cell is in only one of the two runs.

Slower beyond noise. A cell's time is judged against the same cell's own earlier times,
not against a fixed percentage. The samples are the cell's durations in the runs before
the candidate that ended in the same state (a timeout-bound failure is not a slow pass),
the latest 30 of them. With fewer than 5 samples the cell is not judged ("not enough
history to judge"). Otherwise

    spread = 1.4826 x MAD (the median absolute deviation, scaled to a standard deviation
             for normally distributed times); when MAD is 0 (every sample the same), the
             resolution of results.json times, 1 ms;
    slower = duration > median + 3.5 x spread

3.5 robust deviations is the usual outlier cut (Iglewicz and Hoaglin): a quiet cell is
flagged for a growth that a noisy cell's own spread already covers.

    >>> judge([1.0, 1.01, 0.99, 1.0, 1.02], 1.2).slower
    True
    >>> judge([1.0, 1.5, 0.6, 1.2, 0.8], 1.2).slower
    False
    >>> judge([1.0, 1.0], 9.0).note
    'not enough history to judge (2 runs)'

Per-cell table (as libreswan's test results): for each cell across the history, its runs,
passes (clean), fails (fail + inconclusive + error), not-applicable, flaky, the runs of that
cell since its last clean pass and since its last failure (a flaky run counts as a failure
there: one attempt failed), and its last state. Worst first.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..pytest_plugin import run_status
from ..verdict import FAIL, INCONCLUSIVE, NOT_APPLICABLE, PASS
from . import html as h
from . import trend
from .runfile import RESULTS_NAME, CellRecord, ResultsFormatError, RunResults, load, write

ERROR = "error"
FLAKY = "flaky"
BAD = (FAIL, INCONCLUSIVE, ERROR)

MIN_SAMPLES = 5       # fewer earlier times than this: not judged
K_DEVIATIONS = 3.5    # robust deviations above the median that count as slower
MAD_TO_SIGMA = 1.4826
RESOLUTION_S = 0.001  # results.json rounds times to 1 ms
WINDOW = 30           # runs in the trend pictures, and timing samples per cell

INDEX_JSON = "history.json"
INDEX_HTML = "history.html"


def state_of(cell: CellRecord) -> str:
    """The cell's state as the history counts it: a pass after failed attempts is 'flaky'."""
    return FLAKY if cell.flaky and cell.state == PASS else cell.state


def is_green(run: RunResults) -> bool:
    return run.complete and run_status(run.counts())[0] == 0


def _key(run: RunResults) -> tuple[str, str]:
    return (run.started, run.run_id)


@dataclass
class History:
    folder: Path
    runs: list[RunResults] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def before(self, run: RunResults) -> list[RunResults]:
        """The runs older than `run` (which need not be in the history yet), oldest first."""
        return [r for r in self.runs if _key(r) < _key(run) and r.path != run.path]

    def previous(self, run: RunResults) -> RunResults | None:
        older = self.before(run)
        return older[-1] if older else None

    def last_green(self, run: RunResults) -> RunResults | None:
        return next((r for r in reversed(self.before(run)) if is_green(r)), None)

    def find(self, run_id: str) -> RunResults | None:
        return next((r for r in self.runs if r.run_id == run_id), None)


def scan(history_dir: Path) -> History:
    """Every readable run in `history_dir`; one problem line for each results.json that is not."""
    history_dir = Path(history_dir)
    hist = History(history_dir)
    if not history_dir.is_dir():
        hist.problems.append(f"{history_dir}: no such folder (no run has been kept there yet)")
        return hist
    seen: dict[str, Path] = {}
    for folder in sorted(history_dir.iterdir()):
        # `latest` is a symlink to a run already listed under its own name.
        if folder.is_symlink() or not folder.is_dir() or not (folder / RESULTS_NAME).is_file():
            continue
        path = folder / RESULTS_NAME
        try:
            run = load(path)
            _check(run)
        except ResultsFormatError as exc:
            hist.problems.append(str(exc))  # the file, what differs and, where known, the fix
            continue
        if run.run_id in seen:
            hist.problems.append(f"{path}: run id {run.run_id} is also {seen[run.run_id]}; this copy is left out")
            continue
        seen[run.run_id] = path
        hist.runs.append(run)
    hist.runs.sort(key=_key)
    return hist


def _check(run: RunResults) -> None:
    """What the history reads beyond runfile.load's checks, so a bad field is a problem line."""
    if not isinstance(run.data.get("started", ""), (str, type(None))):
        raise ResultsFormatError(f"{run.path}: \"started\" is {run.data['started']!r}, not an ISO-8601 time")
    for cell in run.cells:
        if not isinstance(cell.state, str):
            raise ResultsFormatError(f"{run.path}: cell {cell.id}: \"state\" is {cell.state!r}, not a verdict state")
        try:
            cell.duration_s
        except (TypeError, ValueError):
            raise ResultsFormatError(f"{run.path}: cell {cell.id}: \"duration_s\" is "
                                     f"{cell.data['duration_s']!r}, not a number of seconds") from None


# ---- timing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    """One cell's time against its earlier times (the rule in the module docstring)."""
    duration_s: float
    samples: int
    median_s: float | None = None
    spread_s: float | None = None

    @property
    def judged(self) -> bool:
        return self.median_s is not None

    @property
    def limit_s(self) -> float | None:
        return None if self.median_s is None else self.median_s + K_DEVIATIONS * self.spread_s

    @property
    def slower(self) -> bool:
        return self.judged and self.duration_s > self.limit_s

    @property
    def note(self) -> str:
        if not self.judged:
            return f"not enough history to judge ({self.samples} runs)"
        return (f"{self.duration_s:.3f} s against a median of {self.median_s:.3f} s over {self.samples} runs "
                f"(spread {self.spread_s:.3f} s; slower beyond {self.limit_s:.3f} s)")


def judge(earlier: list[float], duration_s: float) -> Timing:
    if len(earlier) < MIN_SAMPLES:
        return Timing(duration_s, len(earlier))
    median = statistics.median(earlier)
    mad = statistics.median(abs(x - median) for x in earlier)
    spread = MAD_TO_SIGMA * mad if mad > 0 else RESOLUTION_S
    return Timing(duration_s, len(earlier), median, spread)


def _earlier_times(cell: CellRecord, older: list[dict[str, CellRecord]]) -> list[float]:
    """`older`: the earlier runs' cells by node id, oldest first."""
    state = state_of(cell)
    times = []
    for cells in older:
        prior = cells.get(cell.nodeid)
        if prior is not None and state_of(prior) == state and prior.data.get("duration_s") is not None:
            times.append(prior.duration_s)
    return times[-WINDOW:]


# ---- changes --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CellChange:
    nodeid: str
    id: str
    before: str   # state in the base run ("-" when absent)
    after: str    # state in the candidate ("-" when absent)
    reason: str = ""
    anchor: str = ""


@dataclass
class Changes:
    base: RunResults
    cand: RunResults
    new_failures: list[CellChange] = field(default_factory=list)
    fixed: list[CellChange] = field(default_factory=list)
    flaky: list[CellChange] = field(default_factory=list)
    other: list[CellChange] = field(default_factory=list)     # any other change of state
    appeared: list[CellChange] = field(default_factory=list)
    disappeared: list[CellChange] = field(default_factory=list)
    slower: list[tuple[CellChange, Timing]] = field(default_factory=list)
    unjudged: dict[str, int] = field(default_factory=dict)    # nodeid -> earlier samples, too few

    @property
    def timing_note(self) -> str:
        """One sentence on the cells whose time could not be judged."""
        if not self.unjudged:
            return ""
        judged = len(self.cand.cells) - len(self.unjudged)
        if judged <= 0:
            return f"Time: not enough history to judge ({max(self.unjudged.values())} runs; needs {MIN_SAMPLES})."
        return (f"Time: {len(self.unjudged)} cell(s) not judged, not enough history "
                f"(fewer than {MIN_SAMPLES} earlier runs in the same state).")

    @property
    def empty(self) -> bool:
        return not any((self.new_failures, self.fixed, self.flaky, self.other, self.appeared, self.disappeared,
                        self.slower))


def _why(cell: CellRecord) -> str:
    """What to say next to a changed cell: its reason, or for a flaky one why an attempt failed."""
    state = state_of(cell)
    if state == FLAKY:
        attempts = [a for a in cell.data.get("attempts") or [] if isinstance(a, dict)]
        return f"failed attempt: {attempts[-1].get('reason') or attempts[-1].get('state')}" if attempts else ""
    return "" if state == PASS else cell.reason


def changes(base: RunResults, cand: RunResults, history: History) -> Changes:
    out = Changes(base, cand)
    before, after = base.by_nodeid(), cand.by_nodeid()
    older = [r.by_nodeid() for r in history.before(cand)]
    for nodeid, cell in after.items():
        now = state_of(cell)
        prior = before.get(nodeid)
        was = state_of(prior) if prior is not None else "-"
        change = CellChange(nodeid, cell.id, was, now, _why(cell), cell.anchor)
        if prior is None:
            out.appeared.append(change)
        elif now == FLAKY:
            out.flaky.append(change)
        elif was in (PASS, FLAKY, NOT_APPLICABLE) and now in BAD:
            out.new_failures.append(change)
        elif was in BAD and now == PASS:
            out.fixed.append(change)
        elif was != now:
            out.other.append(change)
        if cell.data.get("duration_s") is not None:
            timing = judge(_earlier_times(cell, older), cell.duration_s)
            if not timing.judged:
                out.unjudged[nodeid] = timing.samples
            elif timing.slower:
                out.slower.append((change, timing))
    out.disappeared = [CellChange(n, c.id, state_of(c), "-") for n, c in before.items() if n not in after]
    out.slower.sort(key=lambda ct: ct[1].duration_s - ct[1].limit_s, reverse=True)
    return out


# ---- per-cell table -------------------------------------------------------------------------

@dataclass
class CellHistory:
    nodeid: str
    id: str
    runs: int = 0
    passes: int = 0
    fails: int = 0
    not_applicable: int = 0
    flaky: int = 0
    since_pass: int | None = None   # the cell's runs after its last clean pass; None: never passed
    since_fail: int | None = None   # ... after its last fail/inconclusive/error/flaky; None: never
    last_state: str = "-"

    def add(self, state: str) -> None:
        self.runs += 1
        self.passes += state == PASS
        self.fails += state in BAD
        self.not_applicable += state == NOT_APPLICABLE
        self.flaky += state == FLAKY
        self.since_pass = 0 if state == PASS else None if self.since_pass is None else self.since_pass + 1
        failed = state in BAD or state == FLAKY
        self.since_fail = 0 if failed else None if self.since_fail is None else self.since_fail + 1
        self.last_state = state

    def badness(self) -> tuple:
        """Failing now, then flaky now, then longest without a pass, most fails, most flaky."""
        never = float("inf")
        return (self.last_state in BAD, self.last_state == FLAKY,
                never if self.since_pass is None and self.fails else self.since_pass or 0,
                self.fails, self.flaky)


def cell_table(runs: Iterable[RunResults]) -> list[CellHistory]:
    """Each cell across `runs` (oldest first), worst first."""
    rows: dict[str, CellHistory] = {}
    for run in runs:
        for cell in run.cells:
            row = rows.setdefault(cell.nodeid, CellHistory(cell.nodeid, cell.id))
            row.id = cell.id
            row.add(state_of(cell))
    return sorted(rows.values(), key=lambda r: (tuple(-float(x) for x in r.badness()), r.id))


def _table_html(rows: list[CellHistory]) -> str:
    def since(n: int | None) -> str:
        return "never" if n is None else str(n)
    body = [[h.esc(r.id), str(r.runs), str(r.passes), str(r.fails), str(r.not_applicable), str(r.flaky),
             since(r.since_pass), since(r.since_fail), h.badge(r.last_state)] for r in rows]
    return h.table(["cell", "runs", "passes", "fails", "not applicable", "flaky", "runs since last pass",
                    "runs since last fail", "last state"], body)


# ---- HTML -----------------------------------------------------------------------------------

def _flaky(run: RunResults) -> int:
    return sum(1 for c in run.cells if state_of(c) == FLAKY)


def _counts_html(run: RunResults) -> str:
    counts = run.counts()
    flaky = _flaky(run)
    counts[PASS] -= flaky
    counts[FLAKY] = flaky
    return " ".join(h.badge(k, f"{n} {k}") for k, n in counts.items() if n)


def _run_link(run: RunResults, prefix: str) -> str:
    return f"<a href='{h.esc(prefix + run.run_id + '/report.html')}'>{h.esc(run.run_id)}</a>"


def _differs(base: RunResults, run: RunResults) -> str:
    """What else differed between the two runs, so appeared/disappeared cells are no surprise."""
    notes = []
    if base.variant != run.variant:
        notes.append(f"variant {base.variant}, this run {run.variant}")
    if base.matrix_digest != run.matrix_digest:
        notes.append("another matrix")
    return f" <span class='muted small'>({h.esc('; '.join(notes))})</span>" if notes else ""


def _change_list(title: str, items: list[CellChange], href: str) -> str:
    if not items:
        return ""
    lis = "".join(
        f"<li><a href='{h.esc(href + '#' + c.anchor)}'>{h.esc(c.id)}</a> {h.badge(c.before)} &rarr; "
        f"{h.badge(c.after)}{' <span class=small>' + h.esc(c.reason) + '</span>' if c.reason else ''}</li>"
        if c.anchor else f"<li>{h.esc(c.id)} {h.badge(c.before)} &rarr; {h.badge(c.after)}</li>"
        for c in items)
    return f"<p><b>{h.esc(title)}</b> ({len(items)})</p><ul>{lis}</ul>"


def changes_html(ch: Changes, href: str = "", *, timing: bool = True) -> str:
    """`href`: the candidate's report.html relative to the page (empty: this page). `timing`: with
    the slower cells (judged against the whole history, so the same whatever the base)."""
    parts = [
        _change_list("New failures", ch.new_failures, href),
        _change_list("Fixed", ch.fixed, href),
        _change_list("Flaky (passed only after failed attempts)", ch.flaky, href),
        _change_list("Other changes of state", ch.other, href),
        _change_list("Appeared", ch.appeared, href),
        _change_list("Disappeared", ch.disappeared, href),
    ]
    if timing and ch.slower:
        lis = "".join(f"<li><a href='{h.esc(href + '#' + c.anchor)}'>{h.esc(c.id)}</a> "
                      f"<span class=small>{h.esc(t.note)}</span></li>" for c, t in ch.slower)
        parts.append(f"<p><b>Slower beyond noise</b> ({len(ch.slower)})</p><ul>{lis}</ul>")
    if not any(parts):
        parts.append("<p>No cell changed state" + (", none is slower beyond its noise.</p>" if timing else ".</p>"))
    if timing and ch.timing_note:
        parts.append(f"<p class='muted small'>{h.esc(ch.timing_note)}</p>")
    return "".join(parts)


def _problems_html(problems: list[str]) -> str:
    if not problems:
        return ""
    return ("<p><b>Runs left out of the history</b></p><ul>"
            + "".join(f"<li><code>{h.esc(p)}</code></li>" for p in problems) + "</ul>")


def _pass_share(run: RunResults) -> float | None:
    """Clean passes as a share of the applicable cells (None: none applicable)."""
    states = [state_of(c) for c in run.cells if c.state != NOT_APPLICABLE]
    return states.count(PASS) / len(states) if states else None


def _trend_html(runs: list[RunResults], current: RunResults, prefix: str) -> str:
    ids = [r.run_id for r in runs]
    hrefs = [prefix + i + "/report.html" for i in ids]
    now = next((i for i, r in enumerate(runs) if r.path == current.path), None)
    times: dict[str, list[float | None]] = {}
    owner: dict[str, str] = {}  # picture label -> node id: a test id shared by two files is labelled by node id
    for j, run in enumerate(runs):
        for cell in run.cells:
            if cell.data.get("duration_s") is not None and cell.state != NOT_APPLICABLE:
                name = cell.id if owner.setdefault(cell.id, cell.nodeid) == cell.nodeid else cell.nodeid
                times.setdefault(name, [None] * len(runs))[j] = cell.duration_s
    return (f"<div id='trend' class='picture'>"
            f"{trend.pass_rate(ids, [_pass_share(r) for r in runs], [_flaky(r) for r in runs], hrefs, now)}"
            f"{trend.cell_times(ids, times)}</div>")


def section(history: History, run: RunResults) -> str:
    """The history block of a run's report.html (links relative to DIR/<run-id>/)."""
    older = history.before(run)
    parts = [f"<p><a href='../{INDEX_HTML}'>Every run in this history</a></p>",
             _problems_html(history.problems)]
    prev, green = history.previous(run), history.last_green(run)
    if prev is None:
        parts.append("<p>The first run in this history: nothing to compare with.</p>")
    else:
        parts.append(f"<h3>Since the previous run, {_run_link(prev, '../')}{_differs(prev, run)}</h3>")
        parts.append(changes_html(changes(prev, run, history)))
        if green is None:
            parts.append("<p>No earlier run was green.</p>")
        elif green.path == prev.path:
            parts.append(f"<p>The previous run, {_run_link(green, '../')}, was the last green one.</p>")
        else:
            parts.append(f"<h3>Since the last green run, {_run_link(green, '../')}{_differs(green, run)}</h3>")
            parts.append(changes_html(changes(green, run, history), timing=False))
    window = [*older[-(WINDOW - 1):], run]
    parts.append(f"<h3>Trend over the last {len(window)} runs</h3>")
    parts.append(_trend_html(window, run, "../"))
    unsteady = [r for r in cell_table([*older, run]) if r.fails or r.flaky]
    parts.append("<h3>Flaky and failing cells across the history</h3>")
    parts.append(_table_html(unsteady) if unsteady else "<p>Every cell passed or was not applicable in every run.</p>")
    return "".join(parts)


def _entry(run: RunResults, folder: Path) -> dict:
    try:
        rel = str(run.run_dir.relative_to(folder))
    except ValueError:
        rel = str(run.run_dir)
    return {"run_id": run.run_id, "started": run.started, "variant": run.variant, "verdicts": run.counts(),
            "complete": run.complete, "green": is_green(run), "matrix_digest": run.matrix_digest,
            "flaky": _flaky(run), "path": rel}


def write_index(history_dir: Path) -> Path:
    """DIR/history.json and DIR/history.html from every run in DIR; returns the HTML page's path."""
    history_dir = Path(history_dir)
    history_dir.mkdir(parents=True, exist_ok=True)
    hist = scan(history_dir)
    entries = [_entry(r, history_dir) for r in hist.runs]
    write(history_dir / INDEX_JSON, {"tool": "aovpn-lab", "kind": "history", "runs": entries,
                                     "problems": hist.problems})
    parts = [_problems_html(hist.problems)]
    if hist.runs:
        window = hist.runs[-WINDOW:]
        parts.append(f"<h2>Trend over the last {len(window)} runs</h2>")
        parts.append(_trend_html(window, window[-1], ""))
    rows = [[_run_link(r, ""), h.esc(r.started), h.esc(r.variant), _counts_html(r),
             "yes" if r.complete else "no", h.badge(PASS, "green") if e["green"] else "",
             f"<code>{h.esc(r.matrix_digest[:12])}</code>"] for r, e in zip(reversed(hist.runs), reversed(entries))]
    parts.append(f"<h2>Runs ({len(rows)})</h2>")
    parts.append(h.table(["run", "started", "variant", "verdicts", "complete", "green", "matrix"], rows)
                 if rows else "<p>No run yet.</p>")
    parts.append("<h2>Cells across the history</h2>")
    parts.append(_table_html(cell_table(hist.runs)))
    page = h.page("aovpn-lab history", "".join(parts), nav=[("latest run", "latest/report.html")])
    out = history_dir / INDEX_HTML
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(page)
    os.replace(tmp, out)  # a browser reloading the page never sees half of it
    return out

