"""One SSTP connection attempt, and why it failed when it did.

The SSTP counterpart of :mod:`aovpn_lab.ike.probe`, used by the conformance suite and by
``aovpn-lab probe sstp``: TCP, TLS (chain and name verified, leaf certificate hashed for
the crypto binding), the HTTP step, SSTP call setup, PPP (LCP, MS-CHAPv2 or PAP),
CALL_CONNECTED with the crypto binding, IPCP, optionally one ICMP echo through the
tunnel, and a clean CALL_DISCONNECT. The result names a single cause and carries the
evidence: TLS version and cipher, certificate hashes, per-phase timings, a trace.

    >>> result = probe_sstp("203.0.113.201", user="alice@LAB", password=secret,
    ...                     ca_file="ca.pem", sni="sstp.example.net",
    ...                     ping="198.19.2.1")                      # doctest: +SKIP
    >>> result.connected, result.cause, result.ip, result.ping_ok     # doctest: +SKIP
    (True, 'none', '198.19.2.10', True)

A failed attempt reads like this (``to_json()`` gives the same as a dict)::

    >>> r = SstpProbeResult(connected=False, cause="tcp-443-blocked", server="203.0.113.201",
    ...                     port=443, elapsed_ms=2003, auth="mschapv2",
    ...                     detail="no answer to TCP SYN to 203.0.113.201:443 within 2 s")
    >>> print(r.summary())
    SSTP to 203.0.113.201:443: FAILED, cause tcp-443-blocked in 2003 ms
      no answer to TCP SYN to 203.0.113.201:443 within 2 s
      fix: allow TCP 443 outbound (the one port SSTP needs), and check that the server listens on it

Every wait is bounded: one deadline (``timeout``) covers the whole attempt up to the
tunnel test, and the goodbye (LCP Terminate, CALL_DISCONNECT/ACK) gets at most
``DISCONNECT_GRACE`` seconds more. The password never leaves the PPP layer: it is not in
the result, its repr or the trace.
"""
from __future__ import annotations

import os
import ssl
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..results import Phase, probe_result
from .client import (
    CAUSES,
    CallConnectedSent,
    ClientState,
    Closed,
    ConnectAcked,
    EchoAnswered,
    Failed,
    HttpAnswered,
    SstpClient,
    SstpClientConfig,
)
from .errors import SstpProtocolError
from .ppp import (
    AuthMethod,
    AuthSucceeded,
    DatagramReceived,
    FrameDiscarded,
    IpAssigned,
    LinkEstablished,
    PppConfig,
    StartTimer,
    StopTimer,
)
from .transport import TlsConnection, TransportFailure, open_tls

AUTH_CHOICES = {"mschapv2": AuthMethod.MSCHAPV2, "pap": AuthMethod.PAP}
PING_INTERVAL = 1.0
PING_TRIES = 3
DISCONNECT_GRACE = 2.0  # after a failure or success, time left for a polite goodbye


@dataclass
class SstpProbeResult(probe_result.ProbeResult):
    protocol = "sstp"
    server: str
    port: int
    elapsed_ms: int
    auth: str
    user: str = ""
    sni: str | None = None
    tls_version: str = ""
    tls_cipher: str = ""
    cert_sha256: str = ""
    cert_sha1: str = ""
    cert_subject: str = ""
    http_status: int | None = None
    http_server: str = ""
    correlation_id: str = ""
    hash_protocol: str = ""
    crypto_binding_sent: bool = False
    auth_method: str = ""
    ip: str = ""
    peer_ip: str = ""
    dns: list[str] = field(default_factory=list)
    connect_to_ip_ms: int | None = None
    connect_to_ping_ms: int | None = None
    disconnect: str = ""
    echo_requests: int = 0
    failed_phase: str = ""

    def title(self) -> str:
        return f"SSTP to {self.server}:{self.port}" + (f" (SNI {self.sni})" if self.sni else "")

    def summary_rows(self) -> list[tuple[str, Any]]:
        return [
            ("TLS", self.tls_version and f"{self.tls_version} {self.tls_cipher}"),
            ("certificate", self.cert_sha256 and f"{self.cert_subject or '?'} sha256 {self.cert_sha256}"),
            ("HTTP", self.http_status is not None and f"{self.http_status}"
             + (f" ({self.http_server})" if self.http_server else "")),
            ("crypto binding", self.hash_protocol and self.hash_protocol
             + (", CALL_CONNECTED sent" if self.crypto_binding_sent else "")),
            ("PPP auth", self.auth_method and f"{self.auth_method} as {self.user}"),
            ("tunnel IP", self.ip and self.ip + (f" (peer {self.peer_ip})" if self.peer_ip else "")),
        ]

    def summary_lines(self) -> list[str]:
        lines = super().summary_lines() + self.ping_line() + self.phase_lines()
        return lines + ([f"  disconnect     {self.disconnect}"] if self.disconnect else [])


class _Clock:
    def __init__(self, result: SstpProbeResult) -> None:
        self.began = time.monotonic()
        self.result = result
        self.open: dict[str, Phase] = {}

    def now_ms(self) -> int:
        return int((time.monotonic() - self.began) * 1000)

    def begin(self, name: str, at_ms: int | None = None) -> None:
        if name in self.open or self.result.phase(name):
            return
        timing = Phase(name, self.now_ms() if at_ms is None else at_ms)
        self.open[name] = timing
        self.result.phases.append(timing)

    def end(self, name: str, ok: bool = True) -> None:
        timing = self.open.pop(name, None)
        if timing is not None:
            timing.ms = self.now_ms() - timing.start_ms
            timing.ok = ok

    def fail_open(self) -> None:
        for name in list(self.open):
            self.end(name, ok=False)

    def log(self, text: str) -> None:
        self.result.log.append(f"{self.now_ms():>6} ms  {text}")


def probe_sstp(server: str, port: int = 443, *, user: str, password: str,
               ca_file: str | None = None, sni: str | None = None, ping: str | None = None,
               timeout: float = 15.0, auth: str = "mschapv2", netns: str | None = None,
               source: str | None = None, syn_timeout: float | None = None) -> SstpProbeResult:
    """Connect once, report, disconnect. ``netns``: run from that network namespace;
    ``source``: the local address to connect from; ``syn_timeout``: give up an unanswered
    TCP SYN after that long (the give-up rule's ceiling: nothing has answered yet to
    measure a round trip on, docs/timing.md)."""
    if auth not in AUTH_CHOICES:
        raise ValueError(f"auth must be one of {sorted(AUTH_CHOICES)}, not {auth!r}")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if netns:
        from ..ike.craft_netns import run_in_netns
        return run_in_netns(netns, _probe, server, port, user, password, ca_file, sni, ping,
                            timeout, auth, source, syn_timeout, netns_timeout=timeout + 15)
    return _probe(server, port, user, password, ca_file, sni, ping, timeout, auth, source, syn_timeout)


def _probe(server: str, port: int, user: str, password: str, ca_file: str | None,
           sni: str | None, ping: str | None, timeout: float, auth: str,
           source: str | None = None, syn_timeout: float | None = None) -> SstpProbeResult:
    result = SstpProbeResult(connected=False, cause="timeout", server=server, port=port,
                             elapsed_ms=0, auth=auth, user=user, sni=sni, ping=ping)
    clock = _Clock(result)
    deadline = clock.began + timeout
    clock.begin("tcp")
    try:
        conn = open_tls(server, port, ca_file=ca_file, sni=sni, timeout=timeout, source=source,
                        syn_timeout=syn_timeout)
    except TransportFailure as failure:
        _transport_failed(failure, result, clock)
        result.elapsed_ms = clock.now_ms()
        return result
    _transport_opened(conn, result, clock)
    try:
        _Session(conn, result, clock, deadline, PppConfig(
            user, password, auth=AUTH_CHOICES[auth], request_dns=True), ping).run()
    finally:
        conn.close()
    result.elapsed_ms = clock.now_ms()
    return result


# -- TCP and TLS --------------------------------------------------------------------

def _transport_failed(failure: TransportFailure, result: SstpProbeResult, clock: _Clock) -> None:
    if failure.phase == "tls":
        tls_start = max(clock.now_ms() - failure.elapsed_ms, 0)
        tcp = clock.open.pop("tcp")
        tcp.ms, tcp.ok = tls_start - tcp.start_ms, True
        clock.begin("tls", at_ms=tls_start)
    clock.fail_open()
    result.cause, result.detail, result.failed_phase = failure.cause, failure.detail, failure.phase
    if failure.evidence:
        result.cert_sha256 = failure.evidence.get("sha256", "")
        result.cert_sha1 = failure.evidence.get("sha1", "")
        result.cert_subject = failure.evidence.get("subject", "")
    clock.log(f"{failure.phase}: {failure.detail}")


def _transport_opened(conn: TlsConnection, result: SstpProbeResult, clock: _Clock) -> None:
    # TCP and TLS timings come from the transport itself.
    tcp = result.phase("tcp")
    tcp.ms, tcp.ok = conn.tcp_ms, True
    clock.open.pop("tcp", None)
    result.phases.append(Phase("tls", conn.tcp_ms, conn.tls_ms, True))
    result.tls_version, result.tls_cipher = conn.version, conn.cipher
    result.cert_sha256, result.cert_sha1 = conn.certificate.sha256, conn.certificate.sha1
    result.cert_subject = conn.certificate.subject
    clock.log(f"TLS {conn.version} {conn.cipher}, certificate {conn.certificate.subject} "
              f"sha256 {conn.certificate.sha256}")


# -- the data check -------------------------------------------------------------------

class _Pinger:
    """ICMP echoes through the tunnel to one address: the next one, and whether a
    datagram is the answer to one of them."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.id = int.from_bytes(os.urandom(2), "big")
        self.seq = 0
        self.sent_at = 0.0  # the first echo: the ping time counts from it
        self.next = 0.0

    def echo(self, source: str) -> bytes:
        from scapy.layers.inet import ICMP, IP
        self.seq += 1
        packet = IP(src=source, dst=self.target) / ICMP(type=8, id=self.id, seq=self.seq) / (b"aovpn-lab sstp " * 2)
        now = time.monotonic()
        self.sent_at = self.sent_at or now
        self.next = now + PING_INTERVAL
        return bytes(packet)

    def answers(self, packet) -> bool:
        from scapy.layers.inet import ICMP
        return (packet.haslayer(ICMP) and packet.src == self.target and packet[ICMP].type == 0
                and packet[ICMP].id == self.id)


# -- the SSTP call ------------------------------------------------------------------

class _Session:
    """One SSTP call over an open TLS connection: drives :class:`SstpClient` (its timers,
    the socket, the overall deadline and the bounded goodbye) and records what it says."""

    def __init__(self, conn: TlsConnection, result: SstpProbeResult, clock: _Clock, deadline: float,
                 ppp: PppConfig, ping: str | None) -> None:
        remaining = max(deadline - time.monotonic(), 0.1)
        self.client = SstpClient(SstpClientConfig(
            host=conn.server_name, cert_der=conn.certificate.der,
            ppp=replace(ppp, restart_seconds=min(3.0, remaining), auth_wait_seconds=min(30.0, remaining)),
            http_seconds=min(60.0, remaining), connect_seconds=min(60.0, remaining),
            disconnect_seconds=DISCONNECT_GRACE,
        ))
        result.correlation_id = str(self.client.config.correlation_id)
        self.sock, self.result, self.clock, self.deadline = conn.sock, result, clock, deadline
        self.pinger = _Pinger(ping) if ping else None
        self.timers: dict[str, float] = {}
        self.connected_at: float | None = None
        self.grace_deadline: float | None = None  # once ending, a bounded wait for the goodbye
        self.record = _Recorder(self)

    def run(self) -> None:
        self.clock.begin("http")
        try:
            self.send(self.client.start())
            while self.client.state is not ClientState.CLOSED and self._turn():
                pass
        except (ssl.SSLError, OSError) as exc:
            # sendall() failed: the server went away while we were talking.
            if self.client.state is not ClientState.CLOSED:
                for event in self.client.connection_lost(f"sending failed ({exc.__class__.__name__})").events:
                    self.record(event)
        except SstpProtocolError as exc:
            self.record(Failed("protocol-error", str(exc), self.client.phase))
        self._conclude()

    def send(self, out) -> None:
        for timer in out.timers:
            if isinstance(timer, StartTimer):
                self.timers[timer.name] = time.monotonic() + timer.seconds
            elif isinstance(timer, StopTimer):
                self.timers.pop(timer.name, None)
        if out.data:
            self.sock.settimeout(max(self.deadline + DISCONNECT_GRACE - time.monotonic(), 0.5))
            for chunk in out.data:
                self.sock.sendall(chunk)
        for event in out.events:
            self.record(event)

    def finish(self, reason: str) -> None:
        if self.grace_deadline is not None:
            return
        self.grace_deadline = min(time.monotonic() + DISCONNECT_GRACE, self.deadline + DISCONNECT_GRACE)
        self.clock.begin("disconnect")
        self.clock.log(f"disconnecting: {reason}")
        try:
            self.send(self.client.disconnect(reason))
        except (ssl.SSLError, OSError) as exc:  # the peer is gone: nothing to wait for
            self.clock.log(f"goodbye not sent ({exc.__class__.__name__})")
            self.grace_deadline = time.monotonic()

    def send_ping(self) -> None:
        packet = self.pinger.echo(self.client.address.address)
        self.clock.log(f"ICMP echo #{self.pinger.seq} to {self.pinger.target} through the tunnel")
        self.send(self.client.send_ip(packet))

    def pinging(self) -> bool:
        return (self.pinger is not None and self.client.state is ClientState.RUNNING
                and self.result.ping_ok is None)

    def _turn(self) -> bool:
        """Timers, the ping, the deadlines, then one read; False once the call is over."""
        now = time.monotonic()
        for name, due in sorted(self.timers.items(), key=lambda item: item[1]):
            if due <= now and self.timers.get(name) == due:
                self.timers.pop(name, None)
                self.send(self.client.timeout(name))
        if self.client.state is ClientState.CLOSED:
            return False
        if self.pinging() and self.pinger.next and now >= self.pinger.next:
            self._ping_again()
        if self.grace_deadline is not None and now >= self.grace_deadline:
            self.clock.end("disconnect", ok=False)
            self.result.disconnect = self.result.disconnect or "no answer to CALL_DISCONNECT; closed"
            return False
        if self.grace_deadline is None and now >= self.deadline:
            self._deadline_reached()
            return True
        return self._read()

    def _ping_again(self) -> None:
        result = self.result
        if self.pinger.seq < PING_TRIES:
            self.send_ping()
            return
        result.ping_ok = False
        result.connected, result.cause = False, "timeout"
        result.failed_phase = "ping"
        result.detail = (f"tunnel up with {result.ip}, but {PING_TRIES} ICMP echoes "
                         f"to {self.pinger.target} through it got no answer")
        self.clock.fail_open()
        self.finish("ping unanswered")

    def _deadline_reached(self) -> None:
        stage = self.client.phase
        self.result.cause, self.result.failed_phase = "timeout", stage
        self.result.detail = (f"overall deadline of {self.deadline - self.clock.began:.1f} s reached in "
                              f"phase {stage} ({self.client.state.value})")
        self.clock.fail_open()
        self.clock.log(self.result.detail)
        self.finish("deadline")

    def _read(self) -> bool:
        waits = [*self.timers.values(), self.deadline if self.grace_deadline is None else self.grace_deadline]
        if self.pinging():
            waits.append(self.pinger.next)
        self.sock.settimeout(max(min(waits) - time.monotonic(), 0.001))
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, ssl.SSLWantReadError):
            return True
        except (ssl.SSLError, OSError) as exc:
            self.send(self.client.connection_lost(f"the connection failed ({exc.__class__.__name__}: "
                                                  f"{getattr(exc, 'reason', None) or exc})"))
            return False
        if not data:
            self.send(self.client.connection_lost())
            return False
        self.send(self.client.receive(data))
        return True

    def _conclude(self) -> None:
        result, client = self.result, self.client
        self.clock.fail_open()
        if not result.connected and not result.failed_phase:
            result.failed_phase = client.phase
            result.detail = result.detail or f"the attempt ended in phase {client.phase} without a result"
        result.echo_requests = client.echo_requests
        if result.connected and self.connected_at is not None and not result.disconnect:
            result.disconnect = "connection closed without CALL_DISCONNECT_ACK"
        assert result.cause in CAUSES, result.cause


class _Recorder:
    """What each client event means for the result: phase timings, evidence, the trace."""

    def __init__(self, session: _Session) -> None:
        self.session, self.result, self.clock = session, session.result, session.clock
        self.handlers = {
            HttpAnswered: self.http, ConnectAcked: self.connect_acked, LinkEstablished: self.lcp_opened,
            AuthSucceeded: self.authenticated, CallConnectedSent: self.call_connected, IpAssigned: self.address,
            DatagramReceived: self.datagram, FrameDiscarded: self.discarded, EchoAnswered: self.echo,
            Failed: self.failed, Closed: self.closed,
        }

    def __call__(self, event) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    # SSTP control: the HTTP step and call setup
    def http(self, event: HttpAnswered) -> None:
        response = event.response
        self.result.http_status = response.status
        self.result.http_server = response.header("server") or ""
        self.clock.end("http", ok=response.is_sstp_accept)
        self.clock.log(f"HTTP answer: {response.describe()}")
        if response.is_sstp_accept:
            self.clock.begin("sstp-connect")

    def connect_acked(self, event: ConnectAcked) -> None:
        self.result.hash_protocol = event.hash_protocol.name
        self.clock.end("sstp-connect")
        self.clock.begin("lcp")
        self.clock.log(f"CALL_CONNECT_ACK: hash bitmask 0x{event.hash_bitmask:02x}, "
                       f"using {event.hash_protocol.name}")

    # PPP: LCP and authentication
    def lcp_opened(self, event: LinkEstablished) -> None:
        self.clock.end("lcp")
        self.clock.begin("auth")
        self.clock.log(f"LCP opened, authentication: {event.auth_protocol or 'none'}")

    def authenticated(self, event: AuthSucceeded) -> None:
        self.result.auth_method = event.method
        self.clock.end("auth")
        self.clock.log(f"{event.method} accepted" + (f": {event.message}" if event.message else ""))

    # the crypto binding, then IPCP
    def call_connected(self, event: CallConnectedSent) -> None:
        self.result.crypto_binding_sent = True
        self.clock.begin("ipcp")
        self.clock.log(f"CALL_CONNECTED sent ({event.hash_protocol.name} binding, "
                       f"cert hash {event.cert_hash.hex()[:16]}...)")

    def address(self, event: IpAssigned) -> None:
        result = self.result
        result.ip, result.peer_ip = event.address, event.peer_address or ""
        result.dns = list(event.dns_servers)
        result.connect_to_ip_ms = self.clock.now_ms()
        self.clock.end("ipcp")
        self.clock.log(f"IPCP: address {event.address}, peer {event.peer_address}")
        self.session.connected_at = time.monotonic()
        if self.session.pinger is not None:
            self.clock.begin("ping")
            self.session.send_ping()
        else:
            result.connected, result.cause = True, "none"
            self.session.finish("tunnel up")

    # the data check
    def datagram(self, event: DatagramReceived) -> None:
        from scapy.layers.inet import ICMP, IP
        try:
            packet = IP(event.payload)
        except Exception:  # noqa: BLE001 - scapy on arbitrary bytes; evidence only
            self.clock.log(f"undecodable IP datagram ({len(event.payload)} bytes)")
            return
        pinger, result = self.session.pinger, self.result
        if pinger is not None and result.ping_ok is None and pinger.answers(packet):
            result.ping_ok = True
            result.ping_ms = int((time.monotonic() - pinger.sent_at) * 1000)
            result.connect_to_ping_ms = self.clock.now_ms()
            self.clock.end("ping")
            self.clock.log(f"ICMP echo reply from {packet.src} (seq {packet[ICMP].seq})")
            result.connected, result.cause = True, "none"
            self.session.finish("ping answered")
        else:
            self.clock.log(f"IP datagram {packet.src} -> {packet.dst} proto {packet.proto} ignored")

    def discarded(self, event: FrameDiscarded) -> None:
        self.clock.log(f"ignored a {event.protocol} frame: {event.reason}")

    def echo(self, event: EchoAnswered) -> None:
        self.clock.log("SSTP ECHO_REQUEST answered")

    # endings
    def failed(self, event: Failed) -> None:
        result = self.result
        if not result.failed_phase and not result.connected:
            result.cause, result.detail, result.failed_phase = event.cause, event.detail, event.phase
            self.clock.fail_open()
            self.clock.log(f"FAILED ({event.cause}) in {event.phase}: {event.detail}")
            self.session.finish(event.cause)

    def closed(self, event: Closed) -> None:
        self.clock.end("disconnect", ok=True)
        self.result.disconnect = ("clean" if event.clean else "unclean") + (
            " (server)" if event.by_server else "") + f": {event.reason}"
        self.clock.log(f"call closed: {event.reason}")
