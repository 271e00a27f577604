"""``aovpn-lab scan``: argparse registration for the lead's CLI.

Wire it in ``cli.py``::

    from aovpn_lab.pathscan import command as pathscan_command
    pathscan_command.register(sub)          # sub = parser.add_subparsers(...)

The parser sets ``func``; errors are :class:`aovpn_lab.errors.AovpnError` (one line, exit 2
in the CLI). Also runnable alone: ``python -m aovpn_lab.pathscan.command --gateway ADDR``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .plan import DEFAULT_CHECKS, DEFAULT_FRAGMENT_SIZES

_DESCRIPTION = """\
Find out which of the paths an IKEv2 (Always On VPN) gateway needs are open between
a client and the gateway. From the client side (this host, or --client-netns) crafted,
tagged probes are sent all at once: IKE_SA_INIT on UDP 500, IKE_SA_INIT with the
non-ESP marker on UDP 4500, a TCP SYN to 443, a native ESP packet (IP protocol 50), an
L2TP SCCRQ on UDP 1701, and UDP 4500 datagrams of increasing size that are cut into IP
fragments (--sizes).

With --far-interface, tcpdump captures on the gateway's side during the scan and
decides, per probe, whether it ARRIVED (all bytes, all fragments) - the only way to
tell a filter on the path from a gateway that ignores a probe.

WITHOUT a far-end capture only "answered / not answered" can be reported. That cannot
tell: whether an unanswered probe was dropped on the way or arrived and was ignored
(ESP and L2TP are rarely answered; a gateway without an IKE daemon stays silent;
hosts rate-limit ICMP errors); whether fragments were dropped (only that the big
probe got no answer); or whether UDP 1701 is open at all when nothing listens there.
Answers are still recorded, including ICMP errors and which address sent them (a
hop that rejects names itself)."""

_EPILOG = f"""\
checks (default: {' '.join(DEFAULT_CHECKS)}):
  udp500, udp4500  needed for IKEv2 (4500 after NAT detection: IKE_AUTH, ESP-in-UDP)
  frag4500:N       an N-byte IP datagram on UDP 4500, fragmented to the route MTU:
                   large IKE_AUTH messages (certificate chains) need fragments to pass
  esp              native ESP; needed only when there is NO NAT between the two
  tcp443           TCP SYN; needed only for SSTP/TLS gateways (--sstp)
  udp1701          L2TP; NOT needed for IKEv2: reaching the gateway is a warning

findings: fail (a needed path is blocked), warn (native ESP blocked, UDP 1701
exposed), unknown (no capture and a needed probe got no answer), info.

exit status: 0 every needed path open, 1 a needed path blocked, 2 bad input or the
scan could not run, 3 inconclusive (no far-end capture, needed probes unanswered)

needs root (raw sockets; tcpdump for the capture). IPv4 only.

examples:
  aovpn-lab scan --gateway 203.0.113.10 --far-netns gw --far-interface eth0
  aovpn-lab scan --gateway 203.0.113.10 --client-netns client --sizes 1400,3000,9000 --json
  aovpn-lab scan --gateway 203.0.113.10          # answers only, see above
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``scan`` to an argparse sub-parsers object; returns the new parser."""
    p = subparsers.add_parser(
        "scan", help="which of the IKEv2 paths (UDP 500/4500, IP fragments, ESP) are open to a gateway",
        description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(p)
    p.set_defaults(func=run_scan)
    return p


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of byte counts: {text!r}") from None
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one size")
    return sizes


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gateway", required=True, metavar="ADDR", help="the gateway's IPv4 address")
    p.add_argument("--far-netns", metavar="NS",
                   help="network namespace of the far-end capture (default: this namespace)")
    p.add_argument("--far-interface", metavar="IF",
                   help="interface on the gateway side to capture on; without it only answers are "
                        "reported (see above)")
    p.add_argument("--client-netns", metavar="NS",
                   help="send the probes from this network namespace (default: this one)")
    p.add_argument("--checks", metavar="LIST",
                   help="comma-separated checks (default: all, see below); frag4500:N for a size")
    p.add_argument("--sizes", type=_sizes, metavar="N,N,...",
                   default=list(DEFAULT_FRAGMENT_SIZES),
                   help="IP datagram sizes of the frag4500 checks (default: %(default)s)")
    p.add_argument("--sstp", action="store_true",
                   help="the gateway also serves SSTP: TCP 443 becomes a needed path")
    p.add_argument("--timeout", type=float, default=1.0,
                   help="seconds to wait for answers after sending (default: %(default)s)")
    p.add_argument("--keep-capture", metavar="FILE.pcap", help="keep the far-end capture here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def checks_from_args(args: argparse.Namespace) -> list[str]:
    if args.checks:
        names = [c.strip() for c in args.checks.split(",") if c.strip()]
    else:
        names = [c for c in DEFAULT_CHECKS if not c.startswith("frag4500:")] + ["frag4500"]
    out: list[str] = []
    for n in names:
        if n == "frag4500":
            out.extend(f"frag4500:{s}" for s in args.sizes)
        else:
            out.append(n)
    return out


def run_scan(args: argparse.Namespace) -> int:
    from .scan import PathScanError, scan_path

    if args.far_netns and not args.far_interface:
        raise PathScanError("--far-netns needs --far-interface",
                            "name the gateway-side interface to capture on")
    report = scan_path(args.client_netns, args.gateway, far_end_netns=args.far_netns,
                       far_end_interface=args.far_interface, checks=checks_from_args(args),
                       timeout=args.timeout, sstp=args.sstp, keep_capture=args.keep_capture)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.render_text())
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    from aovpn_lab.errors import AovpnError

    parser = argparse.ArgumentParser(prog="aovpn-lab scan", description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_scan(args)
    except AovpnError as exc:
        print(f"aovpn-lab: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
