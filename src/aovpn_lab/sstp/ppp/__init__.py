"""PPP inside SSTP, client side, sans-IO.

Modules: ``framing`` (FF 03 + protocol), ``events`` (what the machines return),
``negotiation`` (RFC 1661 option negotiation), ``lcp``, ``ipcp``, ``auth``
(MS-CHAPv2, PAP) and ``session`` (the phases). Start with :class:`PppSession`::

    >>> from aovpn_lab.sstp.ppp import PppConfig, PppSession
    >>> out = PppSession(PppConfig("User", "clientPass")).start()
    >>> len(out.frames), out.timers[0].name
    (1, 'lcp')
"""
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
    StartTimer,
    StopTimer,
)
from .framing import frame, unframe
from .session import AuthMethod, Phase, PppConfig, PppSession

__all__ = [
    "AuthFailed",
    "AuthMethod",
    "AuthSucceeded",
    "DatagramReceived",
    "FrameDiscarded",
    "IpAssigned",
    "LinkEstablished",
    "LinkTerminated",
    "NegotiationFailed",
    "Output",
    "Phase",
    "PppConfig",
    "PppSession",
    "StartTimer",
    "StopTimer",
    "frame",
    "unframe",
]
