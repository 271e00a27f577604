"""The supervisor's command line, for daemons whose configuration a role wrote itself
(the strongswan role renders strongswan.conf with Ansible's template module)::

    python -m aovpn_lab.service up charon --state DIR [--netns NS]
    python -m aovpn_lab.service status|down charon --state DIR

`up` is idempotent: it keeps a running daemon whose config files (the entry's
templates, as written in DIR) are the ones it started with, and restarts it otherwise.
Each prints one JSON object (``{"failed": true, "msg": ...}`` and exit 1 on errors).
"""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import AovpnError
from .daemon import Daemon, config_digest


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aovpn_lab.service", description="Supervise a lab daemon by its PID.")
    sub = p.add_subparsers(dest="action", required=True)
    for action, text in (("up", "start it, or keep it when its configuration is unchanged"),
                         ("down", "stop it by its recorded PID"), ("status", "is it running")):
        sp = sub.add_parser(action, help=text)
        sp.add_argument("daemon", help="an entry of profiles/daemons.yml")
        sp.add_argument("--state", required=True, help="its state folder")
        if action == "up":
            sp.add_argument("--netns", help="network namespace (default: the one this runs in)")
            sp.add_argument("--timeout", type=float, default=10.0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        daemon = Daemon(args.daemon, args.state, getattr(args, "netns", None))
        if args.action == "up":
            result = daemon.ensure(config_digest(daemon), timeout=args.timeout)
            result.update(pids=daemon.pids(), state_dir=str(daemon.state_dir))
        elif args.action == "down":
            result = daemon.stop()
            result.update(changed=bool(result["stopped"] or result["killed"]), state_dir=str(daemon.state_dir))
        else:
            result = daemon.status()
            print(json.dumps(result))
            return 0 if result["running"] else 1
    except AovpnError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
