"""Which client a condition is for: the addresses by which a device tells one client's
traffic from the rest, so that cells on different clients run at once, each under its
own condition (`aovpn-lab run --workers N`).

    >>> s = ClientScope("client2", "198.18.2.2", "198.18.2.0/29", "lan2", "203.0.113.22", 102)
    >>> s.tag, s.sources, s.addresses, s.counter("udp_500_dropped")
    ('client2', ('198.18.2.0/29', '203.0.113.22'), ('198.18.2.2', '203.0.113.22'), 'client2_udp_500_dropped')

A lab client's scope comes from the link between it and the edge and from its
`client_scope` host vars (nat_address, route_table); a client elsewhere declares all of it
there (address, network, interface: the edge's interface that faces it).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..errors import InventoryError
from ..inventory import Host, Inventory


@dataclass(frozen=True)
class ClientScope:
    name: str                  # the client's inventory host name
    address: str               # the client's own address
    network: str               # the network it sits in, as the edge routes it
    interface: str             # the edge's interface that faces it
    nat_address: str | None    # what the edge's 'nat' condition translates it to
    route_table: int | None    # the edge's routing table for its path MTU

    @property
    def tag(self) -> str:
        """The client's name as nftables object names take it."""
        return re.sub(r"[^A-Za-z0-9_]", "_", self.name)

    @property
    def addresses(self) -> tuple[str, ...]:
        """The addresses its packets carry beyond the edge: its own, and its NAT address."""
        return (self.address,) + ((self.nat_address,) if self.nat_address else ())

    @property
    def sources(self) -> tuple[str, ...]:
        """Every address its packets carry beyond the edge (its own, or its NAT address)."""
        return (self.network,) + ((self.nat_address,) if self.nat_address else ())

    def counter(self, name: str) -> str:
        return f"{self.tag}_{name}"


def client_scope(inventory: Inventory, edge: Host, client: Host) -> ClientScope:
    """The scope of `client` on `edge`, from the lab's links or the client's host vars."""
    declared = client.var("client_scope") or {}
    if not isinstance(declared, dict):
        raise InventoryError(f"{client.where('client_scope')}: client_scope: expected a mapping "
                             "(nat_address, route_table; outside the lab also address, network, interface)")
    lab = inventory.lab
    found = None
    for link in (lab.links if lab else ()):
        hosts = {e.host: e for e in link.ends}
        if client.name in hosts and edge.name in hosts:
            found = (str(hosts[client.name].address.ip), str(hosts[edge.name].address.network),
                     hosts[edge.name].interface)
    address, network, interface = found or (declared.get("address"), declared.get("network"),
                                            declared.get("interface"))
    if not (address and network and interface):
        raise InventoryError(f"{client.where('client_scope') if 'client_scope' in client.origin else inventory.path}: "
                             f"host '{client.name}': no link to edge '{edge.name}' and no client_scope.address/"
                             "network/interface", hint="declare how the edge tells this client's traffic apart")
    nat = declared.get("nat_address")
    table = declared.get("route_table")
    try:
        ipaddress.ip_address(str(address)), ipaddress.ip_network(str(network), strict=False)
        if nat:
            ipaddress.ip_address(str(nat))
    except ValueError as exc:
        raise InventoryError(f"{client.where('client_scope') if 'client_scope' in client.origin else inventory.path}: "
                             f"client_scope of '{client.name}': {exc}") from None
    if table is not None and not (isinstance(table, int) and 0 < table < 253):
        raise InventoryError(f"{client.where('client_scope')}: client_scope.route_table: expected 1..252, got {table!r}")
    return ClientScope(client.name, str(address), str(network), str(interface), str(nat) if nat else None, table)
