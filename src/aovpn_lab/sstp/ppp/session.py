"""The client's whole PPP link: LCP, then authentication, then IPCP (RFC 1661 phases).

:class:`PppSession` routes each received frame to the machine for its protocol, moves
through the phases on their events, and refuses what it does not run (IPV6CP, CCP, EAP)
with an LCP Protocol-Reject. A driver wraps each outgoing frame in an SSTP data packet
and, on ``AuthSucceeded``, sends CALL_CONNECTED keyed with ``event.hlak``::

    >>> from aovpn_lab.sstp.ppp import PppConfig, PppSession, AuthMethod
    >>> session = PppSession(PppConfig("User", "clientPass", auth=AuthMethod.PAP))
    >>> out = session.start()
    >>> out.frames[0][:4].hex(), out.timers
    ('ff03c021', [StartTimer(name='lcp', seconds=3.0)])
    >>> session.phase.name
    'ESTABLISH'
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

from ..errors import SstpProtocolError
from .auth import MsChapV2Client, PapClient
from .events import (
    AuthFailed,
    AuthSucceeded,
    DatagramReceived,
    FrameDiscarded,
    IpAssigned,
    LinkEstablished,
    LinkTerminated,
    NegotiationFailed,
    Output,
    StopTimer,
)
from .framing import (
    PROTO_IPCP,
    PROTO_IPV4,
    PROTO_LCP,
    frame,
    protocol_name,
    unframe,
)
from .ipcp import IpcpNegotiator
from .lcp import MSCHAPV2, PAP, LcpNegotiator


class AuthMethod(str, Enum):
    MSCHAPV2 = MSCHAPV2
    PAP = PAP


class Phase(Enum):
    DEAD = "Link Dead"
    ESTABLISH = "Link Establishment"
    AUTHENTICATE = "Authentication"
    NETWORK = "Network-Layer Protocol"
    RUNNING = "Running"  # IPCP opened: the tunnel carries IP
    TERMINATE = "Link Termination"


@dataclass
class PppConfig:
    username: str
    password: str = field(repr=False)  # never in logs or reprs
    auth: AuthMethod = AuthMethod.MSCHAPV2
    request_dns: bool = True
    mru: int | None = None
    restart_seconds: float = 3.0
    max_configure: int = 10
    max_failure: int = 5
    auth_wait_seconds: float = 30.0
    random_bytes: Callable[[int], bytes] = field(default=os.urandom, repr=False)


class PppSession:
    def __init__(self, config: PppConfig) -> None:
        self.config = config
        timing = dict(
            restart_seconds=config.restart_seconds,
            max_configure=config.max_configure,
            max_failure=config.max_failure,
        )
        self.lcp = LcpNegotiator(
            auth=AuthMethod(config.auth).value, mru=config.mru,
            random_bytes=config.random_bytes, **timing,
        )
        self.ipcp = IpcpNegotiator(request_dns=config.request_dns, **timing)
        self.authenticator: MsChapV2Client | PapClient | None = None
        self.phase = Phase.DEAD

    # -- driver API ------------------------------------------------------------------

    def start(self) -> Output:
        self.phase = Phase.ESTABLISH
        return self._react(self.lcp.open())

    def close(self, reason: str = "closed by the client") -> Output:
        if self.phase in (Phase.DEAD, Phase.TERMINATE):
            return Output()
        self.phase = Phase.TERMINATE
        return self.lcp.close(reason).extend(self._stop_upper_timers())

    def timeout(self, name: str) -> Output:
        if name == self.lcp.timer_name:
            return self._react(self.lcp.timeout())
        if name == self.ipcp.timer_name:
            return self._react(self.ipcp.timeout())
        if self.authenticator and name == self.authenticator.timer_name:
            return self._react(self.authenticator.timeout())
        return Output()

    def send_datagram(self, packet: bytes) -> bytes:
        """An IPv4 packet as a PPP frame; only once IPCP has assigned the address."""
        if self.phase is not Phase.RUNNING:
            raise SstpProtocolError(f"cannot send IP in phase {self.phase.value}")
        return frame(PROTO_IPV4, packet)

    def receive(self, ppp_frame: bytes) -> Output:
        try:
            protocol, information = unframe(ppp_frame)
        except SstpProtocolError as exc:
            return Output(events=[FrameDiscarded("PPP", str(exc))])
        if protocol == PROTO_LCP:
            return self._react(self.lcp.receive(information))
        if not self.lcp.is_opened:
            # RFC 1661 3.4: nothing but LCP before the link is established.
            return Output(events=[FrameDiscarded(
                protocol_name(protocol), f"received in phase {self.phase.value}")])
        if self.authenticator and protocol == self.authenticator.protocol:
            if self.phase is not Phase.AUTHENTICATE:
                return Output(events=[FrameDiscarded(
                    protocol_name(protocol), f"received in phase {self.phase.value}")])
            return self._react(self.authenticator.receive(information))
        if protocol == PROTO_IPCP:
            if self.phase not in (Phase.NETWORK, Phase.RUNNING):
                return Output(events=[FrameDiscarded(
                    "IPCP", f"received in phase {self.phase.value}")])
            return self._react(self.ipcp.receive(information))
        if protocol == PROTO_IPV4 and self.phase is Phase.RUNNING:
            return Output(events=[DatagramReceived(protocol, information)])
        return self._react(self.lcp.protocol_reject(protocol, information))

    # -- phase changes ---------------------------------------------------------------

    def _react(self, out: Output) -> Output:
        """Follow the events of one step to the next phase; reactions are appended."""
        index = 0
        while index < len(out.events):
            event = out.events[index]
            index += 1
            if isinstance(event, LinkEstablished):
                out.extend(self._on_link_established(event))
            elif isinstance(event, AuthSucceeded):
                self.phase = Phase.NETWORK
                out.extend(self.ipcp.open())
            elif isinstance(event, AuthFailed):
                out.extend(self.close(f"authentication failed: {event.reason}"))
            elif isinstance(event, IpAssigned):
                self.phase = Phase.RUNNING
            elif isinstance(event, NegotiationFailed):
                if event.protocol == "LCP":
                    self.phase = Phase.DEAD
                    out.extend(self._stop_upper_timers())
                elif event.protocol == "IPCP":
                    out.extend(self.close(f"{event.protocol} failed: {event.reason}"))
            elif isinstance(event, LinkTerminated) and event.protocol == "LCP":
                self.phase = Phase.DEAD
                out.extend(self._stop_upper_timers())
        return out

    def _on_link_established(self, event: LinkEstablished) -> Output:
        if self.phase not in (Phase.ESTABLISH, Phase.AUTHENTICATE, Phase.NETWORK, Phase.RUNNING):
            return Output()
        self.phase = Phase.AUTHENTICATE
        if event.auth_protocol is None:
            # No authentication asked for: SSTP still needs CALL_CONNECTED (zero HLAK).
            self.authenticator = None
            return Output(events=[AuthSucceeded("none")])
        if event.auth_protocol == MSCHAPV2:
            self.authenticator = MsChapV2Client(
                self.config.username, self.config.password,
                random_bytes=self.config.random_bytes,
                wait_seconds=self.config.auth_wait_seconds,
            )
        else:
            self.authenticator = PapClient(
                self.config.username, self.config.password,
                restart_seconds=self.config.restart_seconds,
                max_requests=self.config.max_configure,
            )
        return self.authenticator.start()

    def _stop_upper_timers(self) -> Output:
        return Output(timers=[StopTimer("auth"), StopTimer(self.ipcp.timer_name)])
