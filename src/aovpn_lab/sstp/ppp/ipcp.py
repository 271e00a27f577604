"""IPCP for an SSTP client (RFC 1332, RFC 1877 DNS options).

The client asks for IP-Address 0.0.0.0 (and DNS 0.0.0.0 like Windows does), the server
Naks with the values it assigns, the client repeats them and the server Acks::

    >>> from scapy.layers.ppp import PPP_IPCP, PPP_IPCP_Option_IPAddress
    >>> from aovpn_lab.sstp.ppp.framing import unframe
    >>> from aovpn_lab.sstp.ppp.ipcp import IpcpNegotiator
    >>> ipcp = IpcpNegotiator(request_dns=False)
    >>> _, request = unframe(ipcp.open().frames[0])
    >>> nak = PPP_IPCP(code=3, id=request[1],
    ...                options=[PPP_IPCP_Option_IPAddress(data="172.16.0.10")])
    >>> _, again = unframe(ipcp.receive(bytes(nak)).frames[0])
    >>> PPP_IPCP(again).options[0].data
    '172.16.0.10'
"""
from __future__ import annotations

import ipaddress

from scapy.layers.ppp import (
    PPP_IPCP_Option_DNS1,
    PPP_IPCP_Option_DNS2,
    PPP_IPCP_Option_IPAddress,
)

from .events import Event, IpAssigned, NegotiationFailed
from .framing import PROTO_IPCP
from .negotiation import OptionNegotiator, OptionReview

OPT_IP_COMPRESSION = 2
OPT_IP_ADDRESS = 3
OPT_PRIMARY_DNS = 129
OPT_SECONDARY_DNS = 131
UNSPECIFIED = "0.0.0.0"

_DNS_CLASSES = {OPT_PRIMARY_DNS: PPP_IPCP_Option_DNS1, OPT_SECONDARY_DNS: PPP_IPCP_Option_DNS2}


def _address(option: bytes) -> str | None:
    """The IPv4 address an address-type option carries, or None if malformed."""
    if len(option) != 6:
        return None
    return str(ipaddress.IPv4Address(option[2:6]))


class IpcpNegotiator(OptionNegotiator):
    protocol = PROTO_IPCP
    name = "IPCP"
    timer_name = "ipcp"

    def __init__(self, *, request_dns: bool = True, **timing) -> None:
        super().__init__(**timing)
        self.address = UNSPECIFIED
        self.dns: dict[int, str] = (
            {OPT_PRIMARY_DNS: UNSPECIFIED, OPT_SECONDARY_DNS: UNSPECIFIED} if request_dns else {}
        )
        self.peer_address: str | None = None

    def _our_options(self) -> list[bytes]:
        options = [bytes(PPP_IPCP_Option_IPAddress(data=self.address))]
        options += [bytes(_DNS_CLASSES[kind](data=value)) for kind, value in self.dns.items()]
        return options

    def _apply_nak(self, option: bytes) -> None:
        value = _address(option)
        if value is None:
            return
        if option[0] == OPT_IP_ADDRESS:
            self.address = value
        elif option[0] in self.dns:
            self.dns[option[0]] = value

    def _apply_reject(self, option: bytes) -> str | None:
        if option[0] == OPT_IP_ADDRESS:
            return "server rejected the IP-Address option: it will not assign an address"
        self.dns.pop(option[0], None)
        return None

    def _review(self, option: bytes) -> tuple[OptionReview, bytes | None]:
        # The server's own request should hold only its address. A 0.0.0.0 there would
        # ask us to assign one, which a client cannot do; VJ compression we do not run.
        if option[0] == OPT_IP_ADDRESS and _address(option) not in (None, UNSPECIFIED):
            return OptionReview.ACK, None
        return OptionReview.REJECT, None

    def _accepted(self, options: list[bytes]) -> None:
        self.peer_address = None
        for option in options:
            if option[0] == OPT_IP_ADDRESS:
                self.peer_address = _address(option)

    def _on_opened(self) -> list[Event]:
        if self.address == UNSPECIFIED:
            return [NegotiationFailed(
                self.name, "server acknowledged 0.0.0.0 instead of assigning an address")]
        dns = tuple(value for value in self.dns.values() if value != UNSPECIFIED)
        return [IpAssigned(self.address, self.peer_address, dns)]

