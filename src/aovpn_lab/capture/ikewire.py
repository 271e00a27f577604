"""IKEv2 and ESP as they appear in a capture: headers and the unencrypted payloads only.

* UDP 500: the datagram is an IKE message.
* UDP 4500 (either port): four zero bytes (the non-ESP marker, RFC 3948) and then an IKE
  message; a single 0xff byte is a NAT keepalive; anything else is ESP (SPI, sequence).
* IP protocol 50: native ESP.

What can be read without keys: the IKE header (SPIs, exchange, flags, message ID,
length), the chain of unencrypted payloads (all of IKE_SA_INIT: SA, KE, notifies such
as NO_PROPOSAL_CHOSEN or IKEV2_FRAGMENTATION_SUPPORTED), and for encrypted messages the
type of the first payload: SK (46) or SKF (53, RFC 7383 Encrypted Fragment, whose
fragment number and total are outside the encryption).
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from .packets import PROTO_ESP, PROTO_UDP, Datagram

__all__ = [
    "EXCHANGES",
    "IKE_PORT",
    "NATT_PORT",
    "NOTIFY_NAMES",
    "EspRecord",
    "IkeRecord",
    "classify",
    "exchange_name",
    "notify_name",
]

IKE_PORT, NATT_PORT = 500, 4500
HEADER = 28
PT_SK, PT_SKF, PT_NOTIFY, PT_SA, PT_KE = 46, 53, 41, 33, 34
FLAG_INITIATOR, FLAG_RESPONSE = 0x08, 0x20

EXCHANGES = {34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL",
             38: "IKE_SESSION_RESUME", 43: "IKE_INTERMEDIATE", 44: "IKE_FOLLOWUP_KE"}
NOTIFY_NAMES = {
    1: "UNSUPPORTED_CRITICAL_PAYLOAD", 4: "INVALID_IKE_SPI", 5: "INVALID_MAJOR_VERSION",
    7: "INVALID_SYNTAX", 9: "INVALID_MESSAGE_ID", 11: "INVALID_SPI", 14: "NO_PROPOSAL_CHOSEN",
    17: "INVALID_KE_PAYLOAD", 24: "AUTHENTICATION_FAILED", 34: "SINGLE_PAIR_REQUIRED",
    35: "NO_ADDITIONAL_SAS", 36: "INTERNAL_ADDRESS_FAILURE", 37: "FAILED_CP_REQUIRED",
    38: "TS_UNACCEPTABLE", 39: "INVALID_SELECTORS", 43: "TEMPORARY_FAILURE",
    44: "CHILD_SA_NOT_FOUND", 16384: "INITIAL_CONTACT", 16388: "NAT_DETECTION_SOURCE_IP",
    16389: "NAT_DETECTION_DESTINATION_IP", 16390: "COOKIE", 16404: "MULTIPLE_AUTH_SUPPORTED",
    16405: "ANOTHER_AUTH_FOLLOWS", 16406: "REDIRECT_SUPPORTED", 16407: "REDIRECT",
    16417: "EAP_ONLY_AUTHENTICATION", 16418: "CHILDLESS_IKEV2_SUPPORTED",
    16430: "IKEV2_FRAGMENTATION_SUPPORTED", 16431: "SIGNATURE_HASH_ALGORITHMS",
}
ERROR_NOTIFY_MAX = 16383  # RFC 7296 3.10.1: types below 16384 are errors


def exchange_name(exch: int) -> str:
    return EXCHANGES.get(exch, f"EXCHANGE_{exch}")


def notify_name(n: int) -> str:
    return NOTIFY_NAMES.get(n, str(n))


@dataclass
class IkeRecord:
    """One UDP datagram carrying an IKE message (or one RFC 7383 fragment of it)."""

    dgram: Datagram
    marker: bool                  # carried behind the non-ESP marker (UDP 4500)
    spi_i: bytes
    spi_r: bytes
    exchange: int
    flags: int
    msg_id: int
    length: int                   # IKE length from the header (the fragment's, for SKF)
    first_payload: int
    skf: tuple[int, int] | None = None     # (fragment number, total)
    encrypted: bool = False
    notifies: list[int] = field(default_factory=list)
    payloads: list[int] = field(default_factory=list)
    fingerprint: bytes = b""      # identifies identical transmissions (retransmits) across captures

    @property
    def from_initiator(self) -> bool:
        return bool(self.flags & FLAG_INITIATOR)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)

    @property
    def exchange_name(self) -> str:
        return exchange_name(self.exchange)

    @property
    def responder_port(self) -> int | None:
        """The responder's UDP port (500/4500): destination of requests from the initiator."""
        d = self.dgram
        return d.dport if self.from_initiator else d.sport


@dataclass
class EspRecord:
    dgram: Datagram
    spi: int | None
    udp: bool           # ESP in UDP (4500) or native protocol 50


def _walk(rec: IkeRecord, ike: bytes) -> None:
    nxt, off = rec.first_payload, HEADER
    for _ in range(64):
        if nxt == 0 or off + 4 > len(ike):
            return
        ptype = nxt
        nxt = ike[off]
        plen = struct.unpack_from("!H", ike, off + 2)[0]
        rec.payloads.append(ptype)
        if ptype in (PT_SK, PT_SKF):
            rec.encrypted = True
            if ptype == PT_SKF and off + 8 <= len(ike):
                rec.skf = struct.unpack_from("!HH", ike, off + 4)
            return
        if ptype == PT_NOTIFY and off + 8 <= len(ike):
            rec.notifies.append(struct.unpack_from("!H", ike, off + 6)[0])
        if plen < 4:
            return
        off += plen


def _parse_ike(d: Datagram, data: bytes, marker: bool) -> IkeRecord | None:
    if len(data) < HEADER or data[17] >> 4 != 2:
        return None
    spi_i, spi_r = data[:8], data[8:16]
    if spi_i == b"\x00" * 8:
        return None
    nxt, _ver, exch, flags = data[16], data[17], data[18], data[19]
    msg_id, length = struct.unpack_from("!II", data, 20)
    if length < HEADER:
        return None
    rec = IkeRecord(d, marker, spi_i, spi_r, exch, flags, msg_id, length, nxt)
    ike = data[:length]
    _walk(rec, ike)
    # Encrypted: header + SK/SKF header + IV (random per message) identify a transmission.
    # Unencrypted (IKE_SA_INIT): a retry after COOKIE/INVALID_KE differs anywhere, so more.
    span = HEADER + 96 if rec.encrypted else 1024
    rec.fingerprint = hashlib.sha1(struct.pack("!I", length) + ike[:span]).digest()[:12]
    return rec


def classify(d: Datagram) -> IkeRecord | EspRecord | str | None:
    """An IKE record, an ESP record, ``"keepalive"``, or None (not IKE/ESP or unreadable)."""
    if d.proto == PROTO_ESP:
        spi = struct.unpack_from("!I", d.payload, 0)[0] if len(d.payload) >= 4 else None
        return EspRecord(d, spi, False)
    if d.proto != PROTO_UDP or d.sport is None:
        return None
    ports = (d.sport, d.dport)
    data = d.udp_payload
    if NATT_PORT in ports:
        if len(data) >= 4 and data[:4] == b"\x00\x00\x00\x00":
            return _parse_ike(d, data[4:], True)
        if data == b"\xff" or (d.length == 9 and data[:1] == b"\xff"):
            return "keepalive"
        if len(data) >= 8 or (d.length or 0) >= 16:
            spi = struct.unpack_from("!I", data, 0)[0] if len(data) >= 4 else None
            return EspRecord(d, spi, True)
        return None
    if IKE_PORT in ports:
        return _parse_ike(d, data, False)
    return None
