"""`aovpn-lab report rebuild DIR`: every page of a run folder again, from its results.json;
`aovpn-lab report merge RUN_DIR... --out DIR`: one report over several sites' runs (merge.py).

After a crash, a SIGKILL, or an upgrade of the report's look: results.json is the record;
the pages are views of it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import AovpnError


def register(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="pages of a run folder again from its results.json; several sites' runs in one",
                         description="Pages of a run: report.html, summary.png, and the history index of the "
                                     "folder holding the run.")
    rsub = rep.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    rb = rsub.add_parser("rebuild", help="regenerate report.html (and the history index, the certification "
                                         "report, the summary screenshot) from DIR/results.json",
                         description="Regenerate every page of a run folder from its results.json, e.g. after "
                                     "the run was killed. The history shown is the folder the run folder is in, "
                                     "unless --history names another.")
    rb.add_argument("run_dir", metavar="DIR", help="a run folder (reports/<run-id>) or reports/latest")
    rb.add_argument("--history", metavar="HISTORY", help="folder of runs to compare with (default: DIR's parent)")
    rb.add_argument("--no-screenshot", action="store_true", help="skip summary.png (no headless Chromium needed)")
    rb.set_defaults(func=cmd_rebuild)
    mg = rsub.add_parser("merge", help="one report over the runs of several sites, with a site column",
                         description="Merge the run folders of several sites (`aovpn-lab run --site NAME` on each "
                                     "site's tester, fetched back by playbooks/run-sites.yml) into OUT: each run "
                                     "copied to OUT/sites/<site>/, OUT/results.json with every site's cells, and "
                                     "OUT/report.html with each site's counts and every requirement's status at "
                                     "every site. Exit 0 when every applicable cell at every site passed, 1 "
                                     "otherwise, 2 on bad input.")
    mg.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", type=Path, help="a site's run folder (or results.json)")
    mg.add_argument("--out", required=True, type=Path, metavar="OUT", help="folder for the merged report")
    mg.add_argument("--site", action="append", default=[], metavar="NAME=DIR",
                    help="the site of a run whose results.json names none (default: its folder's name)")
    mg.set_defaults(func=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    from .merge import merge, parse_named
    merged = merge(list(args.run_dirs), args.out, parse_named(args.site))
    for s in merged.sites:
        c = s.results.counts()
        print(f"{s.name:<16} {s.results.run_id}  {c['pass']} pass, {c['fail']} fail, {c['inconclusive']} inconclusive, "
              f"{c['not-applicable']} not-applicable, {c['error']} error")
    print(f"report {merged.out / 'report.html'}: {merged.why}")
    return merged.exit_status


def cmd_rebuild(args: argparse.Namespace) -> int:
    from . import runfile
    from .pages import build_run_pages
    run_dir = Path(args.run_dir)
    runfile.load(run_dir)  # one clear error for a folder that is not a run
    history = Path(args.history) if args.history else run_dir.resolve().parent
    if not history.is_dir():
        raise AovpnError(f"history folder {history} does not exist", hint="give --history a folder of runs")
    written = build_run_pages(run_dir, history_dir=history, screenshot=not args.no_screenshot)
    for path in written:
        print(path)
    if not written:
        print(f"aovpn-lab: nothing written for {run_dir}", file=sys.stderr)
        return 2
    return 0
