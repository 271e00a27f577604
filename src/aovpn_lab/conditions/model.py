"""Network conditions the client side can be put under, as values.

    >>> Condition.parse("mtu:1280")
    Condition(kind='mtu', mtu=1280)
    >>> str(Condition.parse("drop-ip-fragments"))
    'drop-ip-fragments'
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import AovpnError

KINDS = {
    "open": "no restriction",
    "drop-ip-fragments": "drop every IP fragment (as many hotel and corporate firewalls do)",
    "block-udp-500": "drop UDP to port 500 (IKE)",
    "block-udp-4500": "drop UDP to port 4500 (IKE NAT-T and ESP-in-UDP)",
    "block-esp": "drop IP protocol 50 (native ESP)",
    "block-tcp-443": "drop TCP to port 443 (SSTP and other TLS VPNs)",
    "nat": "source NAT (masquerade) towards the gateway, as home and hotel routers do",
    "mtu": "limit the path MTU to N bytes (mtu:N)",
}


@dataclass(frozen=True)
class Condition:
    kind: str
    mtu: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Condition":
        text = text.strip().lower()
        if text.startswith("mtu:"):
            try:
                mtu = int(text[4:])
            except ValueError:
                mtu = 0
            if not 576 <= mtu <= 9000:
                raise AovpnError(f"condition '{text}': the MTU must be a number from 576 to 9000",
                                 hint="e.g. mtu:1280")
            return cls("mtu", mtu)
        if text not in KINDS or text == "mtu":
            raise AovpnError(f"unknown network condition '{text}'",
                             hint=f"use one of {', '.join(k if k != 'mtu' else 'mtu:N' for k in KINDS)}")
        return cls(text)

    def __str__(self) -> str:
        return f"mtu:{self.mtu}" if self.kind == "mtu" else self.kind

    @property
    def description(self) -> str:
        return KINDS[self.kind].replace("N bytes", f"{self.mtu} bytes") if self.mtu else KINDS[self.kind]


OPEN = Condition("open")
