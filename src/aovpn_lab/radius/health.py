"""A small RADIUS health check: is the NPS stand-in up, does it know us, does it do EAP-TLS?

Two probes, both signed with the shared secret (Message-Authenticator, RFC 3579/5997)
and both verifying the answer's Response Authenticator:

``status``  Status-Server (RFC 5997). FreeRADIUS answers Access-Accept when
            ``security.status_server = yes`` and the sender is a configured client.
``eap``     Access-Request carrying EAP-Response/Identity, as a VPN gateway sends it
            first. A server set up for EAP-TLS answers Access-Challenge with an
            EAP-Request of type 13 (EAP-TLS) and the Start flag.

Silence is the only answer to a wrong secret or an unknown client: RADIUS servers drop
requests whose Message-Authenticator does not verify, without a reply.

Packets are built, decoded and verified by pyrad (with the few attributes of
``health.dictionary``); the exchange is a connected UDP socket of our own, so that an
ICMP port unreachable is seen at once instead of waiting out the timeout.

    >>> check("198.51.100.242", Secret("..."), kind="eap")       # doctest: +SKIP
    HealthResult(ok=True, kind='eap', answer='Access-Challenge', eap_type='EAP-TLS', ...)
"""
from __future__ import annotations

import functools
import os
import socket
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pyrad.dictionary import Dictionary
from pyrad.packet import AuthPacket, Packet, PacketError

from .config import Secret

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE, STATUS_SERVER = 1, 2, 3, 11, 12
CODES = {1: "Access-Request", 2: "Access-Accept", 3: "Access-Reject", 11: "Access-Challenge", 12: "Status-Server"}
USER_NAME, NAS_IDENTIFIER, EAP_MESSAGE, MESSAGE_AUTHENTICATOR = 1, 32, 79, 80
EAP_TYPES = {1: "Identity", 4: "MD5-Challenge", 13: "EAP-TLS", 21: "EAP-TTLS", 25: "PEAP", 26: "EAP-MSCHAPv2"}
#: the attributes this check uses, for pyrad
DICTIONARY = Path(__file__).with_name("health.dictionary")


@functools.cache
def _dictionary() -> Dictionary:
    return Dictionary(str(DICTIONARY))


@dataclass
class HealthResult:
    ok: bool
    kind: str                   # status | eap
    server: str
    answer: str                 # Access-Accept | Access-Challenge | Access-Reject | no-answer | invalid
    rtt_ms: float | None = None
    eap_type: str | None = None
    detail: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def build_request(code: int, ident: int, secret: Secret, attrs: list[tuple[int, bytes]],
                  authenticator: bytes | None = None) -> bytes:
    """A request signed with Message-Authenticator (HMAC-MD5 over the packet, RFC 3579 §3.2)."""
    d = _dictionary()
    pkt = AuthPacket(code=code, id=ident, secret=secret.reveal().encode(), dict=d,
                     authenticator=authenticator or Packet.CreateAuthenticator())
    for t, value in attrs:
        if len(value) > 253:
            raise ValueError(f"RADIUS attribute {t} too long ({len(value)} bytes)")
        pkt.AddAttribute(d.attrindex.GetBackward(t), value)
    pkt.add_message_authenticator()
    pkt.move_to_end(MESSAGE_AUTHENTICATOR)  # last, as this check always sent it (position is free in a request)
    return pkt.RequestPacket()


def _decode(data: bytes, secret: bytes = b"") -> Packet:
    try:
        return Packet(secret=secret, dict=_dictionary(), packet=data)
    except PacketError as exc:
        raise ValueError(f"malformed RADIUS packet: {exc}") from None


def parse_attrs(data: bytes) -> list[tuple[int, bytes]]:
    """(code, raw value) of every attribute, by code in order of first appearance."""
    return [(code, value) for code, values in _decode(data).items() for value in values]


def verify_response(resp: bytes, request: bytes, secret: Secret) -> str | None:
    """None if the reply is authentic for `request`; otherwise what is wrong with it."""
    if len(resp) < 20:
        return "shorter than a RADIUS header"
    key = secret.reveal().encode()
    try:
        req = AuthPacket(secret=key, dict=_dictionary(), packet=request)
        reply = _decode(resp, key)
    except (ValueError, PacketError):
        return "bad length"
    if reply.id != req.id:
        return f"unexpected identifier {reply.id}"
    has_ma = "Message-Authenticator" in reply
    ma_ok = not has_ma or reply.verify_message_authenticator(
        original_authenticator=req.authenticator, original_code=req.code)
    # VerifyReply checks the Response Authenticator, and the Message-Authenticator when the reply
    # has one: taken out of the decoded reply, the two failures are told apart.
    if has_ma:
        del reply["Message-Authenticator"]
    if not req.VerifyReply(reply, resp):
        return "Response Authenticator does not verify (shared secret differs)"
    if not ma_ok:
        return "Message-Authenticator does not verify"
    return None


def eap_identity_response(identity: str, eap_id: int = 0) -> bytes:
    data = identity.encode()
    return struct.pack("!BBHB", 2, eap_id, 5 + len(data), 1) + data


def check(server: str, secret: Secret, *, kind: str = "status", port: int = 1812, source: str | None = None,
          identity: str = "aovpn-health@example.net", timeout: float = 1.0, tries: int = 2) -> HealthResult:
    """Probe a RADIUS server once (`tries` sends of the same request, `timeout` s each)."""
    if kind not in ("status", "eap"):
        raise ValueError(f"unknown health check kind {kind!r} (status or eap)")
    secret = secret if isinstance(secret, Secret) else Secret(secret)
    ident = int.from_bytes(os.urandom(1), "big")
    if kind == "status":
        request = build_request(STATUS_SERVER, ident, secret, [(NAS_IDENTIFIER, b"aovpn-lab-health")])
    else:
        request = build_request(ACCESS_REQUEST, ident, secret, [
            (USER_NAME, identity.encode()), (NAS_IDENTIFIER, b"aovpn-lab-health"),
            (EAP_MESSAGE, eap_identity_response(identity))])
    result = HealthResult(ok=False, kind=kind, server=f"{server}:{port}", answer="no-answer")
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if source:
            sock.bind((source, 0))
        sock.connect((server, port))  # connected: an ICMP port unreachable becomes an error
        began = time.monotonic()
        for _ in range(max(1, tries)):
            try:
                sock.send(request)
            except OSError as exc:
                result.detail = f"sending to {server}:{port} failed: {exc.strerror or exc}"
                return result
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    resp = sock.recv(4096)
                except TimeoutError:
                    break
                except OSError as exc:  # ICMP port unreachable shows up here
                    result.detail = f"{exc.strerror or exc}: nothing listens on {server}:{port}"
                    return result
                problem = verify_response(resp, request, secret)
                if problem and problem.startswith("unexpected identifier"):
                    continue
                result.rtt_ms = round((time.monotonic() - began) * 1000, 1)
                if problem:
                    result.answer, result.detail = "invalid", problem
                    return result
                return _judge(result, resp)
    result.detail = ("no answer: server down, this address is not a configured client, or the shared secret "
                     "is wrong (RADIUS servers drop requests whose Message-Authenticator does not verify)")
    return result


def _judge(result: HealthResult, resp: bytes) -> HealthResult:
    reply = _decode(resp)
    code = reply.code
    result.answer = CODES.get(code, f"code {code}")
    eap = b"".join(reply.get("EAP-Message", []))
    if len(eap) >= 5 and eap[0] == 1:  # EAP-Request
        result.eap_type = EAP_TYPES.get(eap[4], f"type {eap[4]}")
    if result.kind == "status":
        result.ok = code == ACCESS_ACCEPT
        result.detail = "server up, client known" if result.ok else f"unexpected {result.answer}"
    else:
        start = len(eap) >= 6 and eap[4] == 13 and bool(eap[5] & 0x20)
        result.ok = code == ACCESS_CHALLENGE and start
        result.detail = ("EAP-TLS Start offered" if result.ok else
                         f"{result.answer}, EAP {result.eap_type or 'none'}: EAP-TLS not offered")
    return result
