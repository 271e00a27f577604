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

Every wait is bounded: one deadline (``timeout``) covers the whole attempt up to the
tunnel test, and the goodbye (LCP Terminate, CALL_DISCONNECT/ACK) gets at most
``DISCONNECT_GRACE`` seconds more. The password never leaves the PPP layer: it is not in
the result, its repr or the trace.
"""
from __future__ import annotations

import os
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any

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
from .transport import TransportFailure, open_tls

AUTH_CHOICES = {"mschapv2": AuthMethod.MSCHAPV2, "pap": AuthMethod.PAP}
PING_INTERVAL = 1.0
PING_TRIES = 3
DISCONNECT_GRACE = 2.0  # after a failure or success, time left for a polite goodbye


@dataclass
class PhaseTiming:
    name: str
    start_ms: int
    ms: int | None = None
    ok: bool | None = None


@dataclass
class SstpProbeResult:
    connected: bool
    cause: str
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
    ping: str | None = None
    ping_ok: bool | None = None
    ping_ms: int | None = None
    connect_to_ip_ms: int | None = None
    connect_to_ping_ms: int | None = None
    disconnect: str = ""
    echo_requests: int = 0
    failed_phase: str = ""
    detail: str = ""
    phases: list[PhaseTiming] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def phase(self, name: str) -> PhaseTiming | None:
        return next((p for p in self.phases if p.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        where = f"{self.server}:{self.port}" + (f" (SNI {self.sni})" if self.sni else "")
        head = (f"SSTP to {where}: "
                + ("CONNECTED" if self.connected else f"FAILED, cause {self.cause}")
                + f" in {self.elapsed_ms} ms")
        lines = [head]
        if self.tls_version:
            lines.append(f"  TLS            {self.tls_version} {self.tls_cipher}")
        if self.cert_sha256:
            lines.append(f"  certificate    {self.cert_subject or '?'} sha256 {self.cert_sha256}")
        if self.http_status is not None:
            lines.append(f"  HTTP           {self.http_status}"
                         + (f" ({self.http_server})" if self.http_server else ""))
        if self.hash_protocol:
            lines.append(f"  crypto binding {self.hash_protocol}"
                         + (", CALL_CONNECTED sent" if self.crypto_binding_sent else ""))
        if self.auth_method:
            lines.append(f"  PPP auth       {self.auth_method} as {self.user}")
        if self.ip:
            lines.append(f"  tunnel IP      {self.ip}" + (f" (peer {self.peer_ip})" if self.peer_ip else ""))
        if self.ping and self.ping_ok is not None:
            lines.append(f"  ping {self.ping} through the tunnel: "
                         + (f"ok in {self.ping_ms} ms" if self.ping_ok else "FAILED"))
        for p in self.phases:
            state = "ok" if p.ok else ("FAILED" if p.ok is False else "unfinished")
            took = f"{p.ms} ms" if p.ms is not None else "-"
            lines.append(f"  {p.name:<14} {state:<10} at {p.start_ms:>5} ms, took {took}")
        if self.disconnect:
            lines.append(f"  disconnect     {self.disconnect}")
        if self.detail:
            lines.append(f"  {self.detail}")
        return "\n".join(lines)


class _Clock:
    def __init__(self, result: SstpProbeResult) -> None:
        self.began = time.monotonic()
        self.result = result
        self.open: dict[str, PhaseTiming] = {}

    def now_ms(self) -> int:
        return int((time.monotonic() - self.began) * 1000)

    def begin(self, name: str, at_ms: int | None = None) -> None:
        if name in self.open or self.result.phase(name):
            return
        timing = PhaseTiming(name, self.now_ms() if at_ms is None else at_ms)
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
               ) -> SstpProbeResult:
    """Connect once, report, disconnect. ``netns``: run from that network namespace."""
    if auth not in AUTH_CHOICES:
        raise ValueError(f"auth must be one of {sorted(AUTH_CHOICES)}, not {auth!r}")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if netns:
        from ..ike.craft_netns import run_in_netns
        return run_in_netns(netns, _probe, server, port, user, password, ca_file, sni, ping,
                            timeout, auth, netns_timeout=timeout + 15)
    return _probe(server, port, user, password, ca_file, sni, ping, timeout, auth)


def _probe(server: str, port: int, user: str, password: str, ca_file: str | None,
           sni: str | None, ping: str | None, timeout: float, auth: str) -> SstpProbeResult:
    result = SstpProbeResult(connected=False, cause="timeout", server=server, port=port,
                             elapsed_ms=0, auth=auth, user=user, sni=sni, ping=ping)
    clock = _Clock(result)
    deadline = clock.began + timeout
    clock.begin("tcp")
    try:
        conn = open_tls(server, port, ca_file=ca_file, sni=sni, timeout=timeout)
    except TransportFailure as failure:
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
        result.elapsed_ms = clock.now_ms()
        return result
    # TCP and TLS timings come from the transport itself.
    tcp = result.phase("tcp")
    tcp.ms, tcp.ok = conn.tcp_ms, True
    clock.open.pop("tcp", None)
    result.phases.append(PhaseTiming("tls", conn.tcp_ms, conn.tls_ms, True))
    result.tls_version, result.tls_cipher = conn.version, conn.cipher
    result.cert_sha256, result.cert_sha1 = conn.certificate.sha256, conn.certificate.sha1
    result.cert_subject = conn.certificate.subject
    clock.log(f"TLS {conn.version} {conn.cipher}, certificate {conn.certificate.subject} "
              f"sha256 {conn.certificate.sha256}")
    try:
        _session(conn, result, clock, deadline, user, password, ping, auth)
    finally:
        conn.close()
    result.elapsed_ms = clock.now_ms()
    return result


def _session(conn, result: SstpProbeResult, clock: _Clock, deadline: float, user: str,
             password: str, ping: str | None, auth: str) -> None:
    remaining = max(deadline - time.monotonic(), 0.1)
    client = SstpClient(SstpClientConfig(
        host=conn.server_name, cert_der=conn.certificate.der,
        ppp=PppConfig(user, password, auth=AUTH_CHOICES[auth], request_dns=True,
                      restart_seconds=min(3.0, remaining), auth_wait_seconds=min(30.0, remaining)),
        http_seconds=min(60.0, remaining), connect_seconds=min(60.0, remaining),
        disconnect_seconds=DISCONNECT_GRACE,
    ))
    result.correlation_id = str(client.config.correlation_id)
    timers: dict[str, float] = {}
    sock = conn.sock
    ping_state = {"id": int.from_bytes(os.urandom(2), "big"), "seq": 0, "sent_at": 0.0,
                  "next": 0.0}
    connected_at: float | None = None
    grace_deadline: float | None = None  # once ending, a bounded wait for the goodbye

    def send(out) -> None:
        for timer in out.timers:
            if isinstance(timer, StartTimer):
                timers[timer.name] = time.monotonic() + timer.seconds
            elif isinstance(timer, StopTimer):
                timers.pop(timer.name, None)
        if out.data:
            sock.settimeout(max(deadline + DISCONNECT_GRACE - time.monotonic(), 0.5))
            for chunk in out.data:
                sock.sendall(chunk)
        for event in out.events:
            handle(event)

    def finish(reason: str) -> None:
        nonlocal grace_deadline
        if grace_deadline is None:
            grace_deadline = min(time.monotonic() + DISCONNECT_GRACE, deadline + DISCONNECT_GRACE)
            clock.begin("disconnect")
            clock.log(f"disconnecting: {reason}")
            try:
                send(client.disconnect(reason))
            except (ssl.SSLError, OSError) as exc:  # the peer is gone: nothing to wait for
                clock.log(f"goodbye not sent ({exc.__class__.__name__})")
                grace_deadline = time.monotonic()

    def send_ping() -> None:
        from scapy.layers.inet import ICMP, IP
        ping_state["seq"] += 1
        packet = IP(src=client.address.address, dst=ping) / ICMP(
            type=8, id=ping_state["id"], seq=ping_state["seq"]) / (b"aovpn-lab sstp " * 2)
        now = time.monotonic()
        ping_state["sent_at"] = ping_state["sent_at"] or now
        ping_state["next"] = now + PING_INTERVAL
        clock.log(f"ICMP echo #{ping_state['seq']} to {ping} through the tunnel")
        send(client.send_ip(bytes(packet)))

    def on_datagram(payload: bytes) -> None:
        from scapy.layers.inet import ICMP, IP
        try:
            packet = IP(payload)
        except Exception:  # noqa: BLE001 - scapy on arbitrary bytes; evidence only
            clock.log(f"undecodable IP datagram ({len(payload)} bytes)")
            return
        if (ping and result.ping_ok is None and packet.haslayer(ICMP) and packet.src == ping
                and packet[ICMP].type == 0 and packet[ICMP].id == ping_state["id"]):
            result.ping_ok = True
            result.ping_ms = int((time.monotonic() - ping_state["sent_at"]) * 1000)
            result.connect_to_ping_ms = clock.now_ms()
            clock.end("ping")
            clock.log(f"ICMP echo reply from {packet.src} (seq {packet[ICMP].seq})")
            result.connected, result.cause = True, "none"
            finish("ping answered")
        else:
            clock.log(f"IP datagram {packet.src} -> {packet.dst} proto {packet.proto} ignored")

    def handle(event) -> None:
        nonlocal connected_at
        if isinstance(event, HttpAnswered):
            response = event.response
            result.http_status = response.status
            result.http_server = response.header("server") or ""
            clock.end("http", ok=response.is_sstp_accept)
            clock.log(f"HTTP answer: {response.describe()}")
            if response.is_sstp_accept:
                clock.begin("sstp-connect")
        elif isinstance(event, ConnectAcked):
            result.hash_protocol = event.hash_protocol.name
            clock.end("sstp-connect")
            clock.begin("lcp")
            clock.log(f"CALL_CONNECT_ACK: hash bitmask 0x{event.hash_bitmask:02x}, "
                      f"using {event.hash_protocol.name}")
        elif isinstance(event, LinkEstablished):
            clock.end("lcp")
            clock.begin("auth")
            clock.log(f"LCP opened, authentication: {event.auth_protocol or 'none'}")
        elif isinstance(event, AuthSucceeded):
            result.auth_method = event.method
            clock.end("auth")
            clock.log(f"{event.method} accepted" + (f": {event.message}" if event.message else ""))
        elif isinstance(event, CallConnectedSent):
            result.crypto_binding_sent = True
            clock.begin("ipcp")
            clock.log(f"CALL_CONNECTED sent ({event.hash_protocol.name} binding, "
                      f"cert hash {event.cert_hash.hex()[:16]}...)")
        elif isinstance(event, IpAssigned):
            result.ip, result.peer_ip = event.address, event.peer_address or ""
            result.dns = list(event.dns_servers)
            result.connect_to_ip_ms = clock.now_ms()
            clock.end("ipcp")
            clock.log(f"IPCP: address {event.address}, peer {event.peer_address}")
            connected_at = time.monotonic()
            if ping:
                clock.begin("ping")
                send_ping()
            else:
                result.connected, result.cause = True, "none"
                finish("tunnel up")
        elif isinstance(event, DatagramReceived):
            on_datagram(event.payload)
        elif isinstance(event, FrameDiscarded):
            clock.log(f"ignored a {event.protocol} frame: {event.reason}")
        elif isinstance(event, EchoAnswered):
            clock.log("SSTP ECHO_REQUEST answered")
        elif isinstance(event, Failed):
            if not result.failed_phase and not result.connected:
                result.cause, result.detail, result.failed_phase = event.cause, event.detail, event.phase
                clock.fail_open()
                clock.log(f"FAILED ({event.cause}) in {event.phase}: {event.detail}")
                finish(event.cause)
        elif isinstance(event, Closed):
            clock.end("disconnect", ok=True)
            result.disconnect = ("clean" if event.clean else "unclean") + (
                " (server)" if event.by_server else "") + f": {event.reason}"
            clock.log(f"call closed: {event.reason}")

    clock.begin("http")
    try:
        send(client.start())
        while client.state is not ClientState.CLOSED:
            now = time.monotonic()
            for name, due in sorted(timers.items(), key=lambda item: item[1]):
                if due <= now and timers.get(name) == due:
                    timers.pop(name, None)
                    send(client.timeout(name))
            if client.state is ClientState.CLOSED:
                break
            if (ping and client.state is ClientState.RUNNING and result.ping_ok is None
                    and ping_state["next"] and now >= ping_state["next"]):
                if ping_state["seq"] >= PING_TRIES:
                    result.ping_ok = False
                    result.connected, result.cause = False, "timeout"
                    result.failed_phase = "ping"
                    result.detail = (f"tunnel up with {result.ip}, but {PING_TRIES} ICMP echoes "
                                     f"to {ping} through it got no answer")
                    clock.fail_open()
                    finish("ping unanswered")
                else:
                    send_ping()
            if grace_deadline is not None and now >= grace_deadline:
                clock.end("disconnect", ok=False)
                result.disconnect = result.disconnect or "no answer to CALL_DISCONNECT; closed"
                break
            if grace_deadline is None and now >= deadline:
                stage = client.phase
                result.cause, result.failed_phase = "timeout", stage
                result.detail = (f"overall deadline of {deadline - clock.began:.1f} s reached in "
                                 f"phase {stage} ({client.state.value})")
                clock.fail_open()
                clock.log(result.detail)
                finish("deadline")
                continue
            waits = [*timers.values(), deadline if grace_deadline is None else grace_deadline]
            if ping and client.state is ClientState.RUNNING and result.ping_ok is None:
                waits.append(ping_state["next"])
            wait = max(min(waits) - time.monotonic(), 0.001)
            sock.settimeout(wait)
            try:
                data = sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except (ssl.SSLError, OSError) as exc:
                send(client.connection_lost(f"the connection failed ({exc.__class__.__name__}: "
                                            f"{getattr(exc, 'reason', None) or exc})"))
                break
            if not data:
                send(client.connection_lost())
                break
            send(client.receive(data))
    except (ssl.SSLError, OSError) as exc:
        # sendall() failed: the server went away while we were talking.
        if client.state is not ClientState.CLOSED:
            handle_out = client.connection_lost(f"sending failed ({exc.__class__.__name__})")
            for event in handle_out.events:
                handle(event)
    except SstpProtocolError as exc:
        handle(Failed("protocol-error", str(exc), client.phase))
    clock.fail_open()
    if not result.connected and not result.failed_phase:
        result.failed_phase = client.phase
        result.detail = result.detail or f"the attempt ended in phase {client.phase} without a result"
    result.echo_requests = client.echo_requests
    if result.connected and connected_at is not None and not result.disconnect:
        result.disconnect = "connection closed without CALL_DISCONNECT_ACK"
    assert result.cause in CAUSES, result.cause

