"""The certification report: one run's verdicts per requirement, for a named target, checkable later.

    reports/<run-id>/manifest.sha256      SHA-256 of results.json and every evidence file (written first)
    reports/<run-id>/certification.html   built from results.json, the catalogue and the inventory
    reports/<run-id>/certification.pdf    the same page, printed by headless Chromium

A requirement's status is its cells' (the cells citing it): fail when any failed;
inconclusive when any was inconclusive or ended without a verdict; pass when any passed
(the others not applicable); not-applicable, with the reasons, when every cell was; and
not-tested when no cell of the run cites it.

The target is certified when the run is complete (not interrupted, every planned cell
ended, the full matrix: no -k selection) and every MUST requirement passed or is not
applicable, at least one having passed. A SHOULD that does not pass is a recommendation.

    >>> r = runfile.RunResults.from_data({"tool": "aovpn-lab", "schema": 2, "finished": "t", "cells": [
    ...     {"id": "a", "requirements": ["R1"], "state": "pass"}]}, "results.json")
    >>> cat = {"R1": Requirement("R1", "t", "s", "MUST"), "R2": Requirement("R2", "t", "s", "SHOULD")}
    >>> a = assess(r, cat)
    >>> a.certified, [(s.requirement.id, s.status) for s in a.rows], a.verdict
    (True, [('R1', 'pass'), ('R2', 'not-tested')], 'certified: meets all MUST requirements the suite checks (1 of 1 passed)')
"""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TextIO

from .. import __version__
from ..errors import AovpnError
from ..requirements import Requirement, catalogue
from ..verdict import FAIL, INCONCLUSIVE, NOT_APPLICABLE, PASS
from . import browser, html, manifest, runfile
from .declaration import Declaration, Value, declaration
from .environment import inventory_digest

HTML_NAME = "certification.html"
PDF_NAME = "certification.pdf"
EVIDENCE_PAGE = "report.html"
NOT_TESTED = "not-tested"
ERROR = "error"
CERTIFIED, NOT_CERTIFIED = "certified", "not certified"
BLOCKING = (FAIL, INCONCLUSIVE, ERROR, NOT_TESTED)


@dataclass(frozen=True)
class CertificationPaths:
    html: Path
    pdf: Path
    manifest: Path
    certified: bool
    verdict: str    # the one line that says certified or not, and why


@dataclass(frozen=True)
class RequirementStatus:
    requirement: Requirement
    status: str
    cells: tuple[runfile.CellRecord, ...]

    @property
    def reasons(self) -> list[tuple[str, int]]:
        """Distinct reasons of the cells that decide the status, with how many cells gave each."""
        deciding = {FAIL: (FAIL,), INCONCLUSIVE: (INCONCLUSIVE, ERROR), NOT_APPLICABLE: (NOT_APPLICABLE,),
                    PASS: (NOT_APPLICABLE,)}.get(self.status, ())
        return Counter(c.reason or "(no reason recorded)" for c in self.cells if c.state in deciding).most_common()


@dataclass(frozen=True)
class Assessment:
    rows: tuple[RequirementStatus, ...]
    certified: bool
    blockers: tuple[str, ...]               # why it is not certified, one sentence each
    recommendations: tuple[RequirementStatus, ...]

    @property
    def verdict(self) -> str:
        musts = [s for s in self.rows if s.requirement.level == "MUST" and s.requirement.checked_by == "suite"]
        audited = [s for s in self.rows if s.requirement.level == "MUST" and s.requirement.checked_by == "audit"]
        if self.certified:
            passed = sum(1 for s in musts if s.status == PASS)
            na = len(musts) - passed
            return (f"{CERTIFIED}: meets all MUST requirements the suite checks ({passed} of {len(musts)} passed"
                    + (f", {na} not applicable" if na else "")
                    + (f"; {len(audited)} more checked on the deployment by aovpn-lab audit" if audited else "") + ")")
        return f"{NOT_CERTIFIED}: " + "; ".join(self.blockers)


def status_of(cells: list[runfile.CellRecord]) -> str:
    return runfile.requirement_status(c.state for c in cells)


def assess(results: runfile.RunResults, reqs: Mapping[str, Requirement] | None = None, *,
           inventory_sha256: str | None = None) -> Assessment:
    """`inventory_sha256`: the certifying inventory's digest now; it must be the one the run recorded."""
    reqs = catalogue() if reqs is None else reqs
    citing: dict[str, list[runfile.CellRecord]] = {rid: [] for rid in reqs}
    for cell in results.cells:
        for rid in cell.requirements:
            if rid in citing:
                citing[rid].append(cell)
    rows = tuple(RequirementStatus(r, status_of(citing[rid]), tuple(citing[rid])) for rid, r in reqs.items())
    blockers = _run_blockers(results)
    recorded = results.environment.get("inventory_sha256")
    if inventory_sha256 and recorded and recorded != "missing" and recorded != inventory_sha256:
        blockers.append(f"the inventory is not the one the run used (SHA-256 {recorded[:12]}... at the run, "
                        f"{inventory_sha256[:12]}... now)")
    # Requirements only a reading of the deployment can check (audit) are listed, not judged here.
    musts = [s for s in rows if s.requirement.level == "MUST" and s.requirement.checked_by == "suite"]
    unmet = [s for s in musts if s.status in BLOCKING]
    if unmet:
        blockers.append(f"{len(unmet)} MUST requirement(s) not met: "
                        + ", ".join(f"{s.requirement.id} ({s.status})" for s in unmet))
    elif musts and not any(s.status == PASS for s in musts):
        blockers.append("no MUST requirement was shown to hold (every one not applicable)")
    elif not musts:
        blockers.append("the catalogue has no MUST requirement")
    recommendations = tuple(s for s in rows if s.requirement.level != "MUST" and s.status in BLOCKING
                            and s.requirement.checked_by == "suite")
    return Assessment(rows, not blockers, tuple(blockers), recommendations)


def _run_blockers(results: runfile.RunResults) -> list[str]:
    """Why this run, whatever its verdicts, cannot certify anything."""
    out = []
    interrupted = results.data.get("interrupted")
    planned = results.planned
    ended = {c.nodeid for c in results.cells}
    missing = [n for n in planned if n not in ended]
    if interrupted:
        out.append(f"the run was interrupted ({interrupted})")
    if missing:
        out.append(f"the run is incomplete: {len(missing)} of {len(planned)} planned cells did not end")
    if not interrupted and not missing and not results.data.get("finished"):
        out.append("the run has no finish time: it was killed, or is still running")
    if results.data.get("selection"):
        out.append(f"the run was restricted to -k {results.data['selection']!r}: a certification needs the full matrix")
    return out


def write_certification(run_dir: Path, inventory: Any, *,
                        executable: str | Path = browser.CHROMIUM) -> CertificationPaths:
    """Manifest, then certification.html, then certification.pdf, in the run folder.

    `inventory` is an Inventory (aovpn_lab.inventory.load) or its path."""
    run_dir = Path(run_dir).resolve()  # reports/latest -> the run's own folder
    results = runfile.load(run_dir)
    if not isinstance(inventory, (str, Path)):
        decl = declaration(inventory)
    else:
        from .. import inventory as inventory_mod
        decl = declaration(inventory_mod.load(inventory))
    mpath = manifest.write(run_dir)
    assessment = assess(results, inventory_sha256=inventory_digest(decl.inventory))
    page_path = run_dir / HTML_NAME
    page_path.write_text(render(results, decl, assessment, manifest.read(run_dir), manifest.digest(run_dir)))
    pdf_path = browser.pdf(page_path, run_dir / PDF_NAME, executable=executable)
    return CertificationPaths(page_path, pdf_path, mpath, assessment.certified, assessment.verdict)


def verify(run_dir: Path, out: TextIO | None = None) -> int:
    """Recompute the manifest's digests: 0 all match, 1 a file differs or is missing, 2 no usable manifest."""
    out = out or sys.stdout
    try:
        result = manifest.verify(Path(run_dir))
    except AovpnError as exc:
        print(f"aovpn-lab: {exc}", file=out)
        return 2
    for name in result.mismatched:
        print(f"MISMATCH  {name}: its SHA-256 differs from the manifest's", file=out)
    for name in result.missing:
        print(f"MISSING   {name}: listed in the manifest, not in the folder", file=out)
    for name in result.extra:
        print(f"not listed {name}: added after the manifest was written (not part of the result)", file=out)
    bad = len(result.mismatched) + len(result.missing)
    print(f"{result.manifest}: SHA-256 {result.manifest_sha256} (compare with the report's manifest SHA-256); "
          + (f"{bad} of {len(result.checked)} files do not match" if bad else
             f"all {len(result.checked)} files match"), file=out)
    return 0 if result.ok else 1


# -- the page ---------------------------------------------------------------------------------------------------

def render(results: runfile.RunResults, decl: Declaration, a: Assessment, entries: list[tuple[str, str]],
           manifest_sha256: str) -> str:
    env = results.environment
    sections = [
        _summary(results, decl, a, manifest_sha256),
        _section("requirements", "Requirements", _requirements(a)),
        _section("recommendations", "Recommendations (SHOULD)", _recommendations(a)),
        _section("environment", "Environment", _environment(env)),
        _section("manifest", "Manifest", _manifest(entries, manifest_sha256)),
        _section("verify", "How to verify", _how_to_verify(results)),
    ]
    nav = [("Requirements", "#requirements"), ("Manifest", "#manifest"), ("Evidence", EVIDENCE_PAGE)]
    return html.page(f"Certification report: {_name(decl)}", "".join(sections), nav=nav)


def _name(decl: Declaration) -> str:
    known = [v.text for v in (decl.vendor, decl.model) if v.known]
    return " ".join(known) if known else "target not declared"


def _section(anchor: str, title: str, body: str) -> str:
    return f"<section id='{anchor}'><h2>{html.esc(title)}</h2>{body}</section>"


def _value(v: Value) -> str:
    if not v.known:
        return f"<span class='muted'>{html.esc(v.text)}</span>"
    return f"{html.esc(v.text)} <span class='muted small'>({html.esc(v.how)})</span>"


def _summary(results: runfile.RunResults, decl: Declaration, a: Assessment, manifest_sha256: str) -> str:
    why = ("" if a.certified else
           "<ul>" + "".join(f"<li>{html.esc(b)}</li>" for b in a.blockers) + "</ul>")
    env = results.environment
    ran_with = env.get("aovpn_lab") or "unknown"
    config = decl.configuration_digest
    config_files = "".join(f"<br><span class='small'><code>{html.esc(d)}</code> {html.esc(n)}</span>"
                           for n, d in decl.configuration)
    rows = [
        ["Vendor", _value(decl.vendor)],
        ["Model", _value(decl.model)],
        ["Software version", _value(decl.software(env))],
        ["Configuration digest", (f"<code>{html.esc(config.text)}</code>" if config.known else _value(config))
         + config_files],
        ["Inventory", html.esc(env.get("inventory") or decl.inventory)
         + (f" <span class='muted small'>(certification declared in {html.esc(decl.origin)})</span>"
            if decl.origin else "")],
        ["Gateway variant", html.esc(results.variant)],
        ["Run", f"{html.esc(results.run_id)} <span class='muted small'>started {html.esc(results.started or '-')}, "
                f"finished {html.esc(results.data.get('finished') or '-')}</span>"],
        ["Cells", ", ".join(f"{n} {html.esc(k)}" for k, n in results.counts().items() if n) or "none"],
        ["Tool version", f"aovpn-lab {html.esc(ran_with)} (commit {html.esc(env.get('commit') or 'unknown')}) ran "
                         f"the suite; aovpn-lab {html.esc(__version__)} wrote this report"],
        ["Manifest SHA-256", f"<code>{html.esc(manifest_sha256)}</code>"],
    ]
    return f"<section id='summary'><p style='font-size:1.3em'>{badge_line(a)}</p>{why}{_facts(rows)}</section>"


def _facts(rows: list[list[str]]) -> str:
    """Name / value rows (already-escaped HTML), as the evidence block lays them out."""
    return "<table class='small'>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def badge_line(a: Assessment) -> str:
    if a.certified:
        return f"{html.badge(PASS, CERTIFIED)} {html.esc(a.verdict.split(': ', 1)[1])}"
    return f"{html.badge(FAIL, NOT_CERTIFIED)} <b>the target does not meet this report's conditions</b>"


def _cell_links(cells: tuple[runfile.CellRecord, ...]) -> str:
    items = []
    for c in cells:
        label = c.id + (" (flaky)" if c.flaky else "")
        caps = " ".join(f"<a href='{html.esc(p)}'>{html.esc(Path(p).name)}</a>" for p in c.captures)
        items.append(f"<li>{html.badge(c.state)} <a href='{EVIDENCE_PAGE}#{html.esc(c.anchor)}'>{html.esc(label)}</a>"
                     + (f" <span class='muted'>captures: {caps}</span>" if caps else "") + "</li>")
    return f"<ul class='small' style='margin:0;padding-left:1.2em'>{''.join(items)}</ul>" if items else ""


def _reasons(s: RequirementStatus) -> str:
    return "".join(f"<div class='small'>{html.esc(r)}{f' <span class=muted>({n} cells)</span>' if n > 1 else ''}</div>"
                   for r, n in s.reasons)


def _requirements(a: Assessment) -> str:
    rows = []
    for s in a.rows:
        r = s.requirement
        rows.append([f"<b>{html.esc(r.id)}</b><div class='small muted'>{html.esc(r.text)}</div>",
                     html.esc(r.level), html.badge(s.status) + _reasons(s), str(len(s.cells)),
                     _cell_links(s.cells) or ("<span class='muted'>checked on the deployment by "
                                              "<code>aovpn-lab audit</code>, not by the conformance suite</span>"
                                              if r.checked_by == "audit" else
                                              "<span class='muted'>no cell of this run cites it</span>")])
    counts = Counter(s.status for s in a.rows)
    lead = ", ".join(f"{n} {k}" for k, n in counts.items())
    return (f"<p>{len(a.rows)} requirements in the catalogue: {html.esc(lead)}. Evidence links open the "
            f"cell in {EVIDENCE_PAGE}.</p>" + html.table(["Requirement", "Level", "Status", "Cells", "Evidence"], rows))


def _recommendations(a: Assessment) -> str:
    if not a.recommendations:
        return "<p>Every SHOULD requirement passed or is not applicable.</p>"
    items = []
    for s in a.recommendations:
        fixes = sorted({c.verdict.get("fix") for c in s.cells if c.state != PASS and c.verdict.get("fix")})
        fix = "".join(f"<div class='small'><b>Fix:</b> {html.esc(f)}</div>" for f in fixes)
        items.append(f"<li>{html.badge(s.status)} <b>{html.esc(s.requirement.id)}</b>: "
                     f"{html.esc(s.requirement.text)}{_reasons(s)}{fix}</li>")
    return f"<ul>{''.join(items)}</ul>"


def _environment(env: Mapping[str, Any]) -> str:
    if not env:
        return "<p class='muted'>The run recorded no environment.</p>"
    rows = []
    for key, value in env.items():
        if isinstance(value, Mapping):
            value = "<br>".join(f"{html.esc(k)} {html.esc(v)}" for k, v in value.items())
        else:
            value = html.esc(value)
        rows.append([html.esc(key), value])
    return _facts(rows)


def _manifest(entries: list[tuple[str, str]], manifest_sha256: str) -> str:
    rows = [[f"<a href='{html.esc(name)}'>{html.esc(name)}</a>", f"<code>{html.esc(d)}</code>"] for name, d in entries]
    return (f"<p>{manifest.MANIFEST} lists {len(entries)} files. Its own SHA-256 is "
            f"<code>{html.esc(manifest_sha256)}</code>.</p>" + html.table(["File", "SHA-256"], rows, cls="grid small"))


def _how_to_verify(results: runfile.RunResults) -> str:
    return (f"<p>In the run folder ({html.esc(results.run_id)}), check that the manifest is the one this report "
            f"names, then that every file matches it:</p><pre>sha256sum {manifest.MANIFEST}    # the manifest "
            f"SHA-256 above\nsha256sum -c {manifest.MANIFEST}\n# or\naovpn-lab certify --verify "
            f"reports/{html.esc(results.run_id)}</pre>"
            "<p class='small muted'>The configuration digest is <code>sha256sum FILE... | sha256sum</code> over the "
            "listed configuration files, in the folder of the inventory and in the order listed.</p>")
