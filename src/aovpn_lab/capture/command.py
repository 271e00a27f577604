"""``aovpn-lab diagnose``: argparse registration for the lead's CLI.

Wire it in ``cli.py``::

    from aovpn_lab.capture import command as capture_command
    capture_command.register(subparsers)     # subparsers = parser.add_subparsers(...)
    ...
    args = parser.parse_args(argv)
    return args.func(args)

Exit status: 0 the IKE SA was established, 1 it was not, 2 bad input (one line on
stderr naming the file). Also runnable alone: ``python -m aovpn_lab.capture.command
--client C.pcap --server S.pcap``.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

EXIT_ESTABLISHED = 0
EXIT_NOT_ESTABLISHED = 1
EXIT_BAD_INPUT = 2

_DESCRIPTION = textwrap.fill(
    "Compare a capture taken on the VPN client with one taken on the VPN server at the same time and "
    "say whether the IKEv2 connection came up and, if not, why and where packets were lost. Exchanges "
    "are matched by IKE SPIs (NAT between the two capture points is fine); IP fragments and RFC 7383 IKE "
    "fragments are counted on both sides. Encrypted payloads are not decrypted: IKE_AUTH failures are "
    "judged by message sizes and what follows (see the JSON 'reason').", width=78)

_EPILOG = """\
causes:
  none                   established (check uses_ip_fragmentation: at risk behind
                         firewalls that drop fragments)
  udp-500-blocked        IKE_SA_INIT (UDP 500) lost on the path
  udp-4500-blocked       IKE_AUTH/ESP on UDP 4500 (NAT-T) lost on the path
  ip-fragments-dropped   a large IP-fragmented IKE message (IKE_AUTH with
                         certificates) lost: enable RFC 7383 fragmentation
  ike-fragments-dropped  RFC 7383 fragments lost (fragment size above the path MTU?)
  no-proposal-chosen     no common IKE proposal (NO_PROPOSAL_CHOSEN)
  auth-failed            IKE_AUTH refused (certificate/identity/EAP)
  no-response            the responder received the request and stayed silent

capture both ends, at the same time, whole packets:
  tcpdump -i IF -s 0 -w FILE 'udp port 500 or udp port 4500 or ip[6:2] & 0x3fff != 0 or esp'
  (Windows: pktmon start --capture --pkt-size 0, then pktmon etl2pcap)

exit status: 0 established, 1 not established, 2 bad input

examples:
  aovpn-lab diagnose --client client.pcapng --server rras.pcap
  aovpn-lab diagnose --client c.pcap --server s.pcap --json | jq .cause
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``diagnose`` to an argparse sub-parsers object; returns the new parser."""
    p = subparsers.add_parser(
        "diagnose",
        help="explain an IKEv2 failure from a client capture and a server capture",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(p)
    p.set_defaults(func=run_diagnose)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--client", required=True, metavar="CLIENT.pcap",
                   help="capture taken on the client (the IKE initiator); pcap or pcapng")
    p.add_argument("--server", required=True, metavar="SERVER.pcap",
                   help="capture taken on the VPN server at the same time; pcap or pcapng")
    p.add_argument("--json", action="store_true",
                   help="print the diagnosis and all evidence as JSON instead of the summary")


def run_diagnose(args: argparse.Namespace) -> int:
    from aovpn_lab.errors import AovpnError

    from .diagnose import diagnose

    try:
        result = diagnose(args.client, args.server)
    except AovpnError as exc:
        print(f"aovpn-lab diagnose: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.summary())
    return EXIT_ESTABLISHED if result.established else EXIT_NOT_ESTABLISHED


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aovpn-lab diagnose", description=_DESCRIPTION, epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    return run_diagnose(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
