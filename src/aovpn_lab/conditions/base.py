"""The edge device that puts a network condition on the client's path.

One class per platform behind one noun, chosen by the inventory's `condition_driver`:

    >>> with edge_device(inventory, "edge") as edge:      # doctest: +SKIP
    ...     edge.apply(Condition.parse("drop-ip-fragments"))
    ...     edge.counters()["fragments_dropped"]

A driver keeps one management session open, so switching conditions between test
cells costs a few commands, not a login.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import AovpnError, InventoryError
from ..inventory import Host, Inventory
from .model import Condition

if TYPE_CHECKING:
    from .scope import ClientScope


class ConditionDriver(abc.ABC):
    """Base class: open a session, apply conditions, read drop counters, close."""

    #: The conditions this platform can apply.
    supports: ClassVar[frozenset[str]] = frozenset()
    #: False for platforms that cannot run on this machine; their tests only check the commands.
    exercised_in_lab: ClassVar[bool] = True
    #: True for platforms that can apply a condition to one client's traffic alone (ClientScope).
    scopes_clients: ClassVar[bool] = False

    def __init__(self, inventory: Inventory, host: Host, scope: "ClientScope | None" = None):
        self.inventory, self.host = inventory, host
        self.scope = scope   # None: conditions apply to everything through the device
        self.current: Condition | None = None
        self.conn: Any = None  # the netmiko session, while open

    def __enter__(self) -> "ConditionDriver":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @abc.abstractmethod
    def open(self) -> None: ...

    def close(self) -> None:
        """End the netmiko session, if one is open (every driver talks to its device through one)."""
        if self.conn is not None:
            try:
                self.conn.disconnect()
            finally:
                self.conn = None

    @abc.abstractmethod
    def commands(self, condition: Condition) -> list[str]:
        """The device commands that put `condition` in place (replacing any other)."""

    @abc.abstractmethod
    def send(self, commands: list[str]) -> None:
        """Run commands on the device; raise AovpnError naming the first that failed."""

    def counters(self) -> dict[str, int]:
        """Packets dropped per reason since the condition was applied (empty if unknown)."""
        return {}

    def apply(self, condition: Condition) -> None:
        unsupported = [str(p) for p in condition.parts if p.kind not in self.supports]
        if unsupported:
            raise AovpnError(f"{self.host.name} ({type(self).__name__}) cannot apply condition "
                             f"'{', '.join(unsupported)}'",
                             hint=f"it supports {', '.join(sorted(self.supports))}")
        self.send(self.commands(condition))
        self.current = condition


def interfaces_of(host: Host, side: str | None = None) -> list[str]:
    """condition_interfaces of a host: {inside: [...], outside: [...]} (a single name is accepted too)."""
    raw = host.var("condition_interfaces") or {}
    if not isinstance(raw, dict):
        raise InventoryError(f"{host.where('condition_interfaces')}: condition_interfaces: expected "
                             "{inside: [names], outside: [names]}")
    out: list[str] = []
    for key, names in raw.items():
        if side is None or key == side:
            out += [names] if isinstance(names, str) else list(names or [])
    return out


def driver_class(name: str) -> type[ConditionDriver]:
    from .checkpoint_gaia import CheckpointGaiaDriver
    from .cisco_asa import CiscoAsaDriver
    from .fortinet import FortinetDriver
    from .juniper_junos import JuniperJunosDriver
    from .linux_nft import LinuxNftDriver
    from .paloalto_panos import PaloAltoPanosDriver
    drivers: dict[str, type[ConditionDriver]] = {
        "linux_nft": LinuxNftDriver, "cisco_asa": CiscoAsaDriver, "paloalto_panos": PaloAltoPanosDriver,
        "juniper_junos": JuniperJunosDriver, "checkpoint_gaia": CheckpointGaiaDriver, "fortinet": FortinetDriver}
    if name not in drivers:
        raise InventoryError(f"unknown condition_driver '{name}'", hint=f"use one of {', '.join(drivers)}")
    return drivers[name]


def edge_device(inventory: Inventory, host_name: str | None = None, *, client: Host | None = None) -> ConditionDriver:
    """The edge's driver; with `client`, its conditions apply to that client's traffic alone
    where the platform can do that (`scopes_clients`), else to everything (scope None)."""
    host = inventory.host(host_name) if host_name else inventory.one("edges")
    name = host.var("condition_driver")
    if not name:
        raise InventoryError(f"{host.where('condition_driver') if 'condition_driver' in host.origin else inventory.path}: "
                             f"host '{host.name}': missing condition_driver",
                             hint="set condition_driver: linux_nft (or cisco_asa, paloalto_panos, juniper_junos, "
                                  "checkpoint_gaia, fortinet) in its host_vars")
    cls = driver_class(name)
    if client is None or not cls.scopes_clients:
        return cls(inventory, host)
    from .scope import client_scope
    return cls(inventory, host, client_scope(inventory, host, client))
