"""``aovpn-lab compare BASELINE CANDIDATE``: argparse registration for cli.py.

    from .report import compare_command
    compare_command.register(sub, run_now=run_side)   # run_side(args, kind, value) -> run folder

Each side is a results.json, a run folder, or an inventory / gateway variant to run now;
`run_now` is the CLI's way of running the suite for such a side (it gets the parsed
arguments, "inventory" or "variant", and the path or name, and returns the run folder).

Exit status: 0 the candidate breaks nothing that passed in the baseline, 1 it does,
2 bad input (an AovpnError: cli.main prints one line).
"""
from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any, Callable

from .. import paths
from ..errors import AovpnError

DESCRIPTION = ("Compare a candidate run with a baseline run of the same matrix: per requirement and per cell, "
               "what the change breaks, fixes or leaves, with both sides' evidence; writes compare.html and "
               "compare.json and prints the summary.")
EPILOG = """\
each side is one of:
  reports/<run-id> or its results.json   a finished run
  an inventory folder or .yml file       run the suite against it now
  a gateway variant (or variant:NAME)    embedded lab: provision it and run now

exit status: 0 the candidate breaks nothing that passed in the baseline, 1 it breaks
something, 2 bad input (another tool's file, an incompatible version, different matrices)

examples:
  aovpn-lab compare reports/20261202T101500Z-1a2b3c reports/latest
  aovpn-lab compare default rras-defaults --out reports/compare-rras
"""

SideRunner = Callable[[argparse.Namespace, str, str], "str | Path"]


def _cannot_run(args: argparse.Namespace, kind: str, value: str) -> Path:
    raise AovpnError(f"compare cannot run the suite for {kind} '{value}' here",
                     hint="run it first (aovpn-lab run) and give its run folder")


def register(subparsers: Any, *, run_now: SideRunner | None = None) -> None:
    """Add ``compare`` to the aovpn-lab sub-parsers; `run_now(args, kind, value)` runs a side."""
    p = subparsers.add_parser("compare", help="what a change breaks or fixes: a candidate run against a baseline",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", metavar="BASELINE", help="the run before the change (see below)")
    p.add_argument("candidate", metavar="CANDIDATE", help="the run after the change (see below)")
    p.add_argument("--out", metavar="DIR",
                   help="where compare.html and compare.json go (default: reports/compare-BASE-vs-CAND)")
    p.add_argument("--json", action="store_true", help="print compare.json instead of the summary")
    p.add_argument("--reports", default=str(paths.REPORTS), metavar="DIR",
                   help="where a side run now goes (default: %(default)s)")
    p.add_argument("-k", help="a side run now runs only the cells matching this pytest -k expression (both sides "
                              "alike, so that they plan the same matrix)")
    p.set_defaults(func=functools.partial(run, run_now=run_now or _cannot_run))


def default_out(base_id: str, cand_id: str) -> Path:
    return paths.REPORTS / f"compare-{base_id}-vs-{cand_id}"


def run(args: argparse.Namespace, *, run_now: SideRunner) -> int:
    from . import compare as cmp_mod
    side = functools.partial(run_now, args)
    base = cmp_mod.resolve(args.baseline, run_now=side)
    cand = cmp_mod.resolve(args.candidate, run_now=side)
    cmp = cmp_mod.compare(base, cand)
    out = Path(args.out) if args.out else default_out(base.run_id, cand.run_id)
    try:
        page, _ = cmp_mod.write(cmp, out)
    except OSError as exc:
        raise AovpnError(f"{out}: cannot write the comparison: {exc.strerror}", hint="give a writable --out") from None
    if args.json:
        print(json.dumps(cmp.to_json(), indent=1, default=str))
    else:
        print(cmp_mod.render_terminal(cmp), end="")
        print(f"report {page}")
    return cmp_mod.exit_code(cmp)
