"""Network conditions the client side can be put under, as values.

    >>> Condition.parse("mtu:1280")
    Condition(kind='mtu', mtu=1280, also=())
    >>> str(Condition.parse("drop-ip-fragments"))
    'drop-ip-fragments'
    >>> c = Condition.parse("mtu:1200+drop-ip-fragments"); c.has("drop-ip-fragments"), c.path_mtu
    (True, 1200)

Conditions combine with '+': one network can both limit the MTU and drop fragments.
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

# The counter each dropping condition keeps on the device that applies it (and the lab
# gateway's own firewall keeps for the same traffic): drops are evidence, not inferred.
DROP_COUNTERS = {
    "drop-ip-fragments": "fragments_dropped",
    "block-udp-500": "udp_500_dropped",
    "block-udp-4500": "udp_4500_dropped",
    "block-esp": "esp_dropped",
    "block-tcp-443": "tcp_443_dropped",
}


@dataclass(frozen=True)
class Condition:
    kind: str
    mtu: int | None = None
    also: tuple["Condition", ...] = ()   # further conditions applied at the same time

    @classmethod
    def parse(cls, text: str) -> "Condition":
        parts = [cls._parse_one(t) for t in text.split("+")]
        kinds = [p.kind for p in parts]
        if len(parts) > 1 and ("open" in kinds or len(set(kinds)) != len(kinds)):
            raise AovpnError(f"condition '{text}': combine different conditions other than 'open'",
                             hint="e.g. mtu:1200+drop-ip-fragments")
        return cls(parts[0].kind, parts[0].mtu, tuple(parts[1:]))

    @classmethod
    def _parse_one(cls, text: str) -> "Condition":
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
                             hint=f"use one of {', '.join(k if k != 'mtu' else 'mtu:N' for k in KINDS)} "
                                  "(combine with '+')")
        return cls(text)

    @property
    def parts(self) -> tuple["Condition", ...]:
        return (Condition(self.kind, self.mtu),) + self.also

    def has(self, kind: str) -> bool:
        return any(p.kind == kind for p in self.parts)

    @property
    def path_mtu(self) -> int | None:
        return next((p.mtu for p in self.parts if p.kind == "mtu"), None)

    def __str__(self) -> str:
        return "+".join(f"mtu:{p.mtu}" if p.kind == "mtu" else p.kind for p in self.parts)

    @property
    def description(self) -> str:
        return "; ".join(KINDS[p.kind].replace("N bytes", f"{p.mtu} bytes") if p.mtu else KINDS[p.kind]
                         for p in self.parts)


OPEN = Condition("open")
