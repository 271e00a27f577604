"""The lab balancer as the inventory describes it (host var `load_balancer`), checked.

What every balancer shares (VIP, backends, ports, timeouts, monitors) is read once by
:mod:`aovpn_lab.balancer.spec`, as for the vendors' artefacts; this adds what only the lab's
own balancer has: its VIP must be inside the lab's ranges, the modes it can switch between,
and the crowd of clients.

    >>> c = BalancerConfig.from_vars({"vip": "203.0.113.100", "modes": ["affinity"],
    ...     "backends": [{"name": "gw1", "address": "198.18.1.10"}],
    ...     "persistence_timeout": 28800, "udp_idle_timeout": 300}, where="lb")
    >>> c.vip, [b.name for b in c.backends], c.mode
    ('203.0.113.100', ['gw1'], 'affinity')
    >>> BalancerConfig.from_vars({"vip": "10.0.0.1", "backends": [{"name": "gw1", "address": "198.18.1.10"}],
    ...     "persistence_timeout": 28800, "udp_idle_timeout": 300}, where="lb")
    Traceback (most recent call last):
    ...
    aovpn_lab.errors.InventoryError: lb: load_balancer.vip 10.0.0.1 is outside the lab's ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 198.18.0.0/15) (fix: the lab sends test traffic only to documentation ranges and 198.18.0.0/15: pick the VIP there)
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import InventoryError
from .spec import Backend, BalancerSpec, from_mapping

#: Where lab traffic may go (documentation ranges and the benchmarking range).
LAB_RANGES = tuple(ipaddress.ip_network(n) for n in
                   ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15"))

#: Modes the lab balancer implements: nftables destination NAT, or nginx as a UDP proxy.
DNAT_MODES = ("affinity", "per-flow")
PROXY_MODES = ("snat-proxy", "snat-proxy-consistent")
KNOWN_MODES = DNAT_MODES + PROXY_MODES


@dataclass(frozen=True)
class Crowd:
    count: int
    host: str
    range: ipaddress.IPv4Network
    max: int = 0  # the most clients with a certificate of their own (0: count)

    @staticmethod
    def identity(index: int) -> str:
        """The machine identity of client `index` (1-based), as the pki role issues them."""
        return f"crowd-{index}.example.net"

    def addresses(self, count: int | None = None) -> list[str]:
        """The first `count` client addresses of the range (its network address skipped)."""
        n = self.count if count is None else count
        hosts = self.range.hosts()
        return [str(next(hosts)) for _ in range(n)]

    def check_count(self, count: int, *, key: str, where: str) -> None:
        """Fewer addresses in the range than asked for: one line naming the key and the fix."""
        room = self.range.num_addresses - 2
        if count > room:
            raise InventoryError(f"{where}: {key} asks for {count} client addresses but load_balancer.clients.range "
                                 f"{self.range} holds only {room}",
                                 hint=f"ask for at most {room}, or widen load_balancer.clients.range")


@dataclass(frozen=True)
class BalancerConfig:
    vip: str
    backends: tuple[Backend, ...]
    modes: tuple[str, ...]
    mode: str
    ike_ports: tuple[int, ...] = (500, 4500)
    persistence_timeout: int = 28800
    udp_idle_timeout: int = 300
    health_monitor: Mapping[str, Any] = field(default_factory=dict)
    sstp: Mapping[str, Any] = field(default_factory=dict)
    crowd: Crowd | None = None
    where: str = "load_balancer"

    spec: BalancerSpec | None = None

    @classmethod
    def from_vars(cls, lb: Mapping[str, Any] | None, *, where: str) -> "BalancerConfig":
        if not isinstance(lb, Mapping):
            raise InventoryError(f"{where}: load_balancer is missing or not a mapping",
                                 hint="describe the balancer as in inventories/lab/host_vars/lb.yml")
        spec = from_mapping(lb, where=where)
        vip = spec.vip
        if not any(ipaddress.ip_address(vip) in net for net in LAB_RANGES):
            raise InventoryError(f"{where}: load_balancer.vip {vip} is outside the lab's ranges "
                                 f"({', '.join(map(str, LAB_RANGES))})",
                                 hint="the lab sends test traffic only to documentation ranges and 198.18.0.0/15: "
                                      "pick the VIP there")
        modes = tuple(str(m) for m in (lb.get("modes") or KNOWN_MODES))
        unknown = [m for m in modes if m not in KNOWN_MODES]
        if unknown:
            raise InventoryError(f"{where}: load_balancer.modes names {', '.join(unknown)}, which the lab balancer "
                                 f"does not implement", hint=f"use some of: {', '.join(KNOWN_MODES)}")
        mode = str(lb.get("mode") or modes[0])
        config = cls(vip=vip, backends=spec.backends, modes=modes, mode=mode, ike_ports=spec.ike_ports,
                     persistence_timeout=spec.persistence_timeout, udp_idle_timeout=spec.udp_idle_timeout,
                     # the raw sections: the lab reads keys only it has (sstp.monitor.healthy, ...)
                     health_monitor=dict(lb.get("health_monitor") or {}), sstp=dict(lb.get("sstp") or {}),
                     crowd=_crowd(lb.get("clients"), where), where=where, spec=spec)
        config.check_mode(mode)
        return config

    def check_mode(self, mode: str) -> str:
        """`mode` when the inventory defines it; otherwise one line naming the key and the fix."""
        if mode not in self.modes:
            raise InventoryError(f"{self.where}: balancer mode '{mode}' is not in load_balancer.modes "
                                 f"({', '.join(self.modes)})",
                                 hint=f"add '{mode}' to load_balancer.modes, or pick one of those")
        return mode

    def backend(self, name: str) -> Backend:
        for b in self.backends:
            if b.name == name:
                return b
        raise InventoryError(f"{self.where}: no backend named '{name}' in load_balancer.backends "
                             f"({', '.join(b.name for b in self.backends)})", hint="name one of them")


def _crowd(clients: Any, where: str) -> Crowd | None:
    if clients is None:
        return None
    if not isinstance(clients, Mapping):
        raise InventoryError(f"{where}: load_balancer.clients must be a mapping",
                             hint="write clients: {count: 50, host: probe, range: 198.18.16.0/20}")
    try:
        net = ipaddress.IPv4Network(str(clients.get("range")))
    except ValueError:
        raise InventoryError(f"{where}: load_balancer.clients.range is {clients.get('range')!r}, not a network",
                             hint="write e.g. range: 198.18.16.0/20") from None
    if not any(net.subnet_of(r) for r in LAB_RANGES):
        raise InventoryError(f"{where}: load_balancer.clients.range {net} is outside the lab's ranges",
                             hint="pick a range inside 198.18.0.0/15 or a documentation range")
    count = clients.get("count", 50)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InventoryError(f"{where}: load_balancer.clients.count is {count!r}, not a positive number",
                             hint="write e.g. count: 50")
    most = clients.get("max", count)
    if isinstance(most, bool) or not isinstance(most, int) or most < count:
        raise InventoryError(f"{where}: load_balancer.clients.max is {most!r}; it must be a number of at least "
                             f"clients.count ({count})", hint=f"write e.g. max: {max(count, 200)}")
    crowd = Crowd(count=count, host=str(clients.get("host") or "probe"), range=net, max=most)
    crowd.check_count(most, key="load_balancer.clients.max", where=where)
    return crowd
