"""The command line of the lab SSTP gateway, for the Ansible role ``playbooks/roles/softether``::

    AOVPN_SSTP_PASSWORD_ALICE=... python -m aovpn_lab.sstp.softether up \\
        --netns aovpn-sstp --state /var/lib/aovpn-lab/sstp --cert c.pem --key k.pem \\
        --user alice
    python -m aovpn_lab.sstp.softether down --state /var/lib/aovpn-lab/sstp

Each prints one JSON object (``{"failed": true, "msg": ...}`` and a non-zero exit on errors).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from ...errors import AovpnError
from ...passwords import passwords_from_env
from .binary import prepare_binary
from .errors import SoftEtherError
from .instance import SoftEtherInstance
from .settings import SoftEtherSettings

PASSWORD_ENV_PREFIX = "AOVPN_SSTP_PASSWORD_"
PASSWORD_ENV = "AOVPN_SSTP_PASSWORD"


def users_from_env(names: list[str], environ=os.environ) -> dict[str, str]:
    return passwords_from_env(names, PASSWORD_ENV_PREFIX, PASSWORD_ENV, environ, SoftEtherError)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aovpn_lab.sstp.softether",
                                description="Lab SSTP gateway: Debian's SoftEther, patched, in a netns.")
    sub = p.add_subparsers(dest="action", required=True)
    patch = sub.add_parser("patch", help="only write the patched vpnserver copy into DIR")
    patch.add_argument("directory")
    up = sub.add_parser("up", help="start (or keep) an instance and configure it")
    up.add_argument("--netns", required=True)
    up.add_argument("--state", required=True, help="instance folder (created, mode 0700)")
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
    down = sub.add_parser("down", help="stop the instance's processes (by recorded PID)")
    down.add_argument("--state", required=True)
    down.add_argument("--purge", action="store_true", help="also delete the instance folder")
    status = sub.add_parser("status", help="is the instance running and listening")
    status.add_argument("--state", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.action == "patch":
            prepared = prepare_binary(Path(args.directory))
            result = {"changed": prepared.changed, "binary": str(prepared.binary),
                      "sha256": prepared.sha256, "original_sha256": prepared.original_sha256}
        elif args.action == "up":
            settings = SoftEtherSettings(
                users=users_from_env(args.user), hub=args.hub, port=args.port,
                admin_port=args.admin_port, nat_host=args.nat_host, nat_mask=args.nat_mask,
                dhcp_start=args.dhcp_start, dhcp_end=args.dhcp_end)
            instance = SoftEtherInstance(args.state, args.netns)
            result = instance.up(settings, Path(args.cert), Path(args.key),
                                 chain_pem=Path(args.chain) if args.chain else None)
        elif args.action == "down":
            instance = SoftEtherInstance(args.state)
            result = instance.down()
            if args.purge and instance.state_dir.exists():
                shutil.rmtree(instance.state_dir)
                result["changed"] = True
                result["purged"] = True
        else:
            result = SoftEtherInstance(args.state).status()
            print(json.dumps(result))
            return 0 if result["running"] else 1
    except AovpnError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        print(f"softether: error: {exc}", file=sys.stderr)
        return exc.exit_code if exc.exit_code != 0 else 1
    print(json.dumps(result))
    return 0

