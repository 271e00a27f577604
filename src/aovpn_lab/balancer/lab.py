"""The lab balancer and the gateways behind it, as the load-balancing cells drive them.

    lab = LabBalancer.from_inventory(inv)          # doctest: +SKIP
    lab.switch("per-flow")                         # the role's own switch, in lb's namespace
    lab.gateway_sas()                              # {gw1: [...], gw2: [...]} from their charons

Between cells it clears what a cell leaves on the gateways (the crowd's IKE SAs, half-open
ones included): otherwise one cell's half-open SAs trip the gateways' DoS protection in
the next one, and the next cell would measure that instead of the balancer.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import tool
from ..errors import InventoryError
from ..ike.session import ViciSession, _decode
from ..inventory import Inventory
from ..service import Daemon
from ..service.daemon import config_digest
from .config import BalancerConfig
from .switch import apply as apply_switch


@dataclass
class LabBalancer:
    inventory: Inventory
    config: BalancerConfig
    host: str
    netns: str
    state: Path
    gateway_dirs: dict[str, Path]
    gateway_netns: dict[str, str]

    @classmethod
    def from_inventory(cls, inv: Inventory) -> "LabBalancer":
        if inv.lab is None:
            raise InventoryError(f"{inv.path}: not an embedded lab: the lab balancer's modes cannot be switched here",
                                 hint="run the load-balancing cells against the embedded lab (inventories/lab)")
        lb = inv.one("load_balancers")
        config = BalancerConfig.from_vars(lb.var("load_balancer"), where=lb.where("load_balancer"))
        return cls(inventory=inv, config=config, host=lb.name, netns=inv.lab.namespace(lb.name),
                   state=inv.lab.host_dir(lb.name) / "balancer",
                   gateway_dirs={b.name: inv.lab.host_dir(b.name) / "strongswan" for b in config.backends},
                   gateway_netns={b.name: inv.lab.namespace(b.name) for b in config.backends})

    # -- the balancer ------------------------------------------------------------------
    def switch(self, mode: str | None = None, live: list[str] | None = None, *, flush: bool = False) -> dict[str, Any]:
        if mode is not None:
            self.config.check_mode(mode)
        return apply_switch(self.state, mode, live, netns=self.netns, host=self.host, flush=flush)

    def current(self) -> dict[str, Any]:
        return json.loads((self.state / "current.json").read_text())

    def counters(self) -> dict[str, int]:
        out = tool.run(["nft", "-j", "list", "counters", "table", "ip", "aovpn_lb"], netns=self.netns,
                       step="read the balancer's counters", host=self.host).check().stdout
        return {c["counter"]["name"]: int(c["counter"].get("packets", 0))
                for c in json.loads(out).get("nftables", []) if "counter" in c}

    def backend_of_pool(self, address: str | None) -> str | None:
        """Which gateway handed out this virtual address (each has its own pool)."""
        if not address:
            return None
        for b in self.config.backends:
            pool = (self.inventory.host(b.name).var("ikev2_gateway") or {}).get("pool")
            if pool and ipaddress.ip_address(address) in ipaddress.ip_network(pool):
                return b.name
        return None

    # -- the gateways --------------------------------------------------------------------
    def vici(self, gateway: str) -> Path:
        return self.gateway_dirs[gateway] / "charon.vici"

    def gateway_sas(self) -> dict[str, list[dict[str, Any]]]:
        """Each gateway's IKE SAs of the crowd (or the balancer's own addresses) from its own
        charon: state, remote host/port/id, SPIs. Other clients' SAs (cells of other workers
        on gw1) are not the balancer's doing and are left out."""
        out: dict[str, list[dict[str, Any]]] = {}
        ours = self._ours()
        for name in self.gateway_dirs:
            sas: list[dict[str, Any]] = []
            if self.charon(name).running:
                with ViciSession(self.vici(name), timeout=30) as s:
                    for entry in s.s.list_sas():
                        for _conn, raw in entry.items():
                            sa = _decode(raw)
                            if not ours(sa.get("remote-host")):
                                continue
                            sas.append({"state": sa.get("state"), "remote_host": sa.get("remote-host"),
                                        "remote_port": sa.get("remote-port"), "remote_id": sa.get("remote-id"),
                                        "uniqueid": sa.get("uniqueid"), "spi_i": sa.get("initiator-spi"),
                                        "remote_vip": (sa.get("remote-vips") or [None])[0]})
            out[name] = sas
        return out

    def clear_gateways(self) -> int:
        """Terminate every IKE SA the gateways hold for the crowd (or the balancer's own
        addresses, in the proxy modes); returns how many."""
        ours = self._ours()
        n = 0
        for name in self.gateway_dirs:
            if not self.charon(name).running:
                continue
            with ViciSession(self.vici(name), timeout=30) as s:
                for entry in list(s.s.list_sas()):
                    for _conn, raw in entry.items():
                        sa = _decode(raw)
                        if ours(sa.get("remote-host")):
                            for _ in s.s.terminate({"ike-id": sa.get("uniqueid"), "force": "yes", "timeout": "-1",
                                                    "loglevel": "-1"}):
                                pass
                            n += 1
        return n

    def _ours(self):
        """Whether a gateway's SA with this remote address is the crowd's or the balancer's."""
        crowd = self.config.crowd.range if self.config.crowd else None
        balancer = set(self._balancer_addresses())
        return lambda host: bool(host) and (host in balancer or bool(crowd and ipaddress.ip_address(host) in crowd))

    def _balancer_addresses(self) -> list[str]:
        assert self.inventory.lab is not None
        return [str(e.address.ip) for link in self.inventory.lab.links for e in link.ends if e.host == self.host]

    def charon(self, gateway: str) -> Daemon:
        return Daemon("charon", self.gateway_dirs[gateway], self.gateway_netns[gateway])

    def fail_gateway(self, gateway: str, how: str) -> None:
        """stopped: charon dies as in a crash (SIGKILL: no DELETE reaches its clients, which
        must find out by dead peer detection; the kernel then answers UDP 500 with port
        unreachable); hung: charon is frozen (SIGSTOP): its sockets stay bound, nothing answers."""
        d = self.charon(gateway)
        pids = d.pids()
        assert pids, f"{gateway}: charon is not running"
        for pid in pids:
            os.kill(pid, signal.SIGSTOP if how == "hung" else signal.SIGKILL)
        if how != "hung":
            self.wait(lambda: not d.running, 5)

    def restore_gateway(self, gateway: str) -> None:
        """Back as provisioned: a frozen charon continues; a stopped one starts again and
        gets its connections, pools and credentials (as the strongswan role loads them)."""
        d = self.charon(gateway)
        if d.running:
            for pid in d.pids():
                os.kill(pid, signal.SIGCONT)
            return
        d.ensure(config_digest(d))  # recorded with its digest, as lab up keeps it: not restarted by the next lab up
        sdir = self.gateway_dirs[gateway]
        tool.run(["swanctl", "--load-all", "--clear", "--noprompt", "--uri", f"unix://{self.vici(gateway)}"],
                 netns=self.gateway_netns[gateway], step=f"load {gateway}'s connections", host=gateway,
                 env={**os.environ, "SWANCTL_DIR": str(sdir / "swanctl"),
                      "STRONGSWAN_CONF": str(sdir / "strongswan.conf")}).check()

    def wait(self, predicate, timeout: float, step: float = 0.05) -> float | None:
        """Seconds until predicate() held, or None when it did not within timeout. Most
        predicates read a small file or the process table: a fine step costs less than
        noticing late (and the seconds measured are the closer to the event). Those that
        ask a charon over vici give a coarser step."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if predicate():
                return time.monotonic() - began
            time.sleep(step)
        return None
