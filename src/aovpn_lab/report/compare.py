"""Before and after a change: what a candidate run breaks, fixes or leaves, cell by cell and
requirement by requirement, against a baseline run of the same matrix.

A cell breaks when it passed in the baseline and the candidate ends it failed, inconclusive
or without a verdict; it is fixed the other way round. Durations are shown, never judged:
timing noise is never a break. A cell one side planned but did not get to (an interrupted
run) is listed as not run, never a break. Two runs of different matrices cannot be compared.

    >>> def run(rid, variant, states):
    ...     return RunResults.from_data({"tool": "aovpn-lab", "schema": 2, "run_id": rid,
    ...         "environment": {"variant": variant}, "cells": [
    ...         {"id": k, "nodeid": "t.py::t[" + k + "]", "state": s, "place": {"condition": "open"}}
    ...         for k, s in states.items()]}, rid + "/results.json")
    >>> c = compare(run("r1", "default", {"a": "pass", "b": "fail"}), run("r2", "weak", {"a": "fail", "b": "pass"}))
    >>> [x.id for x in c.of("breaks")], [x.id for x in c.of("fixes")], exit_code(c)
    (['a'], ['b'], 1)
    >>> c.headline().split(":")[0]
    'candidate (variant weak) breaks 1 cell'
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import html
from .runfile import CellRecord, ResultsFormatError, RunResults, load, requirement_status

PASS, NA, ERROR = "pass", "not-applicable", "error"
FAILING = ("fail", "inconclusive", ERROR)

# Change classes, in the order every rendering lists them; the label is what a reader sees.
CLASSES = {
    "breaks": "broken: passed in the baseline, not in the candidate",
    "fixes": "fixed: did not pass in the baseline, passes in the candidate",
    "no-longer-tested": "no longer tested here: applicable in the baseline, not applicable in the candidate",
    "newly-applicable": "newly applicable: not applicable in the baseline, tested in the candidate",
    "still-failing": "still not passing on both sides",
    "not-run": "not run: planned, but one side did not get to it",
    "unchanged": "unchanged",
}
# Row class in the HTML: a browser test looks for tr.break inside #breaks.
ROW_CLASS = {"breaks": "break", "fixes": "fix"}
REPORT_PAGES = ("report.html", "pytest-html.html")  # a run's own page first
SIDE_BOX = "max-height:32em;overflow:auto;overflow-wrap:break-word"


def classify(base: str | None, cand: str | None) -> str:
    """The change class of one cell from its state on each side (None: the side did not run it).

    >>> classify("pass", "inconclusive"), classify("error", "pass"), classify("pass", "not-applicable")
    ('breaks', 'fixes', 'no-longer-tested')
    >>> classify("fail", "inconclusive"), classify(None, "fail"), classify("pass", "pass")
    ('still-failing', 'not-run', 'unchanged')
    """
    if base is None or cand is None:
        return "not-run"
    if base == cand:
        return "still-failing" if base in FAILING else "unchanged"
    if cand == NA:
        return "no-longer-tested"
    if base == NA:
        return "newly-applicable"
    if base == PASS:
        return "breaks"
    if cand == PASS:
        return "fixes"
    return "still-failing"


@dataclass(frozen=True)
class CellChange:
    nodeid: str
    kind: str
    base: CellRecord | None
    cand: CellRecord | None

    @property
    def either(self) -> CellRecord:
        return self.cand or self.base  # type: ignore[return-value]

    @property
    def id(self) -> str:
        return self.either.id

    @property
    def requirements(self) -> list[str]:
        reqs = list(self.base.requirements if self.base else [])
        return reqs + [r for r in (self.cand.requirements if self.cand else []) if r not in reqs]

    @property
    def condition(self) -> str:
        return str(self.either.place.get("condition") or "-")


def state_of(cell: CellRecord | None) -> str:
    return cell.state if cell is not None else "not run"


requirement_state = requirement_status  # the one rule (report/runfile.py)


@dataclass(frozen=True)
class RequirementChange:
    id: str
    level: str
    text: str
    base_state: str
    cand_state: str
    counts: dict[str, int]


@dataclass(frozen=True)
class BreakGroup:
    """Broken cells the candidate names one fix for."""
    fix: str | None
    n: int
    conditions: dict[str, int]   # network condition -> cells, largest first
    states: dict[str, int]       # the candidate's states of these cells

    def sentence(self) -> str:
        """
        >>> BreakGroup("enable RFC 7383", 3, {"drop-ip-fragments": 2, "mtu:1200+drop-ip-fragments": 1},
        ...            {"fail": 3}).sentence()
        '3 (2 behind drop-ip-fragments, 1 behind mtu:1200+drop-ip-fragments), fix: enable RFC 7383'
        >>> BreakGroup("", 6, {"block-udp-4500": 6}, {"inconclusive": 6}).sentence()
        '6 behind block-udp-4500 (6 inconclusive)'
        >>> BreakGroup("", 3, {"open": 2, "nat": 1}, {"fail": 1, "inconclusive": 2}).sentence()
        '3 (2 on the open network, 1 behind nat; 2 inconclusive)'
        """
        others = ", ".join(f"{m} {state}" for state, m in self.states.items() if state != "fail")
        if len(self.conditions) == 1:
            text = f"{self.n} {where(next(iter(self.conditions)))}" + (f" ({others})" if others else "")
        else:
            places = ", ".join(f"{m} {where(c)}" for c, m in self.conditions.items())
            text = f"{self.n} ({places}{'; ' + others if others else ''})"
        if self.fix is None:
            return text + ", ended without a verdict"
        return text + (f", fix: {self.fix.rstrip('.')}" if self.fix else "")


@dataclass(frozen=True)
class Comparison:
    base: RunResults
    cand: RunResults
    cells: tuple[CellChange, ...]

    def of(self, kind: str) -> list[CellChange]:
        return [c for c in self.cells if c.kind == kind]

    def counts(self) -> dict[str, int]:
        found = Counter(c.kind for c in self.cells)
        return {k: found.get(k, 0) for k in CLASSES}

    @property
    def base_label(self) -> str:
        return side_label(self.base, self.cand)

    @property
    def cand_label(self) -> str:
        return side_label(self.cand, self.base)

    def requirements(self) -> list[RequirementChange]:
        from .. import requirements as catalogue_mod
        try:
            known = catalogue_mod.catalogue()
        except (OSError, ValueError):  # a results file can be read without the project's data
            known = {}
        by_req: dict[str, list[CellChange]] = {}
        for change in self.cells:
            for rid in change.requirements or ["-"]:
                by_req.setdefault(rid, []).append(change)
        out = []
        for rid in sorted(by_req):
            changes = by_req[rid]
            found = Counter(c.kind for c in changes)
            req = known.get(rid)
            out.append(RequirementChange(
                rid, req.level if req else "-", req.text if req else "",
                requirement_state([c.base.state for c in changes if c.base is not None]),
                requirement_state([c.cand.state for c in changes if c.cand is not None]),
                {k: found.get(k, 0) for k in CLASSES}))
        return out

    def break_groups(self) -> list[BreakGroup]:
        """Broken cells grouped by what the candidate says to change (its verdict's fix), largest first,
        each with the network conditions it sits behind; fix None: the cells ended without a verdict."""
        by_fix: dict[str | None, list[CellChange]] = {}
        for c in self.of("breaks"):
            fix = None if c.cand is None or c.cand.state == ERROR else (c.cand.verdict.get("fix") or "")
            by_fix.setdefault(fix, []).append(c)
        groups = [BreakGroup(fix, len(cs), dict(Counter(c.condition for c in cs).most_common()),
                             dict(Counter(state_of(c.cand) for c in cs).most_common()))
                  for fix, cs in by_fix.items()]
        return sorted(groups, key=lambda g: (-g.n, g.fix or ""))

    def headline_parts(self) -> tuple[str, list[str], str]:
        """The headline as (lead, one phrase per group of broken cells, the rest): pages list the groups."""
        breaks = self.of("breaks")
        counts = self.counts()
        if breaks:
            lead = f"candidate ({self.cand_label}) breaks {plural(len(breaks), 'cell')}"
        else:
            lead = f"candidate ({self.cand_label}) breaks nothing that passed in the baseline ({self.base_label})"
        more = [f"{verb} {plural(counts[kind], 'cell')}" for kind, verb in
                (("fixes", "fixes"), ("no-longer-tested", "no longer tests"), ("newly-applicable", "newly tests"))
                if counts[kind]]
        rest = [f"It {', '.join(more)}."] if more else []
        for label, run, missing in (("baseline", self.base, sum(1 for c in self.cells if c.base is None)),
                                    ("candidate", self.cand, sum(1 for c in self.cells if c.cand is None))):
            if missing or run.data.get("interrupted"):
                why = f" (interrupted by {run.data['interrupted']})" if run.data.get("interrupted") else ""
                rest.append(f"The {label} run is incomplete{why}: {plural(missing, 'planned cell')} not run.")
        return lead, [g.sentence() for g in self.break_groups()], " ".join(rest)

    def headline(self) -> str:
        """The change in a sentence (or a few), broken cells first."""
        lead, groups, rest = self.headline_parts()
        return lead + (": " + "; ".join(groups) if groups else "") + "." + (" " + rest if rest else "")

    def to_json(self) -> dict[str, Any]:
        def side(cell: CellRecord | None) -> dict[str, Any] | None:
            if cell is None:
                return None
            v = cell.verdict
            return {"state": cell.state, "expected": v.get("expected"), "observed": v.get("observed"),
                    "reason": cell.reason, "fix": v.get("fix") or "", "duration_s": cell.duration_s,
                    "flaky": cell.flaky}

        def run(r: RunResults) -> dict[str, Any]:
            return {"run_id": r.run_id, "path": str(r.path), "variant": r.variant,
                    "inventory": r.data.get("inventory"), "complete": r.complete}
        return {
            "tool": "aovpn-lab", "kind": "compare", "baseline": run(self.base), "candidate": run(self.cand),
            "matrix_digest": self.base.matrix_digest, "headline": self.headline(), "exit_code": exit_code(self),
            "counts": self.counts(),
            "requirements": [{"id": r.id, "level": r.level, "baseline": r.base_state, "candidate": r.cand_state,
                              "counts": r.counts} for r in self.requirements()],
            "cells": [{"id": c.id, "nodeid": c.nodeid, "change": c.kind, "place": c.either.place,
                       "requirements": c.requirements, "baseline": side(c.base), "candidate": side(c.cand)}
                      for c in self.cells],
        }


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def where(condition: str) -> str:
    """Where broken cells sit, as the headline says it.

    >>> where("drop-ip-fragments"), where("open"), where("-")
    ('behind drop-ip-fragments', 'on the open network', 'without a network condition')
    """
    if condition == "-":
        return "without a network condition"
    if condition == "open":
        return "on the open network"
    return f"behind {condition}"


def side_label(run: RunResults, other: RunResults) -> str:
    """What tells this run from the other one: its variant and inventory where they differ, else its run id."""
    parts = []
    if run.variant != other.variant:
        parts.append(f"variant {run.variant}")
    inv, other_inv = run.data.get("inventory"), other.data.get("inventory")
    if inv != other_inv and inv:
        parts.append(f"inventory {inv}")
    return ", ".join(parts) or f"run {run.run_id}"


def compare(base: RunResults, cand: RunResults) -> Comparison:
    """Match the two runs' cells by node id; refuse runs of different matrices."""
    planned_b, planned_c = base.planned, cand.planned
    only_b = sorted(set(planned_b) - set(planned_c))
    only_c = sorted(set(planned_c) - set(planned_b))
    if only_b or only_c:
        def some(ids: list[str]) -> str:
            return f" (e.g. {', '.join(ids[:3])})" if ids else ""
        raise ResultsFormatError(
            f"{base.path} and {cand.path} are runs of different matrices: {plural(len(only_b), 'cell')} only in "
            f"the baseline{some(only_b)}, {len(only_c)} only in the candidate{some(only_c)}",
            hint="compare runs of the same inventory and the same -k selection")
    b_cells, c_cells = base.by_nodeid(), cand.by_nodeid()
    order = list(dict.fromkeys([*planned_b, *b_cells, *c_cells]))
    return Comparison(base, cand, tuple(
        CellChange(n, classify(state_or_none(b_cells.get(n)), state_or_none(c_cells.get(n))),
                   b_cells.get(n), c_cells.get(n)) for n in order))


def state_or_none(cell: CellRecord | None) -> str | None:
    return cell.state if cell is not None else None


def exit_code(cmp: Comparison) -> int:
    """0 when the candidate breaks nothing that passed in the baseline, 1 when it does."""
    return 1 if cmp.of("breaks") else 0


# --- sides -------------------------------------------------------------------------------

INVENTORY_MARKERS = ("hosts.yml", "hosts.yaml", "hosts", "hosts.ini", "group_vars", "host_vars")
RunNow = Callable[[str, str], "str | Path"]


def resolve(text: str, *, run_now: RunNow) -> RunResults:
    """One side of a compare: a results.json, a run folder, or an inventory or gateway variant to
    run now (`run_now(kind, value)` runs the suite and returns the run folder; kind is
    "inventory" or "variant")."""
    from .. import variants
    from ..errors import AovpnError
    path = Path(text)
    if path.is_file():
        if path.suffix in (".yml", ".yaml"):
            return load(run_now("inventory", str(path)))
        return load(path)
    if path.is_dir():
        if (path / "results.json").is_file():
            return load(path)
        if any((path / m).exists() for m in INVENTORY_MARKERS):
            return load(run_now("inventory", str(path)))
        raise AovpnError(f"{path}: neither a run folder (no results.json) nor an inventory (no hosts.yml, "
                         "group_vars or host_vars)", hint="give a finished run's folder or its results.json")
    name = text.removeprefix("variant:")
    if text.startswith("variant:") or name in variants.catalogue():
        variants.get(name)  # an unknown variant: one line naming the known ones
        return load(run_now("variant", name))
    raise AovpnError(f"'{text}' is not a results.json, a run folder, an inventory or a gateway variant",
                     hint=f"give reports/<run-id> (or its results.json), an inventory folder or .yml file, "
                          f"or a variant ({', '.join(variants.catalogue())})")


# --- renderings --------------------------------------------------------------------------

def _verdict_line(cell: CellRecord | None) -> str:
    if cell is None:
        return "not run"
    observed = cell.verdict.get("observed")
    return (f"{cell.state}" + (f" ({observed})" if observed and observed != cell.state else "")
            + (" [flaky]" if cell.flaky else ""))


def render_terminal(cmp: Comparison) -> str:
    """Plain text: each broken or fixed cell on one line with both verdicts, the requirement
    table, the headline and what the exit status means."""
    lines = [f"{label:<10} run {run.run_id}  variant {run.variant}  inventory {run.data.get('inventory') or '-'}"
             f"  ({run.path})" for label, run in (("baseline", cmp.base), ("candidate", cmp.cand))] + [""]
    counts = cmp.counts()
    for kind in ("breaks", "fixes", "no-longer-tested", "newly-applicable", "not-run"):
        if not counts[kind]:
            continue
        lines.append(f"{CLASSES[kind].split(':')[0].upper()} ({counts[kind]})")
        for c in cmp.of(kind):
            why = c.cand.reason if c.cand is not None and kind in ("breaks", "newly-applicable") else ""
            lines.append(f"  {c.id}: {_verdict_line(c.base)} -> {_verdict_line(c.cand)}"
                         + (f" - {why}" if why else ""))
        lines.append("")
    lines.append(f"still not passing: {counts['still-failing']}, unchanged: {counts['unchanged']}")
    lines.append("")
    reqs = cmp.requirements()
    width = max([len("requirement")] + [len(r.id) for r in reqs])
    cols = [("breaks", "broken"), ("fixes", "fixed"), ("no-longer-tested", "no-longer-tested"),
            ("newly-applicable", "newly-applicable"), ("still-failing", "still-failing"), ("not-run", "not-run"),
            ("unchanged", "unchanged")]
    lines.append(f"{'requirement':<{width}}  level   {'baseline':<14} {'candidate':<14} "
                 + " ".join(f"{label:>{len(label)}}" for _, label in cols))
    for r in reqs:
        lines.append(f"{r.id:<{width}}  {r.level:<6}  {r.base_state:<14} {r.cand_state:<14} "
                     + " ".join(f"{r.counts[k]:>{len(label)}}" for k, label in cols))
    lead, groups, rest = cmp.headline_parts()
    lines += ["", lead + (":" if groups else "."), *(f"  - {g}" for g in groups), *([rest] if rest else []), ""]
    code = exit_code(cmp)
    lines.append(f"exit {code}: " + ("the candidate breaks cells that passed in the baseline" if code
                                     else "the candidate breaks nothing that passed in the baseline"))
    return "\n".join(lines) + "\n"


def _report_link(run: RunResults, out_dir: Path | None, anchor: str = "") -> str | None:
    """Where this run's report is, relative to the compare page when both are on one tree. Cell
    anchors are report.html's; a run folder with only pytest-html's page gets a link without one."""
    for name in REPORT_PAGES:
        report = run.run_dir / name
        if report.is_file():
            target = report.resolve()
            href = os.path.relpath(target, out_dir.resolve()) if out_dir is not None else target.as_uri()
            return href + (f"#{anchor}" if anchor and name == REPORT_PAGES[0] else "")
    return None


def _side_html(cell: CellRecord | None, run: RunResults, out_dir: Path | None) -> str:
    if cell is None:
        return html.badge("not-tested", "not run")
    body = html.evidence(cell.verdict) if cell.verdict else (
        f"<p>{html.badge(cell.state)}</p><pre>{html.esc(cell.reason)}</pre>")
    link = _report_link(run, out_dir, cell.anchor)
    extra = f" &middot; <a href='{html.esc(link)}'>in the run's report</a>" if link else ""
    flaky = f" {html.badge('flaky')}" if cell.flaky else ""
    # Real evidence (IKE message tables, counters) is long and wide: each side scrolls in its own
    # box so the two stay level and the verdict sentence stays in view.
    return (f"<div style='{SIDE_BOX}'>{body}</div>"
            f"<p class='small muted'>{cell.duration_s:.1f} s{flaky}{extra}</p>")


def _cell_head(c: CellChange) -> str:
    place = " &middot; ".join(f"{html.esc(k)} {html.esc(v)}" for k, v in c.either.place.items())
    return (f"<b>{html.esc(c.id)}</b><br><span class='small muted'>{place}</span><br>"
            f"<span class='small'>{html.esc(', '.join(c.requirements))}</span>")


def _pairs(cmp: Comparison, kind: str, out_dir: Path | None) -> str:
    cls = ROW_CLASS.get(kind, kind)
    rows = "".join(
        f"<tr class='{cls}'><td style='overflow-wrap:anywhere'>{_cell_head(c)}</td>"
        f"<td>{_side_html(c.base, cmp.base, out_dir)}</td>"
        f"<td>{_side_html(c.cand, cmp.cand, out_dir)}</td></tr>" for c in cmp.of(kind))
    # Fixed layout: the columns keep their widths however wide a side's evidence is.
    return (f"<table class='grid' style='width:100%;table-layout:fixed'><thead><tr><th style='width:18%'>cell</th>"
            f"<th style='width:41%'>baseline: {html.esc(cmp.base_label)}</th>"
            f"<th style='width:41%'>candidate: {html.esc(cmp.cand_label)}</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def render_html(cmp: Comparison, *, out_dir: Path | None = None) -> str:
    """The comparison page: headline, requirement table, then each changed cell with the evidence
    of both sides side by side; unchanged cells collapsed. Links are relative to `out_dir`."""
    counts = cmp.counts()
    sides = []
    for label, run in (("baseline", cmp.base), ("candidate", cmp.cand)):
        link = _report_link(run, out_dir)
        name = f"<a href='{html.esc(link)}'>{html.esc(run.run_id)}</a>" if link else html.esc(run.run_id)
        sides.append([html.esc(label), name, html.esc(run.variant), html.esc(run.data.get("inventory")),
                      html.esc(run.started), "complete" if run.complete else "<b>incomplete</b>"])
    lead, groups, rest = cmp.headline_parts()
    items = "".join(f"<li>{html.esc(g)}</li>" for g in groups)
    body = [f"<div id='headline'><p><b>{html.esc(lead)}{':' if groups else '.'}</b></p>"
            f"{f'<ul>{items}</ul>' if groups else ''}{f'<p>{html.esc(rest)}</p>' if rest else ''}</div>",
            html.table(["side", "run", "variant", "inventory", "started", ""], sides),
            html.table(["change", "cells"], [[html.esc(CLASSES[k]), str(n)] for k, n in counts.items()]),
            "<h2>Requirements</h2>",
            html.table(["requirement", "level", "baseline", "candidate", "broken", "fixed", "no longer tested",
                        "newly applicable", "still not passing", "not run", "unchanged"],
                       [[f"<span title='{html.esc(r.text)}'>{html.esc(r.id)}</span>", html.esc(r.level),
                         html.badge(r.base_state), html.badge(r.cand_state),
                         *(str(r.counts[k]) for k in CLASSES)]
                        for r in cmp.requirements()])]
    body.append(f"<section id='breaks'><h2>Broken ({counts['breaks']})</h2>"
                + (_pairs(cmp, "breaks", out_dir) if counts["breaks"] else
                   "<p>Nothing that passed in the baseline fails in the candidate.</p>") + "</section>")
    for kind in ("fixes", "no-longer-tested", "newly-applicable", "still-failing"):
        if counts[kind]:
            title = CLASSES[kind][0].upper() + CLASSES[kind][1:]
            block = _pairs(cmp, kind, out_dir)
            if kind == "still-failing":  # known failures: there, but out of the way
                block = f"<details><summary>show them</summary>{block}</details>"
            body.append(f"<section id='{kind}'><h2>{html.esc(title)} ({counts[kind]})</h2>{block}</section>")
    for kind in ("not-run", "unchanged"):
        if counts[kind]:
            items = "".join(f"<li>{html.esc(c.id)}: {html.esc(state_of(c.base))} &rarr; "
                            f"{html.esc(state_of(c.cand))}</li>" for c in cmp.of(kind))
            body.append(f"<section id='{kind}'><h2>{html.esc(CLASSES[kind].capitalize())} ({counts[kind]})</h2>"
                        f"<details><summary>{plural(counts[kind], 'cell')}</summary><ul class='small'>{items}"
                        f"</ul></details></section>")
    nav = [(f"{label} report", link) for label, link in
           (("baseline", _report_link(cmp.base, out_dir)), ("candidate", _report_link(cmp.cand, out_dir))) if link]
    return html.page(f"Compare: {cmp.base_label} vs {cmp.cand_label}", "".join(body), nav=nav)


def write(cmp: Comparison, out_dir: Path) -> tuple[Path, Path]:
    """compare.html and compare.json into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    page_path, json_path = out_dir / "compare.html", out_dir / "compare.json"
    page_path.write_text(render_html(cmp, out_dir=out_dir))
    json_path.write_text(json.dumps(cmp.to_json(), indent=1, default=str))
    return page_path, json_path
