"""The checks that turn an inventory's lab variables into a LabSpec, or into one line
naming the file, the key and what was expected."""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from ..errors import InventoryError
from .model import Host, Inventory, LabSpec, Link, LinkEnd

PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
HOST_RE = re.compile(r"^[a-z][a-z0-9_]{0,9}$")
IFNAMSIZ = 15


def lab_spec(inv: Inventory) -> LabSpec:
    """The embedded lab the inventory's group 'lab' describes, every value checked."""
    lab_hosts = inv.group("lab")
    first = lab_hosts[0] if lab_hosts else None
    if first is None:
        raise InventoryError(f"{inv.path}: group 'lab' has no hosts", hint="list the lab hosts under children: lab:")
    prefix = _require(first, "lab_prefix", str)
    if not PREFIX_RE.match(prefix):
        raise InventoryError(f"{first.where('lab_prefix')}: lab_prefix: expected 1-8 lowercase letters/digits "
                             f"starting with a letter, got {prefix!r}")
    mgmt = _require(first, "lab_management", dict)
    net = _ip(first, "lab_management", "network", mgmt.get("network"), ipaddress.IPv4Network)
    gw = _ip(first, "lab_management", "gateway", mgmt.get("gateway"), ipaddress.IPv4Address)
    if gw not in net:
        raise InventoryError(f"{first.where('lab_management')}: lab_management.gateway: {gw} is not inside "
                             f"lab_management.network {net}")
    port = mgmt.get("ssh_port", 22)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise InventoryError(f"{first.where('lab_management')}: lab_management.ssh_port: expected a TCP port, "
                             f"got {port!r}")
    seen_addr: dict[ipaddress.IPv4Address, str] = {gw: "lab_management.gateway"}
    for h in lab_hosts:
        if not HOST_RE.match(h.name) or len(f"{prefix}-{h.name}") > IFNAMSIZ:
            raise InventoryError(f"{inv.path}: host '{h.name}': lab host names must be short lowercase "
                                 f"identifiers ('{prefix}-{h.name}' must fit {IFNAMSIZ} characters)")
        addr = _ip(h, "ansible_host", None, h.address, ipaddress.IPv4Address)
        if addr not in net:
            raise InventoryError(f"{h.where('ansible_host')}: host '{h.name}': ansible_host {addr} is not inside "
                                 f"lab_management.network {net}")
        if addr in seen_addr:
            raise InventoryError(f"{h.where('ansible_host')}: host '{h.name}': ansible_host {addr} is already "
                                 f"used by {seen_addr[addr]}")
        seen_addr[addr] = h.name
        for i, r in enumerate(h.var("lab_routes") or []):
            if not isinstance(r, dict) or {"to", "via"} - set(r):
                raise InventoryError(f"{h.where('lab_routes')}: lab_routes[{i}]: expected {{to: CIDR, via: address}}")
            _ip(h, "lab_routes", f"[{i}].to", r["to"], ipaddress.IPv4Network)
            _ip(h, "lab_routes", f"[{i}].via", r["via"], ipaddress.IPv4Address)
        for i, a in enumerate(h.var("lab_loopback_addresses") or []):
            _ip(h, "lab_loopback_addresses", f"[{i}]", a, ipaddress.IPv4Interface)

    links = []
    names = {h.name for h in lab_hosts}
    for i, raw in enumerate(first.var("lab_links") or []):
        key = f"lab_links[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("ends"), list) or len(raw["ends"]) != 2:
            raise InventoryError(f"{first.where('lab_links')}: {key}: expected name, mtu and exactly two ends")
        ends = []
        for j, e in enumerate(raw["ends"]):
            ekey = f"{key}.ends[{j}]"
            if not isinstance(e, dict) or {"host", "interface", "address"} - set(e):
                raise InventoryError(f"{first.where('lab_links')}: {ekey}: expected {{host, interface, address}}")
            if e["host"] not in names:
                raise InventoryError(f"{first.where('lab_links')}: {ekey}.host: '{e['host']}' is not a lab host "
                                     f"(lab hosts: {', '.join(sorted(names))})")
            if not isinstance(e["interface"], str) or not 0 < len(e["interface"]) <= IFNAMSIZ:
                raise InventoryError(f"{first.where('lab_links')}: {ekey}.interface: expected a name of at most "
                                     f"{IFNAMSIZ} characters, got {e['interface']!r}")
            ends.append(LinkEnd(e["host"], e["interface"],
                                _ip(first, "lab_links", f"[{i}].ends[{j}].address", e["address"],
                                    ipaddress.IPv4Interface)))
        mtu = raw.get("mtu", 1500)
        if not isinstance(mtu, int) or not 576 <= mtu <= 9000:
            raise InventoryError(f"{first.where('lab_links')}: {key}.mtu: expected 576..9000, got {mtu!r}")
        links.append(Link(str(raw.get("name", f"link{i}")), mtu, (ends[0], ends[1])))

    root = first.var("lab_state_root", "/var/lib/aovpn-lab")
    return LabSpec(prefix=prefix, state_root=Path(root), management_network=net, management_gateway=gw,
                   ssh_port=port, links=tuple(links), hosts=tuple(h.name for h in lab_hosts))


def _require(host: Host, key: str, typ: type) -> Any:
    if key not in host.vars:
        raise InventoryError(f"{host.where(key) if key in host.origin else 'inventory'}: host '{host.name}': "
                             f"missing {key}", hint=f"set {key} in group_vars/all.yml")
    value = host.vars[key]
    if not isinstance(value, typ):
        raise InventoryError(f"{host.where(key)}: {key}: expected a {typ.__name__}, got {type(value).__name__}")
    return value


def _ip(host: Host, key: str, sub: str | None, value: Any, kind: type) -> Any:
    label = key + (("." + sub if not sub.startswith("[") else sub) if sub else "")
    expected = {ipaddress.IPv4Address: "an IPv4 address", ipaddress.IPv4Network: "an IPv4 network (CIDR)",
                ipaddress.IPv4Interface: "an IPv4 address with prefix length (CIDR)"}[kind]
    try:
        if kind is ipaddress.IPv4Interface and "/" not in str(value):
            raise ValueError
        return kind(str(value)) if value is not None else kind(None)
    except (ValueError, TypeError, ipaddress.AddressValueError):
        raise InventoryError(f"{host.where(key)}: host '{host.name}': {label}: expected {expected}, got {value!r}",
                             hint="fix the value in the inventory") from None
