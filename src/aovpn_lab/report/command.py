"""`aovpn-lab report rebuild DIR`: every page of a run folder again, from its results.json.

After a crash, a SIGKILL, or an upgrade of the report's look: results.json is the record;
the pages are views of it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import AovpnError


def register(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="build the pages of a run folder again from its results.json",
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
