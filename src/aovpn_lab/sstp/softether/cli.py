"""The command line of the lab SSTP gateway, for the Ansible role ``playbooks/roles/softether``::

    AOVPN_SSTP_PASSWORD_ALICE=... python -m aovpn_lab.sstp.softether up \\
        --netns aovpn-sstp --state /var/lib/aovpn-lab/sstp --cert c.pem --key k.pem \\
        --user alice
    python -m aovpn_lab.sstp.softether down --state /var/lib/aovpn-lab/sstp

Each prints one JSON object (``{"failed": true, "msg": ...}`` and a non-zero exit on errors).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ...passwords import passwords_from_env
from ...service.cli import instance_parser, run
from .binary import prepare_binary
from .errors import SoftEtherError
from .instance import SoftEtherInstance
from .settings import SoftEtherSettings

PASSWORD_ENV_PREFIX = "AOVPN_SSTP_PASSWORD_"
PASSWORD_ENV = "AOVPN_SSTP_PASSWORD"


def users_from_env(names: list[str], environ=os.environ) -> dict[str, str]:
    return passwords_from_env(names, PASSWORD_ENV_PREFIX, PASSWORD_ENV, environ, SoftEtherError)


def build_parser() -> argparse.ArgumentParser:
    p, sub, up = instance_parser("python -m aovpn_lab.sstp.softether",
                                 "Lab SSTP gateway: Debian's SoftEther, patched, in a netns.",
                                 up_help="start (or keep) an instance and configure it")
    patch = sub.add_parser("patch", help="only write the patched vpnserver copy into DIR")
    patch.add_argument("directory")
    up.add_argument("--cert", required=True, help="server certificate, PEM (RSA or ECDSA)")
    up.add_argument("--key", required=True, help="its private key, PEM, unencrypted")
    up.add_argument("--chain", help="intermediate CA certificates to send, PEM (a fullchain "
                                    "--cert works too)")
    up.add_argument("--user", action="append", default=[], required=True,
                    help=f"hub user; password from ${PASSWORD_ENV_PREFIX}<USER> "
                         f"(or ${PASSWORD_ENV} for one user)")
    up.add_argument("--hub", default="LAB")
    up.add_argument("--port", type=int, default=443)
    up.add_argument("--admin-port", type=int, default=5555)
    up.add_argument("--nat-host", default="198.19.2.1")
    up.add_argument("--nat-mask", default="255.255.255.0")
    up.add_argument("--dhcp-start", default="198.19.2.10")
    up.add_argument("--dhcp-end", default="198.19.2.200")
    return p


def _patch(args: argparse.Namespace) -> dict:
    prepared = prepare_binary(Path(args.directory))
    return {"changed": prepared.changed, "binary": str(prepared.binary),
            "sha256": prepared.sha256, "original_sha256": prepared.original_sha256}


def _up(args: argparse.Namespace) -> dict:
    settings = SoftEtherSettings(
        users=users_from_env(args.user), hub=args.hub, port=args.port,
        admin_port=args.admin_port, nat_host=args.nat_host, nat_mask=args.nat_mask,
        dhcp_start=args.dhcp_start, dhcp_end=args.dhcp_end)
    return SoftEtherInstance(args.state, args.netns).up(settings, Path(args.cert), Path(args.key),
                                                        chain_pem=Path(args.chain) if args.chain else None)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv), name="softether", up=_up, instance=SoftEtherInstance,
               other={"patch": _patch}, exit_code=lambda exc: exc.exit_code or 1)
