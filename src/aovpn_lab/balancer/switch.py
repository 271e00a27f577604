"""Switch the lab balancer's mode, or the set of gateways it sends to, in place.

Runs inside the balancer's namespace: the health monitor calls it when a gateway dies or
returns, and an engineer can call it over SSH::

    python -m aovpn_lab.balancer.switch --state DIR [MODE] [--live NAME ...]

The balancer role (at provisioning) and the conformance cells call `apply` itself, the
cells with the namespace to run its tools in: a Python started for each switch would
cost the cell more than the switch.

DIR holds balancer.json (the inventory's `load_balancer`, written by the role). The
nftables modes (affinity, per-flow) rewrite table ip aovpn_lb; the proxy modes
(snat-proxy, snat-proxy-consistent) remove its NAT rule and run nginx as a UDP proxy.
Connection tracking is what keeps a flow on its backend, so:

- a mode change flushes it (the old mode's mappings would otherwise outlive it);
- a gateway leaving the live set loses only its own flows (`conntrack -D --reply-src`):
  its clients pick a live gateway on their next packet ("reselect on service down"),
  while the other gateways' clients keep theirs; a gateway returning changes nothing for
  existing flows, only new ones spread over it again.

Prints one JSON object: {"mode", "live", "changed", "flushed"}; errors as {"failed": true,
"msg"} with exit status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from .. import tool
from ..errors import AovpnError
from ..service import Daemon, render
from ..service.daemon import config_digest
from .config import DNAT_MODES, PROXY_MODES, BalancerConfig

TEMPLATES = "playbooks/roles/balancer/templates"
READY_PORT = 8081  # nginx's loopback readiness listener
JHASH_SEED = "a0b5c1ab"  # any fixed value: without one, every reload picks a new hash
# conntrack -D exits 1 and says so when no entry matched: nothing to delete is not a failure.
_NONE_DELETED = re.compile(r"^conntrack v[\d.]+ \(conntrack-tools\): 0 flow entries have been deleted\.$", re.M)


def load(state: Path) -> BalancerConfig:
    path = state / "balancer.json"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise AovpnError(f"{path}: {exc.strerror}", hint="provision the balancer first (aovpn-lab lab up)") from None
    return BalancerConfig.from_vars(data.get("load_balancer"), where=str(data.get("inventory_hostname", path)))


def current(state: Path, config: BalancerConfig) -> dict[str, Any]:
    try:
        return json.loads((state / "current.json").read_text())
    except (OSError, ValueError):
        return {"mode": None, "live": [b.name for b in config.backends]}


def nginx(state: Path, netns: str | None = None) -> Daemon:
    return Daemon("nginx", state / "nginx", netns, values={"ready_port": READY_PORT})


def apply(state: Path, mode: str | None = None, live: list[str] | None = None, *,
          netns: str | None = None, host: str = "localhost", flush: bool = False) -> dict[str, Any]:
    """Switch to `mode` (None: keep) sending to `live` (None: keep); `flush` also forgets
    every flow (a clean start for a cell). `netns`: the balancer's namespace, when the
    caller is not in it (`host` names the balancer in errors)."""
    config = load(state)
    before = current(state, config)
    mode = config.check_mode(mode or before["mode"] or config.mode)
    names = list(before["live"] if live is None else live)
    backends = [config.backend(n) for n in names]
    values = dict(ansible_managed="written by aovpn-lab (balancer switch)", inventory_hostname="lb", mode=mode,
                  live=[b.__dict__ for b in backends], vip=config.vip, ike_ports=list(config.ike_ports),
                  dnat_modes=DNAT_MODES, jhash_seed=JHASH_SEED, udp_idle_timeout=config.udp_idle_timeout)
    ruleset = state / "balancer.nft"
    ruleset.write_text(render(f"{TEMPLATES}/balancer.nft.j2", **values))
    tool.run(["nft", "-f", str(ruleset)], netns=netns, host=host, step=f"load the balancer's {mode} rules").check()

    proxy = nginx(state, netns)
    if mode in PROXY_MODES and backends:
        proxy.state_dir.mkdir(parents=True, exist_ok=True)
        (proxy.state_dir / "nginx.conf").write_text(render(f"{TEMPLATES}/nginx.conf.j2", state=str(proxy.state_dir),
                                                           ready_port=READY_PORT, **values))
        proxy.ensure(config_digest(proxy))
    elif proxy.running:
        proxy.stop()

    flushed: list[str] = []
    if mode != before["mode"] or flush:
        tool.run(["conntrack", "-F"], netns=netns, host=host, step="flush connection tracking").check()
        flushed.append("all")
    else:
        for gone in sorted(set(before["live"]) - set(names)):
            address = config.backend(gone).address
            r = tool.run(["conntrack", "-D", "--reply-src", address], netns=netns, host=host, step=f"drop the flows of {gone}")
            if not (r.ok or (r.returncode == 1 and _NONE_DELETED.search(r.stderr))):
                r.check()
            flushed.append(gone)
    after = {"mode": mode, "live": names}
    tmp = state / "current.json.tmp"
    tmp.write_text(json.dumps(after))
    os.replace(tmp, state / "current.json")  # atomic: a reader never sees half a file
    return {**after, "changed": after != before, "flushed": flushed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aovpn_lab.balancer.switch",
                                description="Switch the lab balancer's mode or live gateways in place.")
    p.add_argument("mode", nargs="?", help="a mode of load_balancer.modes (default: keep the current one)")
    p.add_argument("--state", required=True, type=Path, help="the balancer's state folder (holds balancer.json)")
    p.add_argument("--live", nargs="*", metavar="NAME", help="the gateways to send to (default: keep)")
    p.add_argument("--flush", action="store_true", help="also forget every flow (a clean start for a cell)")
    args = p.parse_args(argv)
    try:
        result = apply(args.state, args.mode, args.live, flush=args.flush)
    except AovpnError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        print(f"balancer switch: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
