"""A small reference SSTP server that *does* verify the crypto binding.

SoftEther accepts any CALL_CONNECTED, so it cannot show what RRAS does when the binding
is wrong (a TLS-offloading balancer or an inspecting proxy in front of the server: the
client hashes a different certificate than the one the server expects, and RRAS drops
the call right after it came up). This server plays that part for tests: it answers the
HTTP step, acknowledges CALL_CONNECT_REQUEST with a nonce, runs server-side PPP (LCP,
MS-CHAPv2 or PAP, IPCP), checks CALL_CONNECTED with
:func:`aovpn_lab.sstp.serverbinding.check_call_connected` (the server's own key
derivation, sharing no code with the client's) and aborts the call when it does not verify, answers ICMP echo to its own tunnel address, and says goodbye properly.

The core is sans-IO (:class:`ReferenceSstpServer`); :class:`ReferenceServerThread`
serves it over TLS on a socket you bind (in any network namespace)::

    >>> server = ReferenceSstpServer(RefServerConfig(users={"u": "p"}, cert_der=b"x"))
    >>> out = server.receive(b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/"
    ...                      b" HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n")
    >>> out.split(b"\\r\\n")[0]
    b'HTTP/1.1 200 OK'

Modes for failure tests: ``close-in-tls`` (drop the connection in the TLS handshake),
``close-after-request`` (TLS fine, connection closed instead of the HTTP answer),
``silent-after-request`` (TLS fine, the HTTP request never answered: what Debian's
unpatched SoftEther does), ``close-after-ack`` (closed right after CALL_CONNECT_ACK).
"""
from __future__ import annotations

import hmac
import os
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Self

from scapy.layers.inet import ICMP, IP
from scapy.layers.ppp import (
    PPP_CHAP,
    PPP_IPCP,
    PPP_CHAP_ChallengeResponse,
    PPP_IPCP_Option_IPAddress,
    PPP_LCP_Auth_Protocol_Option,
    PPP_LCP_Configure,
    PPP_LCP_Echo,
    PPP_LCP_Magic_Number_Option,
    PPP_LCP_MRU_Option,
    PPP_LCP_Terminate,
    PPP_PAP_Request,
    PPP_PAP_Response,
)

from . import messages, mschapv2, serverbinding
from .errors import SstpProtocolError
from .handshake import METHOD, SRA_PATH
from .messages import AttributeId, AttributeStatus, HashProtocol, MessageType
from .ppp.framing import (
    PROTO_CHAP,
    PROTO_IPCP,
    PROTO_IPV4,
    PROTO_LCP,
    PROTO_PAP,
    frame,
    split_control_packet,
    split_options,
    unframe,
)

MODES = ("sstp", "close-in-tls", "close-after-request", "silent-after-request", "close-after-ack")


ABORT_TIMER = 3.0   # seconds a server waits for the client's CALL_ABORT after its own


@dataclass(repr=False)
class RefServerConfig:
    users: dict[str, str]
    cert_der: bytes
    auth: str = "mschapv2"  # or "pap"
    hash_bitmask: int = HashProtocol.SHA256
    server_ip: str = "198.19.3.1"
    client_ip: str = "198.19.3.10"
    dns: str = "198.19.3.53"
    # The certificate the server believes clients see; another one simulates TLS offload
    # configured with the wrong SHA256CertificateHash.
    expected_cert_der: bytes | None = None
    echo_request_after_connect: bool = True
    mode: str = "sstp"
    # Key the binding check as if the inner authentication had exported no keys (what a
    # server that loses its MS-CHAPv2 keys does): the client's Compound MAC cannot verify.
    forget_inner_keys: bool = False


@dataclass
class ServerLog:
    events: list[str] = field(default_factory=list)
    binding_ok: bool | None = None
    authenticated: str | None = None


class ReferenceSstpServer:
    def __init__(self, config: RefServerConfig, random_bytes=os.urandom) -> None:
        self.config = config
        self.random = random_bytes
        self.log = ServerLog()
        self.closed = False
        self._http = b""
        self._http_done = False
        self._reader = messages.SstpStreamReader()
        self.nonce = random_bytes(32)
        self._lcp_id = 0
        self._lcp_acked_us = False
        self._lcp_acked_them = False
        self._auth_started = False
        self._challenge = b""
        self._hlak = serverbinding.NO_KEYS_HLAK
        self._ipcp_sent = False
        self._connected = False
        # After its CALL_ABORT a server waits for the client's (or its abort timer, 3 s,
        # [MS-SSTP] 3.2.2): the client must get to read why the call ended.
        self.aborting = False

    # -- public --------------------------------------------------------------------

    def receive(self, data: bytes) -> bytes:
        if self.closed or (self._http_done and self._reader is None):
            return b""
        out = []
        if not self._http_done:
            self._http += data
            end = self._http.find(b"\r\n\r\n")
            if end < 0:
                return b""
            head, data = self._http[:end], self._http[end + 4:]
            self._http_done = True
            first = head.split(b"\r\n")[0].split(b" ")
            if len(first) != 3 or first[0] != METHOD.encode() or first[1] != SRA_PATH.encode():
                self.closed = True
                self.log.events.append(f"HTTP {first!r}: 404")
                return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
            if self.config.mode == "close-after-request":
                self.closed = True
                self.log.events.append("closing instead of answering")
                return b""
            if self.config.mode == "silent-after-request":
                self.log.events.append("never answering (like SoftEther 5.01 unpatched)")
                self._reader = None
                return b""
            out.append(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n"
                       b"Server: aovpn-lab reference\r\n\r\n")
        if self.aborting:
            return self._while_aborting(data)
        try:
            packets = self._reader.feed(data)
        except SstpProtocolError as exc:
            self.log.events.append(f"bad SSTP: {exc}")
            self.closed = True
            return b"".join(out) + bytes(messages.call_abort(AttributeStatus.INVALID_FRAME_RECEIVED))
        for packet in packets:
            out.extend(self._on_packet(packet))
            if self.closed:
                break
        return b"".join(out)

    def _while_aborting(self, data: bytes) -> bytes:
        try:
            packets = self._reader.feed(data)
        except SstpProtocolError:
            packets = []
        for packet in packets:
            if packet.is_control and packet[messages.SstpControl].message_type == MessageType.CALL_ABORT:
                self.log.events.append("CALL_ABORT (the client's answer)")
                self.closed = True
        return b""

    # -- SSTP ------------------------------------------------------------------------

    def _on_packet(self, packet) -> list[bytes]:
        if not packet.is_control:
            return [bytes(messages.data_packet(f)) for f in self._on_ppp(bytes(packet.payload))]
        kind = packet[messages.SstpControl].message_type
        self.log.events.append(MessageType(kind).name)
        if kind == MessageType.CALL_CONNECT_REQUEST:
            ack = bytes(messages.call_connect_ack(self.config.hash_bitmask, self.nonce))
            if self.config.mode == "close-after-ack":
                self.closed = True
                return [ack]
            return [ack, bytes(messages.data_packet(self._lcp_request()))]
        if kind == MessageType.CALL_CONNECTED:
            return self._on_call_connected(packet)
        if kind == MessageType.ECHO_REQUEST:
            return [bytes(messages.echo_response())]
        if kind == MessageType.CALL_DISCONNECT:
            self.closed = True
            return [bytes(messages.call_disconnect_ack())]
        if kind in (MessageType.CALL_ABORT, MessageType.CALL_DISCONNECT_ACK):
            self.closed = True
        return []

    def _on_call_connected(self, packet) -> list[bytes]:
        # Verified with the server-side derivation (sstp.serverbinding), which shares no
        # code with the client's: the client's binding is checked, not re-computed by itself.
        expected = self.config.expected_cert_der or self.config.cert_der
        offered = frozenset(int(p) for p in HashProtocol if self.config.hash_bitmask & p)
        try:
            serverbinding.check_call_connected(bytes(packet), hlak=self._hlak, nonce=self.nonce,
                                               certificate_der=expected, offered=offered)
        except serverbinding.BindingRejected as exc:
            self.log.binding_ok = False
            self.log.events.append(f"crypto binding rejected ({exc.field}): {exc}")
            self.aborting = True
            return [bytes(messages.call_abort(AttributeStatus.INVALID_FRAME_RECEIVED,
                                              AttributeId.CRYPTO_BINDING))]
        self.log.binding_ok = True
        self._connected = True
        out = []
        if self.config.echo_request_after_connect:
            out.append(bytes(messages.echo_request()))
        return out

    # -- PPP -------------------------------------------------------------------------

    def _next_id(self) -> int:
        self._lcp_id = (self._lcp_id + 1) & 0xFF
        return self._lcp_id

    def _lcp_request(self) -> bytes:
        auth = (PPP_LCP_Auth_Protocol_Option(auth_protocol=PROTO_CHAP, algorithm=0x81)
                if self.config.auth == "mschapv2" else PPP_LCP_Auth_Protocol_Option(auth_protocol=PROTO_PAP))
        return frame(PROTO_LCP, PPP_LCP_Configure(id=self._next_id(), options=[
            PPP_LCP_MRU_Option(max_recv_unit=1400), auth,
            PPP_LCP_Magic_Number_Option(magic_number=0x0BADCAFE)]))

    def _on_ppp(self, ppp_frame: bytes) -> list[bytes]:
        try:
            protocol, info = unframe(ppp_frame)
        except SstpProtocolError:
            return []
        if protocol == PROTO_LCP:
            return self._on_lcp(info)
        if protocol == PROTO_CHAP:
            return self._on_chap(info)
        if protocol == PROTO_PAP:
            return self._on_pap(info)
        if protocol == PROTO_IPCP:
            return self._on_ipcp(info)
        if protocol == PROTO_IPV4:
            return self._on_ip(info)
        return []

    def _on_lcp(self, info: bytes) -> list[bytes]:
        packet = split_control_packet(info)
        out = []
        if packet.code == 1:  # Configure-Request: accept whatever the client wants
            out.append(frame(PROTO_LCP, bytes([2, packet.identifier])
                             + (4 + len(packet.data)).to_bytes(2, "big") + packet.data))
            self._lcp_acked_them = True
        elif packet.code == 2:
            self._lcp_acked_us = True
        elif packet.code in (3, 4):  # Nak/Reject of our request: insist once more
            out.append(self._lcp_request())
        elif packet.code == 5:  # Terminate-Request
            out.append(frame(PROTO_LCP, PPP_LCP_Terminate(code=6, id=packet.identifier)))
        elif packet.code == 9:  # Echo-Request
            out.append(frame(PROTO_LCP, PPP_LCP_Echo(code=10, id=packet.identifier,
                                                      magic_number=0x0BADCAFE)))
        if self._lcp_acked_us and self._lcp_acked_them and not self._auth_started:
            self._auth_started = True
            if self.config.auth == "mschapv2":
                self._challenge = self.random(16)
                out.append(frame(PROTO_CHAP, PPP_CHAP_ChallengeResponse(
                    code=1, id=1, value=self._challenge, optional_name=b"aovpn-ref")))
        return out

    def _on_chap(self, info: bytes) -> list[bytes]:
        packet = split_control_packet(info)
        if packet.code != 2 or not self._challenge:
            return []
        response = PPP_CHAP_ChallengeResponse(packet.raw)
        value, name = bytes(response.value), bytes(response.optional_name).decode("utf-8", "replace")
        peer_challenge, nt_response = value[:16], value[24:48]
        password = self.config.users.get(name)
        expected = (mschapv2.generate_nt_response(self._challenge, peer_challenge, name, password)
                    if password is not None else None)
        if expected is None or not hmac.compare_digest(expected, nt_response):
            self.log.events.append(f"MS-CHAPv2 failure for {name!r}")
            text = f"E=691 R=0 C={self.random(16).hex().upper()} V=3 M=Authentication failure"
            return [frame(PROTO_CHAP, PPP_CHAP(code=4, id=packet.identifier, data=text.encode()))]
        self.log.authenticated = name
        self._hlak = (serverbinding.NO_KEYS_HLAK if self.config.forget_inner_keys
                      else serverbinding.server_keys(password, nt_response).hlak)
        s_value = mschapv2.generate_authenticator_response(
            password, nt_response, peer_challenge, self._challenge, name)
        return [frame(PROTO_CHAP, PPP_CHAP(code=3, id=packet.identifier,
                                           data=f"{s_value} M=Welcome".encode())),
                *self._ipcp_request()]

    def _on_pap(self, info: bytes) -> list[bytes]:
        packet = split_control_packet(info)
        if packet.code != 1:
            return []
        request = PPP_PAP_Request(packet.raw)
        name = bytes(request.username).decode("utf-8", "replace")
        given = bytes(request.password).decode("utf-8", "replace")
        password = self.config.users.get(name)
        if password is None or not hmac.compare_digest(password.encode(), given.encode()):
            self.log.events.append(f"PAP failure for {name!r}")
            return [frame(PROTO_PAP, PPP_PAP_Response(code=3, id=packet.identifier, message=b"no"))]
        self.log.authenticated = name
        self._hlak = serverbinding.NO_KEYS_HLAK
        return [frame(PROTO_PAP, PPP_PAP_Response(code=2, id=packet.identifier, message=b"ok")),
                *self._ipcp_request()]

    def _ipcp_request(self) -> list[bytes]:
        if self._ipcp_sent:
            return []
        self._ipcp_sent = True
        return [frame(PROTO_IPCP, PPP_IPCP(code=1, id=1, options=[
            PPP_IPCP_Option_IPAddress(data=self.config.server_ip)]))]

    def _on_ipcp(self, info: bytes) -> list[bytes]:
        packet = split_control_packet(info)
        if packet.code != 1:
            return []
        wanted = {3: self.config.client_ip, 129: self.config.dns, 131: self.config.dns}
        naks, rejects = [], []
        for option in split_options(packet.data):
            if option[0] not in wanted or len(option) != 6:
                rejects.append(option)
            elif socket.inet_ntoa(option[2:6]) != wanted[option[0]]:
                naks.append(option[:2] + socket.inet_aton(wanted[option[0]]))
        if rejects:
            return [frame(PROTO_IPCP, bytes([4, packet.identifier])
                          + (4 + len(b"".join(rejects))).to_bytes(2, "big") + b"".join(rejects))]
        if naks:
            return [frame(PROTO_IPCP, bytes([3, packet.identifier])
                          + (4 + len(b"".join(naks))).to_bytes(2, "big") + b"".join(naks))]
        return [frame(PROTO_IPCP, bytes([2, packet.identifier])
                      + (4 + len(packet.data)).to_bytes(2, "big") + packet.data)]

    def _on_ip(self, info: bytes) -> list[bytes]:
        if not self._connected:
            self.log.events.append("IP before CALL_CONNECTED dropped")
            return []
        packet = IP(info)
        if packet.haslayer(ICMP) and packet[ICMP].type == 8 and packet.dst == self.config.server_ip:
            reply = IP(src=packet.dst, dst=packet.src) / ICMP(
                type=0, id=packet[ICMP].id, seq=packet[ICMP].seq) / bytes(packet[ICMP].payload)
            return [frame(PROTO_IPV4, bytes(reply))]
        return []


class ReferenceServerThread:
    """Serve :class:`ReferenceSstpServer` over TLS on an already bound, listening socket.

    Bind the socket where the server should live (e.g. inside a network namespace with
    :func:`aovpn_lab.ike.craft_netns.run_in_netns`); the socket keeps its namespace.
    """

    def __init__(self, listener: socket.socket, cert_file: str, key_file: str,
                 config: RefServerConfig) -> None:
        if config.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.listener = listener
        self.config = config
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        self.logs: list[ServerLog] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sstp-refserver", daemon=True)

    def __enter__(self) -> Self:
        self.listener.settimeout(0.1)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            if self.config.mode == "close-in-tls":
                conn.recv(1024)  # the ClientHello, then nothing
                return
            with self.context.wrap_socket(conn, server_side=True) as tls:
                server = ReferenceSstpServer(self.config)
                self.logs.append(server.log)
                while not server.closed and not self._stop.is_set():
                    data = tls.recv(65536)
                    if not data:
                        break
                    reply = server.receive(data)
                    if reply:
                        tls.sendall(reply)
                    if server.aborting:
                        tls.settimeout(ABORT_TIMER)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

