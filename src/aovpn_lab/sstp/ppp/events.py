"""What the sans-IO PPP machines hand back: frames to send, events, timer requests.

Nothing here touches a socket or a clock. The caller sends ``frames`` (each inside an
SSTP data packet), arms or cancels the named timers, and calls ``timeout(name)`` when
one fires::

    >>> from aovpn_lab.sstp.ppp.events import Output, StartTimer, IpAssigned
    >>> out = Output(frames=[b"\\xff\\x03..."], timers=[StartTimer("lcp", 3.0)])
    >>> _ = out.extend(Output(events=[IpAssigned("10.0.0.5", "10.0.0.1", ())]))
    >>> [type(e).__name__ for e in out.events], out.timers[0].seconds
    (['IpAssigned'], 3.0)
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..binding import NULL_HLAK, hlak_from_mppe_keys
from ..mppe import MppeKeys


@dataclass(frozen=True)
class StartTimer:
    """(Re)arm the timer called ``name`` to fire after ``seconds``."""

    name: str
    seconds: float


@dataclass(frozen=True)
class StopTimer:
    name: str


@dataclass(frozen=True)
class LinkEstablished:
    """LCP reached Opened; ``auth_protocol`` is what we agreed to authenticate with."""

    auth_protocol: str | None
    peer_mru: int | None


@dataclass(frozen=True)
class AuthSucceeded:
    method: str  # "MS-CHAPv2", "PAP" or "none"
    keys: MppeKeys | None = None
    message: str = ""

    @property
    def hlak(self) -> bytes:
        """Higher-layer authentication key for the SSTP crypto binding."""
        return hlak_from_mppe_keys(self.keys) if self.keys else NULL_HLAK


@dataclass(frozen=True)
class AuthFailed:
    method: str
    code: int | None  # MS-CHAPv2 E= value when the server sent one
    reason: str
    message: str = ""  # the server's own text (M= or the PAP message)
    retry_allowed: bool = False


@dataclass(frozen=True)
class IpAssigned:
    address: str
    peer_address: str | None
    dns_servers: tuple[str, ...]


@dataclass(frozen=True)
class NegotiationFailed:
    protocol: str
    reason: str


@dataclass(frozen=True)
class LinkTerminated:
    protocol: str
    reason: str


@dataclass(frozen=True)
class FrameDiscarded:
    """A frame ignored as RFC 1661 requires; kept as evidence for verdicts."""

    protocol: str
    reason: str


@dataclass(frozen=True)
class DatagramReceived:
    protocol: int
    payload: bytes


Event = (
    LinkEstablished
    | AuthSucceeded
    | AuthFailed
    | IpAssigned
    | NegotiationFailed
    | LinkTerminated
    | FrameDiscarded
    | DatagramReceived
)


class Outputs:
    """What a sans-IO machine returns: lists (bytes to send, ``events``, ``timers``) that
    add up when one step calls another."""

    events: list

    def extend(self, other):
        for f in fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))
        return self

    def event(self, kind: type):
        """The first event of a type, handy in tests and drivers."""
        return next((e for e in self.events if isinstance(e, kind)), None)


@dataclass
class Output(Outputs):
    frames: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    timers: list[StartTimer | StopTimer] = field(default_factory=list)
