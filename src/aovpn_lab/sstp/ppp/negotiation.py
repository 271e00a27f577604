"""RFC 1661 option negotiation, shared by LCP and IPCP, seen from the client.

One :class:`OptionNegotiator` runs both halves of a control protocol: our
Configure-Request until the peer acks it, and our answer to each Configure-Request the
peer sends (Ack / Nak with a suggestion / Reject). Subclasses say only what is specific
to their protocol through a handful of hooks. Options stay raw ``Type-Length-Data``
bytes here so that a Configure-Ack echoes the peer's options byte for byte, as RFC 1661
requires; the subclasses read and build them with scapy's option classes.

The restart timer is data: ``open()``, ``receive()`` and ``timeout()`` return an
:class:`~aovpn_lab.sstp.ppp.events.Output` that may ask for ``StartTimer(name, s)``.
See :mod:`aovpn_lab.sstp.ppp.lcp` for a runnable example.
"""
from __future__ import annotations

from enum import Enum, IntEnum

from ..errors import SstpProtocolError
from .events import (
    Event,
    FrameDiscarded,
    LinkTerminated,
    NegotiationFailed,
    Output,
    StartTimer,
    StopTimer,
)
from .framing import ControlPacket, frame, split_control_packet, split_options

MAX_REJECTED_PACKET = 1496  # Code-Reject carries the packet "truncated to fit" (MRU 1500)


class Code(IntEnum):
    CONFIGURE_REQUEST = 1
    CONFIGURE_ACK = 2
    CONFIGURE_NAK = 3
    CONFIGURE_REJECT = 4
    TERMINATE_REQUEST = 5
    TERMINATE_ACK = 6
    CODE_REJECT = 7
    PROTOCOL_REJECT = 8
    ECHO_REQUEST = 9
    ECHO_REPLY = 10
    DISCARD_REQUEST = 11


class OptionReview(Enum):
    """How we answer one option of the peer's Configure-Request (RFC 1661 5.2-5.4)."""
    ACK = "ack"
    NAK = "nak"
    REJECT = "reject"


class State(Enum):
    INITIAL = "Initial"
    REQ_SENT = "Req-Sent"
    ACK_RCVD = "Ack-Rcvd"
    ACK_SENT = "Ack-Sent"
    OPENED = "Opened"
    CLOSING = "Closing"
    CLOSED = "Closed"


class OptionNegotiator:
    protocol: int = 0
    name: str = "?"
    timer_name: str = "?"

    def __init__(
        self,
        *,
        restart_seconds: float = 3.0,
        max_configure: int = 10,
        max_failure: int = 5,
        max_terminate: int = 2,
    ) -> None:
        self.restart_seconds = restart_seconds
        self.max_configure = max_configure
        self.max_failure = max_failure
        self.max_terminate = max_terminate
        self._state = State.INITIAL
        self._identifier = 0
        self._request_id: int | None = None
        self._request_options = b""
        self._retransmits = 0
        self._acked_by_peer = False
        self._acked_peer = False
        self._naks_in_a_row = 0
        self._close_reason = ""

    # -- hooks -----------------------------------------------------------------------

    def _our_options(self) -> list[bytes]:
        return []

    def _review(self, option: bytes) -> tuple[OptionReview, bytes | None]:
        """Our answer to one peer option; NAK comes with the suggested option bytes."""
        return OptionReview.REJECT, None

    def _accepted(self, options: list[bytes]) -> None:
        """Called with the peer's options when we Configure-Ack them."""

    def _apply_nak(self, option: bytes) -> None:
        """Adopt (or not) a value the peer suggested for one of our options."""

    def _apply_reject(self, option: bytes) -> str | None:
        """Stop requesting a rejected option; return a reason when we cannot do without."""
        return None

    def _on_opened(self) -> list[Event]:
        return []

    def _on_other_code(self, packet: ControlPacket) -> Output:
        return self._code_reject(packet)

    # -- state -----------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def is_opened(self) -> bool:
        return self._state is State.OPENED

    @property
    def _negotiating(self) -> bool:
        return self._state in (State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT)

    def _set_negotiating_state(self) -> None:
        if self._acked_by_peer:
            self._state = State.ACK_RCVD
        elif self._acked_peer:
            self._state = State.ACK_SENT
        else:
            self._state = State.REQ_SENT

    def _next_identifier(self) -> int:
        self._identifier = (self._identifier + 1) & 0xFF
        return self._identifier

    def _send(self, code: int, identifier: int, data: bytes) -> bytes:
        return frame(self.protocol, ControlPacket(code, identifier, data).raw)

    def _discard(self, reason: str) -> Output:
        return Output(events=[FrameDiscarded(self.name, reason)])

    # -- driving ---------------------------------------------------------------------

    def open(self) -> Output:
        self._acked_by_peer = self._acked_peer = False
        self._retransmits = 0
        self._naks_in_a_row = 0
        return self._send_request()

    def _send_request(self, *, retransmit: bool = False) -> Output:
        if not retransmit:
            # RFC 1661 5.1: a new Identifier whenever the options change or a reply came.
            self._request_id = self._next_identifier()
            self._request_options = b"".join(self._our_options())
        self._acked_by_peer = False
        self._set_negotiating_state()
        return Output(
            frames=[self._send(Code.CONFIGURE_REQUEST, self._request_id, self._request_options)],
            timers=[StartTimer(self.timer_name, self.restart_seconds)],
        )

    def close(self, reason: str) -> Output:
        if self._state in (State.INITIAL, State.CLOSED, State.CLOSING):
            return Output()
        self._close_reason = reason
        self._state = State.CLOSING
        self._retransmits = 0
        return self._send_terminate()

    def _send_terminate(self) -> Output:
        return Output(
            frames=[self._send(Code.TERMINATE_REQUEST, self._next_identifier(), b"")],
            timers=[StartTimer(self.timer_name, self.restart_seconds)],
        )

    def timeout(self) -> Output:
        if self._negotiating:
            self._retransmits += 1
            if self._retransmits >= self.max_configure:
                return self._fail(
                    f"no agreement after {self.max_configure} Configure-Requests "
                    f"({self.restart_seconds:g} s apart): the peer is silent or ignores them"
                )
            return self._send_request(retransmit=True)
        if self._state is State.CLOSING:
            self._retransmits += 1
            if self._retransmits >= self.max_terminate:
                self._state = State.CLOSED
                return Output(events=[LinkTerminated(self.name, self._close_reason)])
            return self._send_terminate()
        return Output()

    def _fail(self, reason: str) -> Output:
        self._state = State.CLOSED
        return Output(
            events=[NegotiationFailed(self.name, reason)], timers=[StopTimer(self.timer_name)]
        )

    def receive(self, information: bytes) -> Output:
        try:
            packet = split_control_packet(information)
        except SstpProtocolError as exc:
            return self._discard(str(exc))
        if self._state in (State.INITIAL, State.CLOSED):
            if packet.code in (Code.CONFIGURE_REQUEST, Code.TERMINATE_REQUEST):
                # RFC 1661 state table, Closed: RCR and RTR are answered with sta.
                return Output(frames=[self._send(Code.TERMINATE_ACK, packet.identifier, b"")])
            return self._discard(f"{self.name} is {self._state.value}: code {packet.code} ignored")
        handler = {
            Code.CONFIGURE_REQUEST: self._on_configure_request,
            Code.CONFIGURE_ACK: self._on_configure_ack,
            Code.CONFIGURE_NAK: self._on_configure_nak_or_reject,
            Code.CONFIGURE_REJECT: self._on_configure_nak_or_reject,
            Code.TERMINATE_REQUEST: self._on_terminate_request,
            Code.TERMINATE_ACK: self._on_terminate_ack,
            Code.CODE_REJECT: self._on_code_reject,
        }.get(packet.code, self._on_other_code)
        return handler(packet)

    # -- receive handlers ------------------------------------------------------------

    def _on_configure_request(self, packet: ControlPacket) -> Output:
        if self._state is State.CLOSING:
            return self._discard("Configure-Request while closing")
        try:
            options = split_options(packet.data)
        except SstpProtocolError as exc:
            return self._discard(f"Configure-Request: {exc}")
        out = Output()
        if self._state is State.OPENED:
            # The peer restarted negotiation; RFC 1661 says: this-layer-down, send our
            # own Configure-Request again, then judge theirs.
            self._acked_peer = False
            out.extend(self._send_request())
        rejects: list[bytes] = []
        naks: list[tuple[bytes, bytes]] = []
        for option in options:
            review, suggestion = self._review(option)
            if review is OptionReview.REJECT:
                rejects.append(option)
            elif review is OptionReview.NAK:
                naks.append((option, suggestion or option))
        if naks and not rejects:
            self._naks_in_a_row += 1
            if self._naks_in_a_row > self.max_failure:
                # Max-Failure (RFC 1661 4.6): the peer is not converging, so stop
                # suggesting and refuse the option outright.
                rejects = [original for original, _ in naks]
        if rejects:
            self._acked_peer = False
            out.frames.append(
                self._send(Code.CONFIGURE_REJECT, packet.identifier, b"".join(rejects))
            )
        elif naks:
            self._acked_peer = False
            out.frames.append(
                self._send(Code.CONFIGURE_NAK, packet.identifier, b"".join(s for _, s in naks))
            )
        else:
            self._naks_in_a_row = 0
            self._acked_peer = True
            self._accepted(options)
            out.frames.append(self._send(Code.CONFIGURE_ACK, packet.identifier, packet.data))
        return out.extend(self._maybe_opened())

    def _on_configure_ack(self, packet: ControlPacket) -> Output:
        if not self._negotiating:
            return self._discard(f"Configure-Ack in state {self._state.value}")
        if packet.identifier != self._request_id or packet.data != self._request_options:
            return self._discard(
                f"Configure-Ack id {packet.identifier} does not match our request "
                f"{self._request_id} (Identifier or options differ)"
            )
        self._acked_by_peer = True
        self._retransmits = 0
        return self._maybe_opened()

    def _on_configure_nak_or_reject(self, packet: ControlPacket) -> Output:
        kind = "Configure-Nak" if packet.code == Code.CONFIGURE_NAK else "Configure-Reject"
        if not self._negotiating:
            return self._discard(f"{kind} in state {self._state.value}")
        if packet.identifier != self._request_id:
            return self._discard(
                f"{kind} id {packet.identifier}, our request is {self._request_id}"
            )
        try:
            options = split_options(packet.data)
        except SstpProtocolError as exc:
            return self._discard(f"{kind}: {exc}")
        if packet.code == Code.CONFIGURE_NAK:
            for option in options:
                self._apply_nak(option)
        else:
            sent = split_options(self._request_options)
            if any(option not in sent for option in options):
                return self._discard("Configure-Reject lists options we did not send")
            for option in options:
                fatal = self._apply_reject(option)
                if fatal:
                    return self._fail(fatal)
        self._retransmits = 0
        return self._send_request()

    def _on_terminate_request(self, packet: ControlPacket) -> Output:
        was = self._state
        self._state = State.CLOSED
        reason = "peer sent Terminate-Request"
        if packet.data:
            reason += f" ({packet.data.decode('latin-1', 'replace')})"
        out = Output(
            frames=[self._send(Code.TERMINATE_ACK, packet.identifier, b"")],
            timers=[StopTimer(self.timer_name)],
        )
        out.events.append(
            LinkTerminated(self.name, reason if was is not State.CLOSING else self._close_reason)
        )
        return out

    def _on_terminate_ack(self, packet: ControlPacket) -> Output:
        if self._state is not State.CLOSING:
            return self._discard(f"Terminate-Ack in state {self._state.value}")
        self._state = State.CLOSED
        return Output(
            events=[LinkTerminated(self.name, self._close_reason)],
            timers=[StopTimer(self.timer_name)],
        )

    def _on_code_reject(self, packet: ControlPacket) -> Output:
        rejected = packet.data[0] if packet.data else 0
        if Code.CONFIGURE_REQUEST <= rejected <= Code.TERMINATE_ACK:
            return self._fail(f"peer Code-Rejected code {rejected}, which negotiation needs")
        return Output()  # RXJ+: e.g. an Echo we did not need

    def _code_reject(self, packet: ControlPacket) -> Output:
        rejected = packet.raw[:MAX_REJECTED_PACKET]
        return Output(frames=[self._send(Code.CODE_REJECT, self._next_identifier(), rejected)])

    def _maybe_opened(self) -> Output:
        if not (self._acked_by_peer and self._acked_peer):
            if self._negotiating or self._state is State.OPENED:
                self._set_negotiating_state()
            return Output()
        if self._state is State.OPENED:
            return Output()
        self._state = State.OPENED
        return Output(events=self._on_opened(), timers=[StopTimer(self.timer_name)])
