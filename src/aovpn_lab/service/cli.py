"""The command line every lab service module shares with its Ansible role::

    python -m aovpn_lab.<service> up --netns NS --state DIR ...   # start, or keep
    python -m aovpn_lab.<service> down --state DIR [--purge]      # stop by recorded PID
    python -m aovpn_lab.<service> status --state DIR              # exit 0 when running

Each prints one JSON object; an error is ``{"failed": true, "msg": ...}`` on stdout, one
line on stderr and a non-zero exit status (the roles report ``msg``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import AovpnError


class Instance(Protocol):
    state_dir: Any

    def down(self) -> dict: ...

    def status(self) -> dict: ...


def instance_parser(prog: str, description: str, *, up_help: str = "start (or keep) an instance"
                    ) -> tuple[argparse.ArgumentParser, Any, argparse.ArgumentParser]:
    """(parser, its subparsers, the `up` subparser) with `up`, `down` and `status`."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    sub = p.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help=up_help)
    up.add_argument("--netns", required=True)
    up.add_argument("--state", required=True, help="instance folder (created, mode 0700)")
    down = sub.add_parser("down", help="stop the instance's processes (by recorded PID)")
    down.add_argument("--state", required=True)
    down.add_argument("--purge", action="store_true", help="also delete the instance folder")
    status = sub.add_parser("status", help="is the instance running and listening")
    status.add_argument("--state", required=True)
    return p, sub, up


def down(inst: Instance, *, purge: bool = False) -> dict:
    """Stop the instance's processes (by recorded PID); with `purge`, delete its folder too.
    The one way down, for this command line and the roles' actions alike."""
    result = inst.down()
    if purge and inst.state_dir.exists():
        shutil.rmtree(inst.state_dir)
        result.update(changed=True, purged=True)
    return result


def run(args: argparse.Namespace, *, name: str, up: Callable[[argparse.Namespace], dict],
        instance: Callable[[str], Instance], other: dict[str, Callable[[argparse.Namespace], dict]] | None = None,
        exit_code: Callable[[AovpnError], int] = lambda exc: 1) -> int:
    """Run the parsed action and print its JSON; the exit status the role judges."""
    try:
        if other and args.action in other:
            result = other[args.action](args)
        elif args.action == "up":
            result = up(args)
        elif args.action == "down":
            result = down(instance(args.state), purge=args.purge)
        else:
            result = instance(args.state).status()
            print(json.dumps(result))
            return 0 if result["running"] else 1
    except AovpnError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    print(json.dumps(result))
    return 0
