"""The SSTP client state machine ([MS-SSTP] 3.2), sans-IO like the PPP layer under it.

It starts where TLS ends: :meth:`SstpClient.start` returns the ``SSTP_DUPLEX_POST``
request, :meth:`SstpClient.receive` takes whatever the TLS connection delivered and
returns bytes to send, events and timer requests. The order it walks:

    HTTP request -> 200 -> CALL_CONNECT_REQUEST -> CALL_CONNECT_ACK (crypto binding
    request: nonce + hash bitmask) -> PPP (LCP, MS-CHAPv2 or PAP) -> CALL_CONNECTED
    (crypto binding: nonce, hash of the server's certificate, Compound MAC keyed from
    the inner authentication) -> IPCP address -> IP datagrams -> CALL_DISCONNECT/ACK

Every failure ends in one :class:`Failed` event whose ``cause`` is one of
:data:`CAUSES`, so a driver never has to interpret exceptions::

    >>> from aovpn_lab.sstp.client import SstpClient, SstpClientConfig
    >>> from aovpn_lab.sstp.ppp import PppConfig
    >>> client = SstpClient(SstpClientConfig("vpn.example.net", PppConfig("u", "p"), b"cert"))
    >>> out = client.start()
    >>> out.data[0].split(b" ")[0], out.timers[0].name, client.state.name
    (b'SSTP_DUPLEX_POST', 'http', 'HTTP_SENT')
    >>> out = client.receive(b"HTTP/1.1 404 Not Found\\r\\nContent-Length: 0\\r\\n\\r\\n")
    >>> failed = out.event(Failed)
    >>> failed.cause, failed.phase, client.state.name
    ('not-sstp', 'http', 'CLOSED')
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum

from ..results import causes
from . import binding, messages
from .errors import SstpProtocolError
from .handshake import HttpResponse, HttpResponseParser, NotSstpError, duplex_post
from .messages import AttributeId, AttributeStatus, HashProtocol, MessageType
from .ppp import (
    AuthFailed,
    AuthSucceeded,
    IpAssigned,
    LinkTerminated,
    NegotiationFailed,
    Phase,
    PppConfig,
    PppSession,
    StartTimer,
    StopTimer,
)
from .ppp.events import Event as PppEvent
from .ppp.events import Outputs

# What a failed attempt is blamed on (profiles/causes.yml); the probe adds tcp-443-blocked,
# tls-failed, cert-untrusted (below this layer) and timeout (the overall deadline).
CAUSES = causes.names("sstp")

HTTP_TIMER = "http"
CONNECT_TIMER = "sstp-connect"
DISCONNECT_TIMER = "sstp-disconnect"
PPP_TERMINATE_TIMER = "ppp-terminate"


_PPP_PHASE_NAMES = {
    Phase.DEAD: "lcp",
    Phase.ESTABLISH: "lcp",
    Phase.AUTHENTICATE: "auth",
    Phase.NETWORK: "ipcp",
    Phase.RUNNING: "running",
    Phase.TERMINATE: "disconnect",
}


class ClientState(Enum):
    START = "start"
    HTTP_SENT = "waiting for the HTTP answer"
    CONNECT_REQUEST_SENT = "waiting for CALL_CONNECT_ACK"
    PPP = "PPP negotiation"  # ACK received; LCP and authentication
    CALL_CONNECTED = "CALL_CONNECTED sent, waiting for the IPCP address"
    RUNNING = "tunnel up"
    PPP_TERMINATING = "LCP Terminate-Request sent"
    DISCONNECT_SENT = "CALL_DISCONNECT sent"
    CLOSED = "closed"


# -- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpAnswered:
    response: HttpResponse


@dataclass(frozen=True)
class ConnectAcked:
    hash_bitmask: int
    hash_protocol: HashProtocol
    nonce: bytes = field(repr=False)


@dataclass(frozen=True)
class CallConnectedSent:
    hash_protocol: HashProtocol
    cert_hash: bytes = field(repr=False)
    auth_method: str = ""


@dataclass(frozen=True)
class EchoAnswered:
    """The server's SSTP ECHO_REQUEST got its ECHO_RESPONSE."""


@dataclass(frozen=True)
class Failed:
    cause: str
    detail: str
    phase: str


@dataclass(frozen=True)
class Closed:
    """The call is over; ``clean`` when CALL_DISCONNECT was answered (by either side)."""

    reason: str
    by_server: bool
    clean: bool = False


Event = HttpAnswered | ConnectAcked | CallConnectedSent | EchoAnswered | Failed | Closed | PppEvent


@dataclass
class ClientOutput(Outputs):
    data: list[bytes] = field(default_factory=list)  # SSTP packets for the TLS connection
    events: list = field(default_factory=list)
    timers: list[StartTimer | StopTimer] = field(default_factory=list)


@dataclass(repr=False)
class SstpClientConfig:
    """``host`` goes into the Host header; ``cert_der`` is the leaf the TLS layer verified."""

    host: str
    ppp: PppConfig
    cert_der: bytes
    correlation_id: uuid.UUID = field(default_factory=uuid.uuid4)
    http_seconds: float = 60.0  # [MS-SSTP] 3.2.2: 60 s for the HTTP answer
    connect_seconds: float = 60.0  # negotiation timer for CALL_CONNECT_ACK
    disconnect_seconds: float = 2.0
    allow_sha1: bool = True

    def __repr__(self) -> str:  # the PPP config holds the password
        return (f"SstpClientConfig(host={self.host!r}, user={self.ppp.username!r}, "
                f"auth={getattr(self.ppp.auth, 'value', self.ppp.auth)!r})")


class SstpClient:
    def __init__(self, config: SstpClientConfig) -> None:
        self.config = config
        self.state = ClientState.START
        self.ppp = PppSession(config.ppp)
        self.http: HttpResponse | None = None
        self.hash_protocol: HashProtocol | None = None
        self.nonce: bytes | None = None
        self.cert_hash: bytes | None = None
        self.address: IpAssigned | None = None
        self.auth_method: str | None = None
        self.server_statuses: list[str] = []  # Status Info of NAK/ABORT/DISCONNECT
        self.echo_requests = 0
        self._http = HttpResponseParser()
        self._reader = messages.SstpStreamReader()
        self._early_data: list[bytes] = []
        self._failure: Failed | None = None

    # -- driver API ----------------------------------------------------------------

    @property
    def phase(self) -> str:
        """A short name for where the call is, used in failures and timings."""
        if self.state is ClientState.PPP:
            return "auth" if self.ppp.phase is Phase.AUTHENTICATE else "lcp"
        return {
            ClientState.START: "http",
            ClientState.HTTP_SENT: "http",
            ClientState.CONNECT_REQUEST_SENT: "sstp-connect",
            ClientState.CALL_CONNECTED: "ipcp",
            ClientState.RUNNING: "running",
            ClientState.PPP_TERMINATING: "disconnect",
            ClientState.DISCONNECT_SENT: "disconnect",
            ClientState.CLOSED: "closed",
        }[self.state]

    @property
    def failure(self) -> Failed | None:
        return self._failure

    def start(self) -> ClientOutput:
        if self.state is not ClientState.START:
            raise SstpProtocolError(f"start() in state {self.state.name}")
        self.state = ClientState.HTTP_SENT
        return ClientOutput(
            data=[duplex_post(self.config.host, self.config.correlation_id)],
            timers=[StartTimer(HTTP_TIMER, self.config.http_seconds)],
        )

    def receive(self, data: bytes) -> ClientOutput:
        out = ClientOutput()
        if self.state in (ClientState.START, ClientState.CLOSED):
            return out
        if self.state is ClientState.HTTP_SENT:
            try:
                response = self._http.feed(data)
            except NotSstpError as exc:
                return self._fail("not-sstp", str(exc))
            if response is None:
                return out
            out.extend(self._on_http(response))
            data = response.rest
            if self.state is not ClientState.CONNECT_REQUEST_SENT or not data:
                return out
        try:
            packets = self._reader.feed(data)
        except SstpProtocolError as exc:
            return out.extend(self._fail("protocol-error", f"malformed SSTP from the server: {exc}"))
        for packet in packets:
            if self.state is ClientState.CLOSED:
                break
            out.extend(self._on_packet(packet))
        return out

    def timeout(self, name: str) -> ClientOutput:
        if self.state is ClientState.CLOSED:
            return ClientOutput()
        if name == HTTP_TIMER and self.state is ClientState.HTTP_SENT:
            return self._fail("timeout", f"no answer to SSTP_DUPLEX_POST within "
                              f"{self.config.http_seconds:g} s (TLS works, the HTTP layer is silent)")
        if name == CONNECT_TIMER and self.state is ClientState.CONNECT_REQUEST_SENT:
            return self._fail("timeout", f"no CALL_CONNECT_ACK within {self.config.connect_seconds:g} s")
        if name == PPP_TERMINATE_TIMER and self.state is ClientState.PPP_TERMINATING:
            return self._send_disconnect()
        if name == DISCONNECT_TIMER and self.state is ClientState.DISCONNECT_SENT:
            self.state = ClientState.CLOSED
            return ClientOutput(events=[Closed("no CALL_DISCONNECT_ACK; closed anyway", False)])
        return self._ppp(self.ppp.timeout, name)

    def send_ip(self, packet: bytes) -> ClientOutput:
        """One IPv4 datagram through the tunnel (only when RUNNING)."""
        if self.state is not ClientState.RUNNING:
            raise SstpProtocolError(f"cannot send IP in state {self.state.name}")
        return ClientOutput(data=[bytes(messages.data_packet(self.ppp.send_datagram(packet)))])

    def disconnect(self, reason: str = "done") -> ClientOutput:
        """End the call: LCP Terminate-Request, then CALL_DISCONNECT, then wait for its ACK."""
        if self.state in (ClientState.CLOSED, ClientState.DISCONNECT_SENT,
                          ClientState.PPP_TERMINATING):
            return ClientOutput()
        if self.state in (ClientState.START, ClientState.HTTP_SENT):
            self.state = ClientState.CLOSED
            return ClientOutput(events=[Closed(f"{reason}: no SSTP call yet, TLS closed", False)])
        if self.state is ClientState.CONNECT_REQUEST_SENT or self.ppp.phase in (Phase.DEAD,
                                                                               Phase.TERMINATE):
            return self._send_disconnect()
        self.state = ClientState.PPP_TERMINATING
        out = self._ppp(self.ppp.close, reason)
        out.timers.append(StartTimer(PPP_TERMINATE_TIMER, 1.0))
        return out

    def connection_lost(self, detail: str = "the server closed the connection") -> ClientOutput:
        """The TLS connection ended (EOF, reset, TLS alert) without a clean disconnect."""
        if self.state is ClientState.CLOSED:
            return ClientOutput()
        if self.state in (ClientState.PPP_TERMINATING, ClientState.DISCONNECT_SENT):
            self.state = ClientState.CLOSED
            return ClientOutput(events=[Closed(f"{detail} while disconnecting", True)])
        if self.state is ClientState.HTTP_SENT:
            return self._fail("not-sstp", f"{detail} instead of answering SSTP_DUPLEX_POST")
        if self.state is ClientState.CALL_CONNECTED:
            return self._fail("crypto-binding-rejected",
                              f"{detail} right after CALL_CONNECTED: the server refused the "
                              "crypto binding (or the certificate it expects differs)")
        if self.state is ClientState.PPP and self.ppp.phase is Phase.AUTHENTICATE:
            return self._fail("auth-failed", f"{detail} during PPP authentication")
        return self._fail("protocol-error", f"{detail} ({self.state.value})")

    # -- HTTP ----------------------------------------------------------------------

    def _on_http(self, response: HttpResponse) -> ClientOutput:
        self.http = response
        out = ClientOutput(events=[HttpAnswered(response)], timers=[StopTimer(HTTP_TIMER)])
        if not response.is_sstp_accept:
            return out.extend(self._fail(
                "not-sstp", f"SSTP_DUPLEX_POST answered with {response.describe()}, not 200"))
        self.state = ClientState.CONNECT_REQUEST_SENT
        out.data.append(bytes(messages.call_connect_request()))
        out.timers.append(StartTimer(CONNECT_TIMER, self.config.connect_seconds))
        return out

    # -- SSTP packets --------------------------------------------------------------

    def _on_packet(self, packet: messages.SSTP) -> ClientOutput:
        if not packet.is_control:
            frame = bytes(packet.payload)
            if self.state is ClientState.CONNECT_REQUEST_SENT:
                self._early_data.append(frame)  # PPP racing the ACK; replayed after it
                return ClientOutput()
            if self.state in (ClientState.PPP, ClientState.CALL_CONNECTED, ClientState.RUNNING,
                              ClientState.PPP_TERMINATING):
                return self._ppp(self.ppp.receive, frame)
            return ClientOutput()
        control = packet[messages.SstpControl]
        kind = control.message_type
        if kind == MessageType.ECHO_REQUEST:
            self.echo_requests += 1
            return ClientOutput(data=[bytes(messages.echo_response())], events=[EchoAnswered()])
        if kind == MessageType.ECHO_RESPONSE:
            return ClientOutput()
        if kind == MessageType.CALL_CONNECT_ACK:
            return self._on_connect_ack(control)
        if kind == MessageType.CALL_CONNECT_NAK:
            statuses = self._statuses(control)
            return self._fail("protocol-error", f"server sent CALL_CONNECT_NAK ({statuses})")
        if kind == MessageType.CALL_ABORT:
            return self._on_abort(control)
        if kind == MessageType.CALL_DISCONNECT:
            return self._on_disconnect(control)
        if kind == MessageType.CALL_DISCONNECT_ACK:
            if self.state is ClientState.DISCONNECT_SENT:
                self.state = ClientState.CLOSED
                return ClientOutput(events=[Closed("CALL_DISCONNECT acknowledged", False, True)],
                                    timers=[StopTimer(DISCONNECT_TIMER)])
            return ClientOutput()
        return self._fail("protocol-error",
                          f"server sent {MessageType(kind).name}, which only a client sends")

    def _on_connect_ack(self, control: messages.SstpControl) -> ClientOutput:
        if self.state is not ClientState.CONNECT_REQUEST_SENT:
            return ClientOutput()  # a duplicate; [MS-SSTP] says ignore
        request = control.attribute(messages.CryptoBindingRequest)
        bitmask = int(request.hash_protocol_bitmask)
        try:
            self.hash_protocol = binding.choose_hash_protocol(
                bitmask, allow_sha1=self.config.allow_sha1)
        except SstpProtocolError as exc:
            return self._fail("protocol-error", str(exc))
        self.nonce = bytes(request.nonce)
        self.cert_hash = binding.certificate_hash(self.config.cert_der, self.hash_protocol)
        self.state = ClientState.PPP
        out = ClientOutput(
            events=[ConnectAcked(bitmask, self.hash_protocol, self.nonce)],
            timers=[StopTimer(CONNECT_TIMER)],
        )
        out.extend(self._ppp(self.ppp.start))
        early, self._early_data = self._early_data, []
        for frame in early:
            if self.state is ClientState.CLOSED:
                break
            out.extend(self._ppp(self.ppp.receive, frame))
        return out

    def _statuses(self, control: messages.SstpControl) -> str:
        found = []
        for attr in control.attributes:
            if isinstance(attr, messages.StatusInfo):
                about = {a.value: a.name for a in AttributeId}.get(attr.attrib_id, str(attr.attrib_id))
                status = {s.value: s.name for s in AttributeStatus}.get(attr.status, str(attr.status))
                found.append(f"{status} about {about}")
        self.server_statuses.extend(found)
        return ", ".join(found) or "no Status Info"

    def _on_abort(self, control: messages.SstpControl) -> ClientOutput:
        statuses = self._statuses(control)
        if self.state is ClientState.CALL_CONNECTED:
            return self._fail("crypto-binding-rejected",
                              f"server sent CALL_ABORT after CALL_CONNECTED ({statuses})")
        if self.state in (ClientState.PPP_TERMINATING, ClientState.DISCONNECT_SENT):
            self.state = ClientState.CLOSED
            return ClientOutput(events=[Closed(f"server aborted ({statuses})", True)])
        if self.state is ClientState.PPP and self.ppp.phase is Phase.AUTHENTICATE:
            return self._fail("auth-failed", f"server sent CALL_ABORT during authentication "
                              f"({statuses})")
        return self._fail("protocol-error", f"server sent CALL_ABORT ({statuses}) in "
                          f"state '{self.state.value}'")

    def _on_disconnect(self, control: messages.SstpControl) -> ClientOutput:
        statuses = self._statuses(control)
        out = ClientOutput(data=[bytes(messages.call_disconnect_ack())])
        if self.state in (ClientState.PPP_TERMINATING, ClientState.DISCONNECT_SENT):
            self.state = ClientState.CLOSED
            return out.extend(ClientOutput(events=[Closed("server disconnected too", True, True)],
                                           timers=[StopTimer(DISCONNECT_TIMER)]))
        if self.state is ClientState.CALL_CONNECTED:
            failure = self._fail("crypto-binding-rejected",
                                 f"server sent CALL_DISCONNECT right after CALL_CONNECTED ({statuses})")
        elif self.state is ClientState.PPP and self.ppp.phase is Phase.AUTHENTICATE:
            failure = self._fail("auth-failed",
                                 f"server sent CALL_DISCONNECT during authentication ({statuses})")
        else:
            failure = self._fail("protocol-error", f"server sent CALL_DISCONNECT ({statuses}) in "
                                 f"state '{self.state.value}'")
        return out.extend(failure)

    # -- PPP -----------------------------------------------------------------------

    def _ppp(self, method, *args) -> ClientOutput:
        """Call into the PPP session and translate what it returns.

        Frames become SSTP data packets; CALL_CONNECTED goes out before anything that
        follows a successful authentication (IPCP's first request). Failures are blamed
        on the PPP phase the frame or timer arrived in, not the one PPP moved to.
        """
        before = self.ppp.phase
        ppp_out = method(*args)
        out = ClientOutput(timers=list(ppp_out.timers), events=list(ppp_out.events))
        auth = next((e for e in ppp_out.events if isinstance(e, AuthSucceeded)), None)
        if auth is not None and self.state is ClientState.PPP:
            connected = self._send_call_connected(auth)
            out.data.extend(connected.data)
            out.events.extend(connected.events)
        out.data.extend(bytes(messages.data_packet(frame)) for frame in ppp_out.frames)
        for event in ppp_out.events:
            if self.state is ClientState.CLOSED:
                break
            out.extend(self._on_ppp_event(event, before))
        return out

    def _send_call_connected(self, auth: AuthSucceeded) -> ClientOutput:
        self.auth_method = auth.method
        packet = binding.build_call_connected(self.hash_protocol, self.nonce, self.cert_hash, auth.hlak)
        self.state = ClientState.CALL_CONNECTED
        return ClientOutput(data=[bytes(packet)],
                            events=[CallConnectedSent(self.hash_protocol, self.cert_hash, auth.method)])

    def _on_ppp_event(self, event, before: Phase) -> ClientOutput:
        phase = _PPP_PHASE_NAMES.get(before, "lcp")
        if isinstance(event, AuthFailed):
            text = f"{event.method}: {event.reason}"
            if event.message:
                text += f" (server: {event.message})"
            return self._fail("auth-failed", text, keep_open=True, phase="auth")
        if isinstance(event, IpAssigned) and self.state is ClientState.CALL_CONNECTED:
            self.address = event
            self.state = ClientState.RUNNING
            return ClientOutput()
        if isinstance(event, NegotiationFailed) and self.state not in (
                ClientState.PPP_TERMINATING, ClientState.DISCONNECT_SENT):
            return self._fail("protocol-error", f"{event.protocol} negotiation failed: {event.reason}",
                              keep_open=True, phase=phase)
        if isinstance(event, LinkTerminated) and event.protocol == "LCP":
            if self.state is ClientState.PPP_TERMINATING:
                return self._send_disconnect()
            if self.state is ClientState.PPP and before is Phase.AUTHENTICATE:
                return self._fail("auth-failed", f"server ended the PPP link during "
                                  f"authentication: {event.reason}", keep_open=True, phase="auth")
            if self.state is ClientState.CALL_CONNECTED:
                return self._fail("crypto-binding-rejected", "server ended the PPP link right "
                                  f"after CALL_CONNECTED: {event.reason}", keep_open=True,
                                  phase=phase)
            if self.state is not ClientState.DISCONNECT_SENT:
                return self._fail("protocol-error", f"server ended the PPP link: {event.reason}",
                                  keep_open=True, phase=phase)
        return ClientOutput()

    # -- endings -------------------------------------------------------------------

    def _send_disconnect(self) -> ClientOutput:
        self.state = ClientState.DISCONNECT_SENT
        return ClientOutput(
            data=[bytes(messages.call_disconnect())],
            timers=[StopTimer(PPP_TERMINATE_TIMER),
                    StartTimer(DISCONNECT_TIMER, self.config.disconnect_seconds)],
        )

    def _fail(self, cause: str, detail: str, *, keep_open: bool = False,
              phase: str | None = None) -> ClientOutput:
        """Record the first failure. ``keep_open``: the call still exists on the server, so
        CALL_DISCONNECT goes out and the driver waits for its ACK; otherwise it is over."""
        failed = Failed(cause, detail, phase or self.phase)
        if self._failure is None:
            self._failure = failed
        out = ClientOutput(events=[failed])
        if keep_open and self.state not in (ClientState.CLOSED, ClientState.DISCONNECT_SENT):
            out.extend(self._send_disconnect())
        else:
            self.state = ClientState.CLOSED
        return out
