"""``aovpn-lab probe sstp``: one SSTP connection attempt from this host (or a namespace).

cli.py owns the ``probe`` parser; it wires this in with::

    sp = probesub.add_parser("sstp", help="one SSTP connection attempt", description=...)
    sstp_command.add_arguments(sp)
    sp.set_defaults(func=sstp_command.run)

Exit status: 0 connected (and the ping, if asked, answered), 1 not connected, 2 bad input.
The password comes from ``--password-env VAR`` (preferred: nothing on the command line)
or ``--password``; it is removed from the parsed arguments as soon as it is read::

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--server", "vpn.example.net:8443", "--user", "alice",
    ...                           "--password-env", "SSTP_PW"])
    >>> parse_server(args.server), args.auth, args.timeout
    (('vpn.example.net', 8443), 'mschapv2', 15.0)
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys

# The keys of probe.AUTH_CHOICES, named here so that building the CLI's parser does not
# import the probe (and scapy, ~0.9 s) for every aovpn-lab command; a unit test holds them equal.
AUTH_NAMES = ("mschapv2", "pap")

DESCRIPTION = (
    "Connect once over SSTP (TLS, SSTP_DUPLEX_POST, CALL_CONNECT, PPP with MS-CHAPv2 or PAP, "
    "crypto binding, IPCP), optionally ping through the tunnel, disconnect, and say whether it "
    "worked and, if not, why: tcp-443-blocked, tls-failed, cert-untrusted, not-sstp, "
    "auth-failed, crypto-binding-rejected, protocol-error or timeout."
)


class BadInput(ValueError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", required=True, metavar="HOST[:PORT]",
                        help="SSTP server name or address, port 443 unless given ([v6]:port for IPv6)")
    parser.add_argument("--user", required=True,
                        help="PPP user name (SoftEther hub users: user@HUB; RRAS: DOMAIN\\user)")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--password-env", metavar="VAR",
                        help="read the password from environment variable VAR (keeps it off "
                             "the command line)")
    secret.add_argument("--password", help="the password (visible in the process list; prefer "
                                           "--password-env)")
    parser.add_argument("--ca", metavar="CA.pem",
                        help="CA certificate(s) to verify the server against (default: system store)")
    parser.add_argument("--sni", metavar="NAME",
                        help="name to send as SNI and verify the certificate against "
                             "(default: the --server host)")
    parser.add_argument("--ping", metavar="ADDR", help="after connecting, ping this IPv4 address "
                                                       "through the tunnel")
    parser.add_argument("--auth", choices=sorted(AUTH_NAMES), default="mschapv2",
                        help="PPP authentication (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=15.0,
                        help="seconds for the whole attempt (default: %(default)s)")
    parser.add_argument("--netns", metavar="NAME",
                        help="connect from network namespace NAME (/run/netns/NAME; needs root)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def parse_server(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    text = text.strip()
    if not text:
        raise BadInput("--server is empty")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise BadInput(f"--server {text!r}: missing ']'")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
        if port_text is None:
            raise BadInput(f"--server {text!r}: unexpected {rest!r} after ']'")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        host, port_text = text, ""  # a bare IPv6 address
    else:
        host, port_text = text, ""
    if not host:
        raise BadInput(f"--server {text!r}: no host")
    if not port_text:
        return host, 443
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise BadInput(f"--server {text!r}: port {port_text!r} is not 1-65535")
    return host, int(port_text)


def _password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise BadInput(f"environment variable {args.password_env} is not set")
    else:
        value = args.password
    args.password = None  # not kept in the parsed arguments
    if not value:
        raise BadInput("the password is empty")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        host, port = parse_server(args.server)
        password = _password(args)
        if args.timeout <= 0:
            raise BadInput("--timeout must be positive")
        if args.ca and not os.path.isfile(args.ca):
            raise BadInput(f"--ca {args.ca}: no such file")
        if args.ping:
            try:
                ipaddress.IPv4Address(args.ping)
            except ValueError:
                raise BadInput(f"--ping {args.ping!r} is not an IPv4 address") from None
        if args.netns and not os.path.exists(os.path.join("/run/netns", args.netns)):
            raise BadInput(f"--netns {args.netns}: no such network namespace")
    except BadInput as exc:
        print(f"aovpn-lab: error: {exc}", file=sys.stderr)
        return 2
    from .probe import probe_sstp
    result = probe_sstp(host, port, user=args.user, password=password, ca_file=args.ca,
                        sni=args.sni, ping=args.ping, timeout=args.timeout, auth=args.auth,
                        netns=args.netns)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.summary())
    return 0 if result.connected else 1


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry until cli.py wires the command in: python -m aovpn_lab.sstp.command."""
    parser = argparse.ArgumentParser(prog="aovpn-lab probe sstp", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
