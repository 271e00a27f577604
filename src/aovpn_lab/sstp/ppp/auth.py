"""PPP authentication, client side: MS-CHAPv2 (RFC 2759) and PAP (RFC 1334).

Sans-IO like the rest: feed the information field of CHAP/PAP frames, get frames and an
``AuthSucceeded``/``AuthFailed`` event back. The RFC 2759 section 9.2 exchange, with the
server's Success carrying the published authenticator response::

    >>> from scapy.layers.ppp import PPP_CHAP, PPP_CHAP_ChallengeResponse
    >>> from aovpn_lab.sstp.ppp.auth import MsChapV2Client
    >>> client = MsChapV2Client("User", "clientPass",
    ...     random_bytes=lambda n: bytes.fromhex("21402324255E262A28295F2B3A337C7E"))
    >>> challenge = PPP_CHAP_ChallengeResponse(code=1, id=7, optional_name=b"RRAS",
    ...     value=bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628"))
    >>> response = client.receive(bytes(challenge)).frames[0]
    >>> success = PPP_CHAP(code=3, id=7,
    ...     data=b"S=407A5589115FD0D6209F510FE9C04566932CDA56 M=Access granted")
    >>> client.receive(bytes(success)).events[0].message
    'Access granted'
"""
from __future__ import annotations

import os
from typing import Callable

from scapy.layers.ppp import PPP_CHAP_ChallengeResponse, PPP_PAP_Request, PPP_PAP_Response

from .. import mppe, mschapv2
from ..errors import SstpProtocolError
from .events import AuthFailed, AuthSucceeded, FrameDiscarded, Output, StartTimer, StopTimer
from .framing import PROTO_CHAP, PROTO_PAP, ControlPacket, frame, split_control_packet

CHAP_CHALLENGE, CHAP_RESPONSE, CHAP_SUCCESS, CHAP_FAILURE = 1, 2, 3, 4
PAP_REQUEST, PAP_ACK, PAP_NAK = 1, 2, 3


class _Authenticator:
    method = "?"
    protocol = 0
    timer_name = "auth"

    def __init__(self) -> None:
        self.finished = False

    def _parse(self, information: bytes) -> ControlPacket | Output:
        if self.finished:
            return Output(events=[FrameDiscarded(self.method, "authentication already finished")])
        try:
            return split_control_packet(information)
        except SstpProtocolError as exc:
            return Output(events=[FrameDiscarded(self.method, str(exc))])

    def _finish(self, event: AuthSucceeded | AuthFailed) -> Output:
        self.finished = True
        return Output(events=[event], timers=[StopTimer(self.timer_name)])

    def _fail(self, reason: str, code: int | None = None, message: str = "", retry: bool = False):
        return self._finish(AuthFailed(self.method, code, reason, message, retry))


class MsChapV2Client(_Authenticator):
    """Answers the server's Challenge and checks its proof of knowing the password."""

    method = "MS-CHAPv2"
    protocol = PROTO_CHAP

    def __init__(
        self,
        username: str,
        password: str,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        wait_seconds: float = 30.0,
    ) -> None:
        super().__init__()
        self.username = username
        self.password = password
        self._random_bytes = random_bytes
        self.wait_seconds = wait_seconds
        self.server_name: str | None = None
        self._challenge: tuple[int, bytes] | None = None  # (identifier, value)
        self._peer_challenge = b""
        self._nt_response = b""
        self._response_frame = b""

    def start(self) -> Output:
        # The authenticator speaks first; all we can do is wait for its Challenge.
        return Output(timers=[StartTimer(self.timer_name, self.wait_seconds)])

    def timeout(self) -> Output:
        if self.finished:
            return Output()
        waiting_for = "Success/Failure" if self._challenge else "Challenge"
        return self._fail(f"no {waiting_for} from the server within {self.wait_seconds:g} s")

    def receive(self, information: bytes) -> Output:
        packet = self._parse(information)
        if isinstance(packet, Output):
            return packet
        if packet.code == CHAP_CHALLENGE:
            return self._on_challenge(packet)
        if packet.code in (CHAP_SUCCESS, CHAP_FAILURE):
            if self._challenge is None or packet.identifier != self._challenge[0]:
                # RFC 1994 4.2: Success/Failure must echo the Response's Identifier.
                return Output(events=[FrameDiscarded(
                    self.method, f"code {packet.code} id {packet.identifier} answers no Response")])
            if packet.code == CHAP_SUCCESS:
                return self._on_success(packet)
            return self._on_failure(packet)
        return Output(events=[FrameDiscarded(self.method, f"unexpected CHAP code {packet.code}")])

    def _on_challenge(self, packet: ControlPacket) -> Output:
        data = packet.data
        if not data or len(data) < 1 + data[0]:
            return Output(events=[FrameDiscarded(self.method, "Challenge Value-Size overruns")])
        parsed = PPP_CHAP_ChallengeResponse(packet.raw)
        if parsed.value_size != mschapv2.CHALLENGE_LENGTH:
            return self._fail(
                f"Challenge Value-Size {parsed.value_size}, MS-CHAPv2 requires 16 "
                "(server configured for another CHAP variant?)"
            )
        challenge = (packet.identifier, bytes(parsed.value))
        if challenge != self._challenge:
            # A retransmitted Challenge gets the same Response, so that the server's
            # S= still matches whichever copy it answers; a new one starts over.
            self._challenge = challenge
            self.server_name = bytes(parsed.optional_name).decode("utf-8", "replace")
            self._peer_challenge = self._random_bytes(mschapv2.CHALLENGE_LENGTH)
            self._nt_response = mschapv2.generate_nt_response(
                challenge[1], self._peer_challenge, self.username, self.password
            )
            response = PPP_CHAP_ChallengeResponse(
                code=CHAP_RESPONSE,
                id=packet.identifier,
                value=mschapv2.response_value(self._peer_challenge, self._nt_response),
                # The Name field carries the user name as typed, domain included.
                optional_name=self.username.encode("utf-8"),
            )
            self._response_frame = frame(PROTO_CHAP, response)
        return Output(
            frames=[self._response_frame],
            timers=[StartTimer(self.timer_name, self.wait_seconds)],
        )

    def _on_success(self, packet: ControlPacket) -> Output:
        try:
            success = mschapv2.parse_success(packet.data)
        except SstpProtocolError as exc:
            return self._fail(str(exc))
        valid = mschapv2.check_authenticator_response(
            self.password, self._nt_response, self._peer_challenge, self._challenge[1],
            self.username, success.authenticator_response,
        )
        if not valid:
            return self._fail(
                "server's authenticator response (S=) does not verify: it does not know "
                "the password, or the exchange was relayed/tampered with",
                message=success.message,
            )
        keys = mppe.derive_keys(self.password, self._nt_response)
        return self._finish(AuthSucceeded(self.method, keys, success.message))

    def _on_failure(self, packet: ControlPacket) -> Output:
        failure = mschapv2.parse_failure(packet.data)
        return self._fail(failure.reason, failure.error, failure.message, failure.retry)


class PapClient(_Authenticator):
    """Sends the credentials in clear (inside TLS) until Ack, Nak or give-up."""

    method = "PAP"
    protocol = PROTO_PAP

    def __init__(
        self,
        username: str,
        password: str,
        *,
        restart_seconds: float = 3.0,
        max_requests: int = 10,
    ) -> None:
        super().__init__()
        self.username = username
        self.password = password
        self.restart_seconds = restart_seconds
        self.max_requests = max_requests
        self._identifier = 0
        self._sent = 0

    def start(self) -> Output:
        self._identifier = (self._identifier + 1) & 0xFF
        return self._send()

    def _send(self) -> Output:
        self._sent += 1
        request = PPP_PAP_Request(
            id=self._identifier,
            username=self.username.encode("utf-8"),
            password=self.password.encode("utf-8"),
        )
        return Output(
            frames=[frame(PROTO_PAP, request)],
            timers=[StartTimer(self.timer_name, self.restart_seconds)],
        )

    def timeout(self) -> Output:
        if self.finished:
            return Output()
        if self._sent >= self.max_requests:
            return self._fail(f"no answer to {self._sent} PAP Authenticate-Requests")
        return self._send()

    def receive(self, information: bytes) -> Output:
        packet = self._parse(information)
        if isinstance(packet, Output):
            return packet
        if packet.code not in (PAP_ACK, PAP_NAK) or packet.identifier != self._identifier:
            return Output(events=[FrameDiscarded(
                self.method, f"code {packet.code} id {packet.identifier} answers no request")])
        if not packet.data:
            # RFC 1334 requires the Msg-Length octet, but SoftEther 5.01 sends a bare
            # 4-byte Ack/Nak; the code alone is unambiguous, so take it.
            message = ""
        elif len(packet.data) < 1 + packet.data[0]:
            return Output(events=[FrameDiscarded(self.method, "Msg-Length overruns the packet")])
        else:
            message = bytes(PPP_PAP_Response(packet.raw).message).decode("utf-8", "replace")
        if packet.code == PAP_ACK:
            return self._finish(AuthSucceeded(self.method, None, message))
        return self._fail("PAP Authenticate-Nak: the server refused the credentials", None, message)
