"""Repeatability: the same matrix several times back to back on one lab, and what changed.

`make soak` (= `python -m aovpn_lab.soak --runs 5`) runs `aovpn-lab run` N times and
prints, per cell, every verdict or observed cause that differed between runs (a
repeatable suite prints none) and the run-to-run spread of each cell's time. It reads
only the runs' results.json files, so it can also compare runs made earlier:
`python -m aovpn_lab.soak --compare reports/A reports/B ...`.

    >>> a = {"cells": [{"id": "c1", "state": "pass", "verdict": {"observed": "connected"}, "duration_s": 0.1}]}
    >>> b = {"cells": [{"id": "c1", "state": "inconclusive", "verdict": {"observed": "no-response"},
    ...                 "duration_s": 3.0}]}
    >>> [c.cell for c in changes([a, b])]
    ['c1']
    >>> changes([a, a])
    []
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Change:
    cell: str
    per_run: tuple[str, ...]   # "state (observed)" in each run; "-" where the cell did not run


def _label(cell: dict | None) -> str:
    if cell is None:
        return "-"
    observed = (cell.get("verdict") or {}).get("observed")
    return f"{cell.get('state', cell.get('outcome'))}" + (f" ({observed})" if observed else "")


def _by_id(results: dict) -> dict[str, dict]:
    return {c["id"]: c for c in results.get("cells", [])}


def _ids(runs: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in runs:
        for c in r.get("cells", []):
            seen.setdefault(c["id"], None)
    return list(seen)


def changes(runs: list[dict]) -> list[Change]:
    """Cells whose verdict state or observed outcome was not the same in every run."""
    maps = [_by_id(r) for r in runs]
    out = []
    for cid in _ids(runs):
        labels = tuple(_label(m.get(cid)) for m in maps)
        if len(set(labels)) > 1:
            out.append(Change(cid, labels))
    return out


def spread(runs: list[dict]) -> list[tuple[str, float, float, float]]:
    """(cell, min, median, max) of each cell's duration in seconds across the runs."""
    maps = [_by_id(r) for r in runs]
    rows = []
    for cid in _ids(runs):
        times = [m[cid]["duration_s"] for m in maps if cid in m and "duration_s" in m[cid]]
        if times:
            rows.append((cid, min(times), statistics.median(times), max(times)))
    return rows


def report(runs: list[dict], out=sys.stdout) -> int:
    found = changes(runs)
    print(f"soak: {len(runs)} runs, {len(_ids(runs))} cells, {len(found)} cell(s) changed between runs", file=out)
    for c in found:
        print(f"  changed  {c.cell}: " + " | ".join(c.per_run), file=out)
    rows = sorted(spread(runs), key=lambda r: r[3] - r[1], reverse=True)
    print("time per cell across runs (s): min / median / max, widest spread first", file=out)
    for cid, lo, mid, hi in rows:
        print(f"  {lo:7.3f} {mid:7.3f} {hi:7.3f}  {cid}", file=out)
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m aovpn_lab.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="how many runs back to back (default 5)")
    ap.add_argument("--inventory", default=None, help="the target (default: the embedded lab)")
    ap.add_argument("--reports", default=None, help="folder for the runs (default reports/)")
    ap.add_argument("-k", dest="select", default=None, help="only cells matching this pytest -k expression")
    ap.add_argument("--compare", nargs="+", metavar="RUN_DIR", help="compare these earlier runs instead")
    args = ap.parse_args(argv)
    if args.compare:
        dirs = [Path(d) for d in args.compare]
    else:
        from . import paths
        from .errors import AovpnError
        from .report.run import run_suite
        reports = Path(args.reports) if args.reports else paths.ROOT / "reports"
        dirs = []
        for i in range(args.runs):
            print(f"soak: run {i + 1} of {args.runs}", file=sys.stderr, flush=True)
            try:
                run_suite(inventory=args.inventory or str(paths.INVENTORIES / "lab"), prefix=None,
                          select=args.select, reports_dir=reports)
            except AovpnError as exc:
                print(f"soak: {exc}", file=sys.stderr)
                return 2
            dirs.append((reports / "latest").resolve())
    try:
        runs = [json.loads((d / "results.json").read_text()) for d in dirs]
    except (OSError, ValueError) as exc:
        print(f"soak: cannot read a run's results.json: {exc}", file=sys.stderr)
        return 2
    return report(runs)


if __name__ == "__main__":
    sys.exit(main())
