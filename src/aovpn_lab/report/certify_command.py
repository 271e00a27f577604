"""``aovpn-lab certify``: run the full matrix against a target and write its certification report.

Wire it in ``cli.py`` beside the other commands::

    from .report import certify_command
    certify_command.register(sub)

    aovpn-lab --inventory VENDOR_INVENTORY certify      run the suite, then certify reports/latest
    aovpn-lab --inventory INV certify --run DIR         certify a run that already ended
    aovpn-lab certify --verify DIR                      recompute the manifest's digests

Exit status: certify 0 certified, 1 not certified, 2 bad input or a broken run (one line);
--verify 0 every file matches, 1 a file differs or is missing, 2 no usable manifest.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import paths

EPILOG = """\
the target is named by the inventory's `certification` variable:
  certification:
    vendor: Microsoft
    model: Windows Server 2022 Routing and Remote Access
    software_version: "10.0.20348.2582"
    configuration: [rras1-vpnserver.txt]    # relative to the inventory; hashed
  (a value left out is reported as "not declared in the inventory")

certified: the run is complete (full matrix, not interrupted) and every MUST requirement
passed or is not applicable; SHOULD requirements that do not pass are recommendations.

check a run folder later, with or without this tool:
  aovpn-lab certify --verify reports/RUN-ID
  cd reports/RUN-ID && sha256sum -c manifest.sha256
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "certify", help="run the full matrix against a target and write a certification report (HTML, PDF)",
        description="Run the conformance suite against the target the global --inventory describes, then write "
                    "manifest.sha256, certification.html and certification.pdf in the run folder: the target's "
                    "vendor, model, software version and configuration digest, every requirement's status, the "
                    "evidence, the environment and the SHA-256 of every evidence file.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Also after the subcommand, as `certify --inventory VENDOR_INVENTORY` reads; the global one otherwise.
    p.add_argument("--inventory", "-i", default=argparse.SUPPRESS,
                   help="the vendor target's Ansible inventory (default: the global --inventory, the embedded lab)")
    p.add_argument("--reports", default=str(paths.REPORTS), help="reports folder (default: %(default)s)")
    p.add_argument("-k", help="only cells matching this pytest -k expression (such a run is never certified)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--run", metavar="DIR", help="certify this finished run folder instead of running the suite")
    what.add_argument("--verify", metavar="DIR", help="recompute the SHA-256 of every file in DIR's manifest")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from .certify import verify
    if args.verify:
        return verify(Path(args.verify))
    return certify(args)


def certify(args: argparse.Namespace) -> int:
    from .. import inventory
    from ..inventory.vault import Vault
    from .certify import write_certification
    from .declaration import declaration
    vault = Vault.of(getattr(args, "vault_password_file", None), getattr(args, "ask_vault_pass", False))
    inv = inventory.load(args.inventory, prefix=getattr(args, "prefix", None), vault=vault)
    declaration(inv)  # a wrong certification block is reported now, not after the whole matrix ran
    if args.run:
        run_dir = Path(args.run)
    else:
        from . import run as report_run
        reports = Path(args.reports)
        code = report_run.run_suite(inventory=args.inventory, prefix=getattr(args, "prefix", None), select=args.k,
                                    reports_dir=reports, extra=getattr(args, "pytest_args", None), vault=vault)
        run_dir = reports / "latest"
        if code == 2:  # the run itself broke: there is nothing to certify, and that is not the target's fault
            print(f"aovpn-lab: the run did not finish; no certification written (see {run_dir})", file=sys.stderr)
            return 2
    result = write_certification(run_dir, inv)
    for label, path in (("report", result.html), ("pdf", result.pdf), ("manifest", result.manifest)):
        print(f"aovpn-lab: certification {label} {path}", file=sys.stderr)
    print(result.verdict)
    return 0 if result.certified else 1
