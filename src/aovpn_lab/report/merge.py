"""`aovpn-lab report merge`: one report over the runs of several sites.

Each site's run (a run folder, from `aovpn-lab run --site NAME` on the tester near that site,
fetched back by playbooks/run-sites.yml) is copied to OUT/sites/<site>/, so its evidence
and captures stay where its own report links them. OUT/results.json is then one results
file (schema 2, the one reader runfile.load) whose cells are every site's, each carrying
its site: in its id and node id (`site-a: test_x[...]`), in its place (the summary's
columns read protocol / profile / site / gateway) and as `site`. The top-level `merged`
block names the sites and their runs. OUT/report.html is the ordinary page built from it,
with a Sites section before the rest: each site's run, counts and exit status, and every
requirement's status at every site (runfile.requirement_status, the one rule).

    >>> merged = merge([Path("reports/a"), Path("reports/b")], Path("reports/sites"))   # doctest: +SKIP
    >>> merged.exit_status, [s.name for s in merged.sites]                              # doctest: +SKIP
    (1, ['site-a', 'site-b'])

A site's name: `site` of its results.json, else the one given as NAME=DIR, else its
folder's name. Two runs claiming one site, or a folder that is not a run, are refused with
one line naming them.
"""
from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .. import requirements
from ..errors import AovpnError
from . import page, runfile
from .html import badge, esc, table
from .runfile import RunResults

SITES = "sites"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Site:
    name: str
    results: RunResults
    exit_status: int
    why: str


@dataclass(frozen=True)
class Merged:
    out: Path
    sites: tuple[Site, ...]
    exit_status: int
    why: str


def site_name(results: RunResults, given: str | None) -> str:
    name = str(results.data.get("site") or given or results.run_dir.resolve().name)
    if not NAME_RE.match(name):
        raise AovpnError(f"{results.path}: site name {name!r} is not a short name (letters, digits, . _ -)",
                         hint="name it with `aovpn-lab run --site NAME`, or give NAME=DIR")
    return name


def load_sites(run_dirs: list[Path], names: dict[Path, str] | None = None) -> list[tuple[str, RunResults]]:
    names = {Path(k).resolve(): v for k, v in (names or {}).items()}
    sites: dict[str, RunResults] = {}
    for d in run_dirs:
        results = runfile.load(d)
        name = site_name(results, names.get(Path(d).resolve()))
        if name in sites:
            raise AovpnError(f"{d} and {sites[name].run_dir} are both site '{name}'",
                             hint="give each run its own site: `aovpn-lab run --site NAME`, or NAME=DIR")
        sites[name] = results
    if not sites:
        raise AovpnError("no run to merge", hint="give the run folders of the sites")
    return list(sites.items())


def _status(counts: dict[str, int]) -> tuple[int, str]:
    """A site's (or the merge's) exit status: the run's own rule, where a cell without a
    verdict counts as a failure of the site rather than bad input to the merge."""
    from ..pytest_plugin import run_status
    code, why = run_status(counts)
    return min(code, 1), why


def merge(run_dirs: list[Path], out: Path, names: dict[Path, str] | None = None) -> Merged:
    loaded = load_sites(run_dirs, names)
    out.mkdir(parents=True, exist_ok=True)
    cells, sites = [], []
    for name, results in loaded:
        copy = out / SITES / name
        if copy.resolve() != results.run_dir.resolve():
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(results.run_dir, copy, symlinks=True)
        code, why = _status(results.counts())
        sites.append(Site(name, results, code, why))
        for cell in results.cells:
            rec = dict(cell.data)
            place = dict(cell.place or {})
            place["gateway"] = f"{name} / {place.get('gateway') or '-'}"
            rec.update(id=f"{name}: {cell.id}", nodeid=f"{name}::{cell.nodeid}", site=name, place=place,
                       captures=[f"{SITES}/{name}/{p}" for p in cell.captures])
            cells.append(rec)
    planned = [f"{s.name}::{n}" for s in sites for n in s.results.planned]
    counts = {k: sum(1 for c in cells if c.get("state") == k)
              for k in ("pass", "fail", "inconclusive", "not-applicable", "error")}
    code, why = _status(counts)
    data = {"tool": runfile.TOOL, "schema": runfile.SCHEMA, "run_id": f"merge of {len(sites)} sites",
            "merged": {"sites": [{"site": s.name, "run_id": s.results.run_id, "folder": f"{SITES}/{s.name}",
                                  "inventory": s.results.data.get("inventory"), "variant": s.results.variant,
                                  "counts": s.results.counts(), "exit_status": s.exit_status} for s in sites]},
            "started": min((s.results.started for s in sites if s.results.started), default=None),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "interrupted": next((f"{s.name}: {s.results.data['interrupted']}" for s in sites
                                 if s.results.data.get("interrupted")), None),
            "exit_status": code, "environment": {s.name: s.results.environment for s in sites},
            "matrix": {"planned": planned, "digest": runfile.matrix_digest(planned)},
            "verdicts": counts, "cells": cells}
    runfile.write(out / runfile.RESULTS_NAME, data)
    merged = Merged(out, tuple(sites), code, why)
    text = page.render(runfile.load(out), sections=[("Sites", sites_section(merged))])
    (out / page.PAGE_NAME).write_text(text, encoding="utf-8")
    return merged


def sites_section(merged: Merged) -> str:
    """Each site's run and counts, then every requirement's status at every site."""
    rows = []
    for s in merged.sites:
        c = s.results.counts()
        link = f"<a href='{SITES}/{esc(s.name)}/{page.PAGE_NAME}'>{esc(s.results.run_id)}</a>"
        rows.append([esc(s.name), link, esc(s.results.data.get("inventory") or "-"), esc(s.results.variant),
                     *(str(c[k]) for k in ("pass", "fail", "inconclusive", "not-applicable", "error")),
                     f"{s.exit_status} <span class='small muted'>{esc(s.why)}</span>"])
    head = table(["site", "run", "inventory", "variant", "pass", "fail", "inconclusive", "not-applicable", "error",
                  "exit"], rows)
    catalogue = requirements.catalogue()
    cited = {rid for s in merged.sites for cell in s.results.cells for rid in cell.requirements}
    req_rows = []
    for rid in [*catalogue, *(r for r in sorted(cited) if r not in catalogue)]:
        per_site = [badge(runfile.requirement_status(cell.state for cell in s.results.cells
                                                     if rid in cell.requirements)) for s in merged.sites]
        level = catalogue[rid].level if rid in catalogue else "?"
        req_rows.append([esc(rid), esc(level), *per_site])
    return (head + "<h3>Requirements at each site</h3>"
            + table(["requirement", "level", *(esc(s.name) for s in merged.sites)], req_rows))


def parse_named(items: list[str]) -> dict[Path, str]:
    """--site NAME=DIR options as {DIR: NAME}."""
    named = {}
    for item in items:
        name, eq, where = item.partition("=")
        if not eq or not name or not where:
            raise AovpnError(f"--site {item!r}: expected NAME=DIR", hint="e.g. --site paris=reports/paris/latest")
        named[Path(where)] = name
    return named
