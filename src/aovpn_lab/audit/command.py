"""``aovpn-lab audit``: read a deployed RRAS/NPS back and judge it against the catalogue.

Wire it in ``cli.py`` beside the other commands::

    from .audit import command as audit_command
    audit_command.register(sub)

Exit status: 0 no finding failed (warnings and not-read allowed), 1 a finding failed,
2 bad input or an unreachable server (one line naming host, step and fix).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import AovpnError

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2

EPILOG = """\
what is read (docs/audit.md): Get-RemoteAccess, Get-VpnServerConfiguration, Get-VpnAuthProtocol,
the registry values of profiles/rras.yml, Cert:\\LocalMachine\\My, SCHANNEL protocols, the WAN
Miniports, inbound firewall rules, netsh nps show np.

examples:
  aovpn-lab audit --inventory inventories/examples/rras-behind-asa.yml --host rras1 --vault-password-file FILE
  aovpn-lab audit --from tests/data/rras/out-of-the-box
  aovpn-lab audit --from DIR --inventory INV --host rras1 --json   recorded outputs, the host's variables

exit status: 0 no finding failed, 1 a finding failed, 2 bad input or the server could not be read
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "audit", help="read a deployed RRAS/NPS server back and judge it against the catalogue",
        description="Run read-only commands on a Windows RRAS/NPS server over PSRP (WinRM), or read their recorded "
                    "outputs, and judge them against profiles/rras.yml: each finding with its requirement, what was "
                    "found, what is expected and the command that fixes it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    # SUPPRESS: the global --inventory (before `audit`) stays when this one is not given
    p.add_argument("--inventory", "-i", default=argparse.SUPPRESS,
                   help="inventory folder or YAML file (also accepted before `audit`)")
    p.add_argument("--host", help="the inventory host to audit (default: the only host of group rras_gateways "
                                  "or ikev2_gateways)")
    p.add_argument("--from", dest="recorded", metavar="DIR",
                   help="judge recorded outputs (DIR/<command>.txt) instead of connecting")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)
    return p


def _inventory_host(args: argparse.Namespace) -> Any:
    from .. import inventory
    from ..errors import InventoryError
    from ..inventory.vault import Vault
    inv = inventory.load(args.inventory, prefix=getattr(args, "prefix", None),
                         vault=Vault.of(getattr(args, "vault_password_file", None), getattr(args, "ask_vault_pass", False)))
    if args.host:
        return inv.host(args.host)
    for group in ("rras_gateways", "ikev2_gateways"):
        members = inv.group(group)
        if len(members) == 1:
            return members[0]
    raise InventoryError(f"{inv.path}: no single RRAS gateway to audit", hint="name one with --host NAME")


def run(args: argparse.Namespace) -> int:
    from . import collect, judge, report
    try:
        if args.recorded:
            host = _inventory_host(args) if args.host else None
            readings = collect.recorded(args.recorded)
            origin = f"recorded in {args.recorded}"
        else:
            host = _inventory_host(args)
            readings = collect.live(host)
            origin = f"read over PSRP from {collect.connection(host).where}"
        result = judge.judge(readings, host=host.name if host else "-", origin=origin,
                             host_vars=dict(host.vars) if host else {})
    except AovpnError as exc:
        print(f"aovpn-lab audit: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(report.to_json(result), indent=2))
    else:
        print(report.render_text(result))
    return EXIT_FAILED if result.failed else EXIT_OK
