"""An Ansible YAML inventory, loaded and checked into typed objects.

The same inventory Ansible provisions from is what the suite tests against, so a
mistake in it is reported once, here, naming the file, the key and what was expected:

    >>> inv = load("inventories/lab")                       # doctest: +SKIP
    >>> inv.lab.prefix, [h.name for h in inv.group("ikev2_gateways")]  # doctest: +SKIP
    ('aovpn', ['gw1'])

Supported layout: a folder holding hosts.yml (or any *.yml/*.yaml inventory file) plus
optional group_vars/<group>.yml and host_vars/<host>.yml, or a single YAML file.
Variables merge the way Ansible merges them for these files: all, then other groups
(by name), then the host.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import InventoryError

PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
HOST_RE = re.compile(r"^[a-z][a-z0-9_]{0,9}$")
IFNAMSIZ = 15


@dataclass(frozen=True)
class Host:
    name: str
    address: str | None
    groups: frozenset[str]
    vars: Mapping[str, Any]
    origin: Mapping[str, str]  # top-level variable -> file it came from

    def var(self, key: str, default: Any = None) -> Any:
        return self.vars.get(key, default)

    def where(self, key: str) -> str:
        return self.origin.get(key, "?")


@dataclass(frozen=True)
class LinkEnd:
    host: str
    interface: str
    address: ipaddress.IPv4Interface


@dataclass(frozen=True)
class Link:
    name: str
    mtu: int
    ends: tuple[LinkEnd, LinkEnd]


@dataclass(frozen=True)
class LabSpec:
    """The part of an inventory that describes an embedded lab this machine builds."""
    prefix: str
    state_root: Path
    management_network: ipaddress.IPv4Network
    management_gateway: ipaddress.IPv4Address
    ssh_port: int
    links: tuple[Link, ...]
    hosts: tuple[str, ...]

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.prefix

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh" / "config"

    def host_dir(self, host: str) -> Path:
        return self.state_dir / "hosts" / host


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple[str, ...]]
    lab: LabSpec | None = field(default=None)

    def group(self, name: str) -> list[Host]:
        return [self.hosts[h] for h in self.groups.get(name, ())]

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise InventoryError(f"{self.path}: no host named '{name}' (hosts: {', '.join(sorted(self.hosts))})",
                                 hint="name a host of the inventory") from None

    def one(self, group: str) -> Host:
        members = self.group(group)
        if not members:
            raise InventoryError(f"{self.path}: group '{group}' has no hosts",
                                 hint=f"add a host under children: {group}: hosts:")
        return members[0]


def load(path: str | Path, prefix: str | None = None) -> Inventory:
    """Load and validate an inventory folder or file. `prefix` overrides lab_prefix."""
    path = Path(path)
    if not path.exists():
        raise InventoryError(f"inventory {path} does not exist", hint="pass --inventory with a folder or YAML file")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
        if not files:
            raise InventoryError(f"inventory folder {path} holds no *.yml inventory file",
                                 hint="add hosts.yml (see inventories/lab/hosts.yml)")
        base = path
    else:
        files, base = [path], path.parent

    host_groups: dict[str, set[str]] = {}
    host_inline: dict[str, tuple[dict, Path]] = {}
    group_inline: dict[str, tuple[dict, Path]] = {}
    groups: dict[str, list[str]] = {}
    for f in files:
        data = _read_yaml(f)
        if not isinstance(data, dict) or "all" not in data:
            raise InventoryError(f"{f}: expected a YAML inventory with a top-level 'all:' key",
                                 hint="see inventories/lab/hosts.yml for the layout")
        _walk_group(f, "all", data["all"], [], host_groups, host_inline, group_inline, groups)

    group_vars = {g: _read_vars(base / "group_vars", g) for g in set(groups) | {"all"}}
    for g, (inline, f) in group_inline.items():
        merged, origin = group_vars.get(g, ({}, {}))
        group_vars[g] = ({**inline, **merged}, {**{k: str(f) for k in inline}, **origin})

    hosts: dict[str, Host] = {}
    for name, member_of in host_groups.items():
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for g in ["all"] + sorted(member_of - {"all"}):
            v, o = group_vars.get(g, ({}, {}))
            values.update(v)
            origin.update(o)
        inline, f = host_inline.get(name, ({}, None))
        values.update(inline)
        origin.update({k: str(f) for k in inline})
        hv, ho = _read_vars(base / "host_vars", name)
        values.update(hv)
        origin.update(ho)
        if prefix is not None and "lab_prefix" in values:
            values["lab_prefix"] = prefix
            origin["lab_prefix"] = "--prefix"
        hosts[name] = Host(name=name, address=values.get("ansible_host"), groups=frozenset(member_of),
                           vars=values, origin=origin)

    inv = Inventory(path=path, hosts=hosts, groups={g: tuple(m) for g, m in groups.items()})
    lab = _lab_spec(inv) if "lab" in groups else None
    return Inventory(path=path, hosts=hosts, groups=inv.groups, lab=lab)


# -- reading ------------------------------------------------------------------

def _read_yaml(f: Path) -> Any:
    try:
        return yaml.safe_load(f.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise InventoryError(f"{f}{where}: not valid YAML ({getattr(exc, 'problem', exc)})",
                             hint="fix the YAML syntax") from None
    except OSError as exc:
        raise InventoryError(f"{f}: cannot read ({exc.strerror})") from None


def _read_vars(folder: Path, name: str) -> tuple[dict, dict]:
    for cand in (folder / f"{name}.yml", folder / f"{name}.yaml"):
        if cand.is_file():
            data = _read_yaml(cand) or {}
            if not isinstance(data, dict):
                raise InventoryError(f"{cand}: expected a mapping of variables, got {type(data).__name__}")
            return data, {k: str(cand) for k in data}
    return {}, {}


def _walk_group(f: Path, name: str, node: Any, parents: list[str], host_groups, host_inline, group_inline,
                groups) -> None:
    if node is None:
        node = {}
    if not isinstance(node, dict):
        raise InventoryError(f"{f}: group '{name}': expected a mapping with hosts/children/vars, got "
                             f"{type(node).__name__}")
    unknown = set(node) - {"hosts", "children", "vars"}
    if unknown:
        raise InventoryError(f"{f}: group '{name}': unknown key(s) {', '.join(sorted(unknown))}",
                             hint="a group holds only hosts:, children: and vars:")
    chain = parents + [name]
    groups.setdefault(name, [])
    if node.get("vars"):
        group_inline[name] = (dict(node["vars"]), f)
    for host, hvars in (node.get("hosts") or {}).items():
        if hvars is not None and not isinstance(hvars, dict):
            raise InventoryError(f"{f}: host '{host}': expected a mapping of variables, got {type(hvars).__name__}")
        for g in chain:
            if host not in groups.setdefault(g, []):
                groups[g].append(host)
        host_groups.setdefault(host, set()).update(chain)
        if hvars:
            prev = host_inline.get(host, ({}, f))[0]
            host_inline[host] = ({**prev, **hvars}, f)
    for child, cnode in (node.get("children") or {}).items():
        _walk_group(f, child, cnode, chain, host_groups, host_inline, group_inline, groups)


# -- checking -----------------------------------------------------------------

def _lab_spec(inv: Inventory) -> LabSpec:
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
