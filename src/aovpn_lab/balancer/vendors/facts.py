"""What a rendered balancer configuration does, read back from the artefact itself (YAML
tasks, CLI lines, JSON calls), in one vendor-neutral shape the checks judge.

Each vendor module reads its own artefact into these; nothing here is taken from the
inventory, so a value changed in the artefact is a value the checks see.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Persistence:
    kind: str                 # "source" | "tls-session" | "hash" (a per-service hash, shares nothing)
    timeout: int | None       # seconds; None: the product's default
    shared: frozenset[int]    # the ports (of this VIP) whose clients share one record, this one included
    where: str                # the object that sets it, for the message


@dataclass(frozen=True)
class Monitor:
    kind: str                 # "ike" | "udp-port" | "icmp" | "http"
    where: str
    method: str | None = None
    path: str | None = None
    expect: str | None = None  # the status (code or line) that counts as up
    secure: bool = False
    host: str | None = None


@dataclass(frozen=True)
class Service:
    """One virtual service on the VIP: protocol and port, and how it picks and reaches a backend."""
    protocol: str             # "udp" | "tcp"
    port: int
    where: str
    members: tuple[str, ...] = ()
    source_nat: str | None = None     # "none" when client addresses are kept; else what translates them
    persistence: Persistence | None = None
    monitors: tuple[Monitor, ...] = ()
    idle_timeout: int | None = None   # seconds; None: the product's default
    per_packet: bool = False          # datagrams balanced one by one (no flow at all)


@dataclass
class Facts:
    vendor: str
    vip: str | None
    services: dict[tuple[str, int], Service] = field(default_factory=dict)

    def service(self, protocol: str, port: int) -> Service | None:
        return self.services.get((protocol, port))
