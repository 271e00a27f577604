"""``aovpn-lab certs ...``: argparse registration for the lead's CLI.

Wire it in ``cli.py``::

    from aovpn_lab.certs import command as certs_command
    certs_command.register(subparsers)     # subparsers = parser.add_subparsers(...)
    ...
    args = parser.parse_args(argv)
    return args.func(args)

Exit codes of ``certs inspect``: 0 no requirement failed (warnings allowed), 1 at least
one requirement failed, 2 bad input (one line on stderr naming the file).
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from aovpn_lab.certs.errors import CertificateInputError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

_INSPECT_EPILOG = """\
checks (docs/domain.md, "Certificates"):
  ikev2-server  EKU Server Authentication (required) and IP security IKE intermediate
                (recommended); subject CN and SAN = the name clients dial; validity;
                chain linkage; predicted IKE_AUTH size vs the path MTU
  sstp-server   EKU Server Authentication; subject or SAN = public name; validity;
                linkage; revocation info; ECDSA recommended
  client        EKU Client Authentication; validity; linkage; IKE_AUTH size

exit status: 0 no requirement failed, 1 a requirement failed, 2 bad input

examples:
  aovpn-lab certs inspect vpn.example.net.cert.pem chain.pem --dial-name vpn.example.net
  aovpn-lab certs inspect gateway.p7b --role sstp-server --json
  aovpn-lab certs inspect client.example.net.fullchain.pem --role client --mtu 1400
"""


def _positive_mtu(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 576 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"MTU {value} out of range 576..65535")
    return value


def register(subparsers: Any) -> None:
    """Add ``certs`` (with ``inspect``) to an argparse sub-parsers object."""
    certs = subparsers.add_parser(
        "certs",
        help="inspect VPN certificates against the Always On VPN requirements",
        description="Certificate tools: check gateway and client certificate chains.",
    )
    sub = certs.add_subparsers(dest="certs_command", metavar="COMMAND")
    sub.required = True
    inspect = sub.add_parser(
        "inspect",
        help="check a certificate chain (EKUs, names, validity, linkage, IKE_AUTH size)",
        description=textwrap.fill(
            "Load one or more certificate files (PEM with one or several certificates, DER, "
            "or PKCS#7), sort the certificates leaf first, show each one (subject, issuer, key, "
            "DER size, validity, EKUs, SANs, CDP/AIA/policies) and check them against the "
            "requirements for ROLE. For IKEv2 roles, predicts the IKE_AUTH size with this "
            "chain and how many IP fragments it needs at the given MTU.",
            width=78,
        ),
        epilog=_INSPECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("files", nargs="+", metavar="FILE",
                         help="certificate file(s): leaf and intermediates, in any order")
    inspect.add_argument("--dial-name", metavar="NAME", default=None,
                         help="the name clients dial (servers) or the client's identity; "
                              "checked against the leaf's SAN and subject CN")
    inspect.add_argument("--role", choices=("ikev2-server", "sstp-server", "client"), default="ikev2-server",
                         help="what the leaf certificate is used for (default: %(default)s)")
    inspect.add_argument("--mtu", type=_positive_mtu, default=1500, metavar="BYTES",
                         help="path MTU for the IKE_AUTH fragmentation prediction (default: %(default)s)")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.set_defaults(func=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from aovpn_lab.certs.inspect import inspect_chain, load_files, render_text, to_json

    try:
        certs, sources = load_files(args.files)
    except CertificateInputError as exc:
        print(f"aovpn-lab certs inspect: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    report = inspect_chain(certs, dial_name=args.dial_name, role=args.role, mtu=args.mtu, sources=sources)
    if args.json:
        print(json.dumps(to_json(report), indent=2))
    else:
        print(render_text(report))
    return EXIT_FAILED if report.failed else EXIT_OK
