"""What happened to the probes on the client side: sent, how, and what answered."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["SendResult", "SendOutcome"]


@dataclass
class SendResult:
    """What happened to one probe on the client side."""

    name: str
    sent: bool = False
    packets: int = 0                  # IP packets put on the wire (fragments)
    ip_sizes: list[int] = field(default_factory=list)
    sport: int | None = None
    answered: bool = False
    answer: str | None = None         # ike:<kind> | udp-reply | tcp-syn-ack | tcp-rst | icmp-...
    answered_by: str | None = None    # source address of the answer
    rtt_ms: float | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SendOutcome:
    source: str | None
    mtu: int | None
    results: dict[str, SendResult]
    elapsed_s: float
