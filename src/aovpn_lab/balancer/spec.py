"""The balancer an inventory host describes (its `load_balancer` variable), typed and checked
once, so every vendor renders from the same values.

Rendering a real deployment's configuration, the VIP may be any address (it is the
deployment's, not the lab's); what cannot be rendered is refused with the key and the fix:

    >>> spec = from_mapping({"vip": "203.0.113.10", "backends": [{"name": "rras1", "address": "198.51.100.11"}],
    ...                      "persistence_timeout": 28800, "udp_idle_timeout": 300})
    >>> spec.vip, [b.address for b in spec.backends], spec.ike_ports, spec.sstp.monitor.path
    ('203.0.113.10', ['198.51.100.11'], (500, 4500), '/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/')
    >>> from_mapping({"vip": "203.0.113.10", "backends": [{"name": "rras1"}]}, where="lb.yml")
    Traceback (most recent call last):
    ...
    aovpn_lab.errors.InventoryError: lb.yml: load_balancer.backends[0].address: missing (fix: give each backend the address the balancer sends to, e.g. {name: rras1, address: 198.51.100.11})
"""
from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..errors import InventoryError

VAR = "load_balancer"
# [MS-SSTP] 2.2.1: the resource every SSTP client opens; RRAS answers a HEAD on it with 401.
SSTP_PATH = "/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/"
SSTP_PERSISTENCE = ("source", "tls-session")
MONITOR_KINDS = ("ike", "udp-port")


@dataclass(frozen=True)
class Backend:
    name: str
    address: str


@dataclass(frozen=True)
class HealthMonitor:
    kind: str
    interval: float
    timeout: float
    fall: int
    rise: int


@dataclass(frozen=True)
class SstpMonitor:
    method: str
    path: str
    expect: int
    host: str | None  # the Host header; None: the VIP


@dataclass(frozen=True)
class Sstp:
    port: int
    persistence: str
    monitor: SstpMonitor


@dataclass(frozen=True)
class BalancerSpec:
    """What every vendor's artefact is rendered from. `name` prefixes the objects created."""
    vip: str
    backends: tuple[Backend, ...]
    ike_ports: tuple[int, ...]
    persistence_timeout: int
    udp_idle_timeout: int
    health_monitor: HealthMonitor
    sstp: Sstp
    name: str = "aovpn"

    def as_vars(self) -> dict[str, Any]:
        """The spec as the `load_balancer` variable again, defaults filled in (for templating)."""
        out = asdict(self)
        out["backends"] = [dict(b) for b in out["backends"]]
        out["ike_ports"] = list(self.ike_ports)
        out["sstp"]["monitor"]["host"] = self.sstp.monitor.host or self.vip
        return out


def from_host(host: Any) -> BalancerSpec:
    """The spec of an inventory host (aovpn_lab.inventory.Host) from its `load_balancer`."""
    data = host.var(VAR)
    where = host.where(VAR) if data is not None else f"host {host.name}"
    if data is None:
        raise InventoryError(f"{where}: {VAR}: not set",
                             hint=f"define {VAR} (vip, backends, ...) for {host.name}, as in inventories/lab/host_vars/lb.yml")
    return from_mapping(data, where=where)


def from_mapping(data: Any, where: str = "inventory") -> BalancerSpec:
    if not isinstance(data, Mapping):
        raise InventoryError(f"{where}: {VAR}: expected a mapping, got {type(data).__name__}",
                             hint="write load_balancer: {vip: ..., backends: [...]}")
    key = _Keys(where)
    vip = key.address(data, "vip", "the address clients dial, e.g. vip: 203.0.113.10")
    backends = _backends(data.get("backends"), key)
    ports = data.get("ike_ports", [500, 4500])
    if not isinstance(ports, list) or not ports:
        key.fail("ike_ports", f"expected a list of UDP ports, got {ports!r}", "ike_ports: [500, 4500]")
    ike_ports = tuple(key.port(p, f"ike_ports[{i}]") for i, p in enumerate(ports))
    hm = data.get("health_monitor") or {}
    if not isinstance(hm, Mapping):
        key.fail("health_monitor", f"expected a mapping, got {hm!r}", "health_monitor: {kind: ike, interval: 5, ...}")
    kind = hm.get("kind", "ike")
    if kind not in MONITOR_KINDS:
        key.fail("health_monitor.kind", f"{kind!r} is not one of {', '.join(MONITOR_KINDS)}", "kind: ike")
    monitor = HealthMonitor(kind=kind, interval=key.number(hm, "health_monitor.interval", 5),
                            timeout=key.number(hm, "health_monitor.timeout", 16),
                            fall=key.integer(hm, "health_monitor.fall", 3), rise=key.integer(hm, "health_monitor.rise", 2))
    return BalancerSpec(
        vip=vip, backends=backends, ike_ports=ike_ports,
        persistence_timeout=key.integer(data, "persistence_timeout", None),
        udp_idle_timeout=key.integer(data, "udp_idle_timeout", None),
        health_monitor=monitor, sstp=_sstp(data.get("sstp") or {}, key), name=key.name(data))


def _backends(raw: Any, key: "_Keys") -> tuple[Backend, ...]:
    fix = "list the gateways: backends: [{name: rras1, address: 198.51.100.11}, ...]"
    if raw is None:
        key.fail("backends", "missing", fix)
    if not isinstance(raw, list) or not raw:
        key.fail("backends", f"expected a non-empty list, got {raw!r}", fix)
    out = []
    for i, b in enumerate(raw):
        if not isinstance(b, Mapping):
            key.fail(f"backends[{i}]", f"expected a mapping, got {b!r}", fix)
        fix_one = "give each backend the address the balancer sends to, e.g. {name: rras1, address: 198.51.100.11}"
        address = key.address(b, "address", fix_one, prefix=f"backends[{i}].")
        name = b.get("name") or f"backend{i + 1}"
        if not isinstance(name, str):
            key.fail(f"backends[{i}].name", f"expected a name, got {name!r}", "name: rras1")
        out.append(Backend(name=name, address=address))
    if len({b.name for b in out}) != len(out):
        key.fail("backends", "two backends have the same name", "name each backend once")
    return tuple(out)


def _sstp(raw: Any, key: "_Keys") -> Sstp:
    if not isinstance(raw, Mapping):
        key.fail("sstp", f"expected a mapping, got {raw!r}", "sstp: {port: 443, persistence: source, monitor: {...}}")
    persistence = raw.get("persistence", "source")
    if persistence not in SSTP_PERSISTENCE:
        key.fail("sstp.persistence", f"{persistence!r} is not one of {', '.join(SSTP_PERSISTENCE)}", "persistence: source")
    mon = raw.get("monitor") or {}
    if not isinstance(mon, Mapping):
        key.fail("sstp.monitor", f"expected a mapping, got {mon!r}", "monitor: {method: HEAD, path: ..., expect: 401}")
    host = mon.get("host")
    if host is not None and not isinstance(host, str):
        key.fail("sstp.monitor.host", f"expected a host name, got {host!r}", "host: vpn.example.com")
    monitor = SstpMonitor(method=str(mon.get("method", "HEAD")), path=str(mon.get("path", SSTP_PATH)),
                          expect=key.integer(mon, "sstp.monitor.expect", 401), host=host)
    return Sstp(port=key.port(raw.get("port", 443), "sstp.port"), persistence=persistence, monitor=monitor)


class _Keys:
    """Reads one value of load_balancer and names `FILE: load_balancer.KEY` when it is wrong."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, problem: str, fix: str):
        raise InventoryError(f"{self.where}: {VAR}.{key}: {problem}", hint=fix)

    def address(self, data: Mapping, key: str, fix: str, prefix: str = "") -> str:
        value = data.get(key)
        if value is None or value == "":
            self.fail(prefix + key, "missing", fix)
        try:
            return str(ipaddress.ip_address(str(value)))
        except ValueError:
            self.fail(prefix + key, f"{value!r} is not an IP address", fix)

    def integer(self, data: Mapping, key: str, default: int | None) -> int:
        leaf = key.rsplit(".", 1)[-1]
        value = data.get(leaf, default)
        if value is None:
            self.fail(key, "missing", f"{leaf}: a whole number of seconds, e.g. {leaf}: 28800")
        # YAML booleans are ints to Python; "300" from a template is a string: both are refused
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.fail(key, f"expected a positive whole number, got {value!r}", f"write {leaf}: 300 (no quotes, no unit)")
        return value

    def number(self, data: Mapping, key: str, default: float) -> float:
        leaf = key.rsplit(".", 1)[-1]
        value = data.get(leaf, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.fail(key, f"expected a positive number of seconds, got {value!r}", f"write {leaf}: 5")
        return float(value)

    def port(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.fail(key, f"expected a port number 1..65535, got {value!r}", "e.g. 4500")
        return value

    def name(self, data: Mapping) -> str:
        name = data.get("name", "aovpn")
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            self.fail("name", f"expected letters, digits, - or _, got {name!r}", "name: aovpn")
        return name
