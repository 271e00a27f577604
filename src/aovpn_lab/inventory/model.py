"""What an inventory says, as typed objects: hosts with their variables, and the lab."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import InventoryError
from .vault import Vault


@dataclass(frozen=True)
class Host:
    name: str
    address: str | None
    groups: frozenset[str]
    # Decrypted vault values live here: no repr, log line or assertion diff (pytest drills
    # into compared fields) ever shows them. A host is its name, address and groups.
    vars: Mapping[str, Any] = field(repr=False, compare=False)
    origin: Mapping[str, str] = field(repr=False, compare=False)  # top-level variable -> file it came from

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
    # The vault secrets it was read with: playbooks run on it are handed the same.
    vault: Vault = field(default=Vault(), compare=False)

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
