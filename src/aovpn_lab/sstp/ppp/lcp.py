"""LCP for an SSTP client (RFC 1661), tuned to what Windows and SoftEther servers send.

A Windows server's first Configure-Request carries MRU, Auth-Protocol EAP, Magic-Number,
Callback, MRRU and Endpoint-Discriminator. A client that wants the tunnel up must Reject
Callback/MRRU/Endpoint-Discriminator (multilink and callback make no sense inside TLS)
and Nak the authentication protocol with the one it can do: MS-CHAPv2 (``C2 23 81``)
or, on request, PAP::

    >>> from scapy.layers.ppp import PPP_LCP_Configure, PPP_LCP_Option
    >>> from scapy.layers.ppp import PPP_LCP_Auth_Protocol_Option as Auth
    >>> from aovpn_lab.sstp.ppp.lcp import LcpNegotiator
    >>> lcp = LcpNegotiator(random_bytes=lambda n: b"\\x11" * n)
    >>> _ = lcp.open()
    >>> request = PPP_LCP_Configure(id=1, options=[
    ...     Auth(auth_protocol=0xC227), PPP_LCP_Option(type=19, data=b"\\x00")])
    >>> out = lcp.receive(bytes(request))
    >>> out.frames[0].hex()  # Configure-Reject echoing the Endpoint-Discriminator
    'ff03c02104010007130300'
"""
from __future__ import annotations

import os
from typing import Callable

from scapy.layers.ppp import (
    PPP_LCP_Auth_Protocol_Option,
    PPP_LCP_Echo,
    PPP_LCP_Magic_Number_Option,
    PPP_LCP_MRU_Option,
    PPP_LCP_Option,
    PPP_LCP_Protocol_Reject,
)
from scapy.packet import Raw

from .events import Event, FrameDiscarded, LinkEstablished, NegotiationFailed, Output
from .framing import PROTO_CHAP, PROTO_LCP, PROTO_PAP, ControlPacket, frame, protocol_name
from .negotiation import Code, OptionNegotiator, State, OptionReview

OPT_MRU = 1
OPT_ACCM = 2
OPT_AUTH = 3
OPT_QUALITY = 4
OPT_MAGIC = 5
OPT_PFC = 7
OPT_ACFC = 8
OPT_CALLBACK = 13
OPT_MRRU = 17
OPT_SHORT_SEQUENCE = 18
OPT_ENDPOINT_DISCRIMINATOR = 19

MSCHAPV2 = "MS-CHAPv2"
PAP = "PAP"
CHAP_ALGORITHM_MSCHAPV2 = 0x81

AUTH_OPTIONS = {
    MSCHAPV2: bytes(
        PPP_LCP_Auth_Protocol_Option(auth_protocol=PROTO_CHAP, algorithm=CHAP_ALGORITHM_MSCHAPV2)
    ),
    PAP: bytes(PPP_LCP_Auth_Protocol_Option(auth_protocol=PROTO_PAP)),
}

# Options we agree to as sent, with the only length each may have.
_ACCEPTED_LENGTHS = {OPT_MRU: 4, OPT_ACCM: 6, OPT_MAGIC: 6, OPT_PFC: 2, OPT_ACFC: 2}
MIN_MRU = 576  # below this a peer's suggestion is ignored rather than adopted


class LcpNegotiator(OptionNegotiator):
    protocol = PROTO_LCP
    name = "LCP"
    timer_name = "lcp"

    def __init__(
        self,
        *,
        auth: str = MSCHAPV2,
        mru: int | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        **timing,
    ) -> None:
        super().__init__(**timing)
        if auth not in AUTH_OPTIONS:
            raise ValueError(f"auth must be one of {sorted(AUTH_OPTIONS)}, not {auth!r}")
        self.auth = auth
        self._random_bytes = random_bytes
        self.mru = mru
        self.magic: int | None = self._new_magic()
        self.peer_magic: int | None = None
        self.peer_mru: int | None = None
        self.auth_protocol: str | None = None  # what the peer will authenticate us with

    def _new_magic(self, *avoid: int) -> int:
        magic = int.from_bytes(self._random_bytes(4), "big")
        # Zero means "no magic number" (RFC 1661 6.4), and a replacement must differ
        # from the value it replaces even when the random source repeats itself.
        while magic == 0 or magic in avoid:
            magic = (magic + 1) & 0xFFFFFFFF
        return magic

    # -- our request -----------------------------------------------------------------

    def _our_options(self) -> list[bytes]:
        options = []
        if self.mru is not None:
            options.append(bytes(PPP_LCP_MRU_Option(max_recv_unit=self.mru)))
        if self.magic is not None:
            options.append(bytes(PPP_LCP_Magic_Number_Option(magic_number=self.magic)))
        return options

    def _apply_nak(self, option: bytes) -> None:
        parsed = PPP_LCP_Option(option)
        if option[0] == OPT_MRU and len(option) == 4:
            self.mru = parsed.max_recv_unit if parsed.max_recv_unit >= MIN_MRU else None
        elif option[0] == OPT_MAGIC and self.magic is not None:
            self.magic = self._new_magic(self.magic)  # a Nak hints at a looped-back link

    def _apply_reject(self, option: bytes) -> str | None:
        if option[0] == OPT_MRU:
            self.mru = None
        elif option[0] == OPT_MAGIC:
            self.magic = None
        return None

    # -- the peer's request ----------------------------------------------------------

    def _review(self, option: bytes) -> tuple[OptionReview, bytes | None]:
        kind = option[0]
        if kind == OPT_AUTH:
            if option == AUTH_OPTIONS[self.auth]:
                return OptionReview.ACK, None
            return OptionReview.NAK, AUTH_OPTIONS[self.auth]
        if _ACCEPTED_LENGTHS.get(kind) != len(option):
            # Callback, MRRU, Endpoint-Discriminator, Quality-Protocol, anything unknown,
            # and known options with a malformed length.
            return OptionReview.REJECT, None
        if kind == OPT_MAGIC:
            value = PPP_LCP_Option(option).magic_number
            if value == self.magic or value == 0:
                suggestion = PPP_LCP_Magic_Number_Option(
                    magic_number=self._new_magic(value, self.magic or 0))
                return OptionReview.NAK, bytes(suggestion)
        return OptionReview.ACK, None

    def _accepted(self, options: list[bytes]) -> None:
        self.peer_mru = None
        self.peer_magic = None
        self.auth_protocol = None
        for option in options:
            parsed = PPP_LCP_Option(option)
            if option[0] == OPT_MRU:
                self.peer_mru = parsed.max_recv_unit
            elif option[0] == OPT_MAGIC:
                self.peer_magic = parsed.magic_number
            elif option[0] == OPT_AUTH:
                self.auth_protocol = self.auth

    def _on_opened(self) -> list[Event]:
        return [LinkEstablished(auth_protocol=self.auth_protocol, peer_mru=self.peer_mru)]

    # -- the other codes -------------------------------------------------------------

    def _on_other_code(self, packet: ControlPacket) -> Output:
        if packet.code == Code.ECHO_REQUEST:
            if self._state is not State.OPENED:
                return self._discard("Echo-Request before LCP is Opened (RFC 1661 5.8)")
            echo = PPP_LCP_Echo(packet.raw)
            reply = PPP_LCP_Echo(
                code=Code.ECHO_REPLY, id=packet.identifier, magic_number=self.magic or 0,
                data=echo.data,
            )
            return Output(frames=[frame(PROTO_LCP, reply)])
        if packet.code in (Code.ECHO_REPLY, Code.DISCARD_REQUEST):
            return Output()
        if packet.code == Code.PROTOCOL_REJECT:
            if len(packet.data) < 2:
                return self._discard("Protocol-Reject without a protocol field")
            rejected = int.from_bytes(packet.data[:2], "big")
            return Output(
                events=[NegotiationFailed(protocol_name(rejected), "peer sent LCP Protocol-Reject")]
            )
        return self._code_reject(packet)

    def protocol_reject(self, protocol: int, information: bytes) -> Output:
        """Refuse a protocol we do not run (IPV6CP, CCP, ...); only valid when Opened."""
        if self._state is not State.OPENED:
            return Output(events=[FrameDiscarded(
                protocol_name(protocol), "unsupported protocol before LCP is Opened")])
        reject = PPP_LCP_Protocol_Reject(
            id=self._next_identifier(),
            rejected_protocol=protocol,
            rejected_information=Raw(information[:1494]),
        )
        return Output(frames=[frame(PROTO_LCP, reject)])
