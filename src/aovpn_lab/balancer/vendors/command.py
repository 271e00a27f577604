"""``aovpn-lab lb render``: write each vendor's configuration and print its findings.

Wire it in ``cli.py``::

    from .balancer.vendors import command as lb_command
    lb_command.register(sub)               # sub = parser.add_subparsers(...)

Exit status: 0 no finding failed (warnings allowed), 1 a finding failed, 2 bad input.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ... import paths
from ...errors import InventoryError
from . import vendors
from .checks import check
from ..spec import VAR, from_host

DEFAULT_OUT = paths.REPORTS / "balancer"

_EPILOG = """\
artefacts (in OUT/VENDOR/):
  f5         tasks.yml: the tasks of playbooks/balancer-f5.yml, values resolved (apply the playbook)
  netscaler  netscaler.conf (CLI) and nitro.json (the same as NITRO calls)
  kemp       kemp-calls.json (RESTful API calls) and kemp.txt (the same, readable)

checks: AOVPN-LB-AFFINITY-001, -NOSNAT-001, -HEALTH-001, -REKEY-001, -SSTP-001
exit status: 0 no finding failed, 1 a finding failed, 2 bad input

examples:
  aovpn-lab lb render --vendor all --inventory inventories/examples/rras-nps-f5.yml
  aovpn-lab lb render --vendor netscaler --host lb --out /tmp/lb --json
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    lb = subparsers.add_parser("lb", help="load balancer configuration for F5, NetScaler and Kemp",
                               description="Load balancers in front of the gateways.")
    sub = lb.add_subparsers(dest="lb_command", metavar="ACTION", required=True)
    p = sub.add_parser("render", help="render each vendor's recommended configuration and check it",
                       description="Render the recommended configuration of a balancer product from the inventory "
                                   "host's load_balancer variable, read the artefact back and check every value "
                                   "against the AOVPN-LB requirements.",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vendor", choices=["f5", "netscaler", "kemp", "all"], default="all",
                   help="which product (default: %(default)s)")
    # SUPPRESS: without it the global --inventory (before `lb`) would be overwritten by this default
    p.add_argument("--inventory", "-i", default=argparse.SUPPRESS,
                   help="inventory folder or YAML file (also accepted before `lb`)")
    p.add_argument("--host", help=f"the inventory host whose {VAR} to render (default: the only host that has one)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the artefacts (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ... import inventory
    from ...inventory.vault import Vault
    inv = inventory.load(args.inventory, prefix=getattr(args, "prefix", None),
                         vault=Vault.of(getattr(args, "vault_password_file", None), getattr(args, "ask_vault_pass", False)))
    host = _host(inv, args.host)
    spec = from_host(host)
    chosen = vendors() if args.vendor == "all" else {args.vendor: vendors()[args.vendor]}
    findings, written = [], []
    for name, module in chosen.items():
        artefact = module.render(spec, dict(host.vars))
        written += artefact.write(Path(args.out))
        findings += check(module.read(artefact), spec)
    if args.json:
        print(json.dumps({"host": host.name, "files": [str(p) for p in written],
                          "findings": [f.__dict__ for f in findings]}, indent=2))
    else:
        for p in written:
            print(f"wrote {p}")
        for f in findings:
            print(f.line())
    return 1 if any(f.severity == "fail" for f in findings) else 0


def _host(inv: Any, name: str | None):
    if name:
        return inv.host(name)
    having = [h for h in inv.hosts.values() if h.var(VAR) is not None]
    if len(having) != 1:
        found = ", ".join(sorted(h.name for h in having)) or "none"
        raise InventoryError(f"{inv.path}: {len(having)} hosts define {VAR} ({found})",
                             hint="name one with --host NAME" if having else
                             f"give a host of the inventory a {VAR} variable (as host_vars/lb.yml), or name one with --host")
    return having[0]
