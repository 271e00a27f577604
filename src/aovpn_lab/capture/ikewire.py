"""IKEv2 and ESP as they appear in a capture: which datagram carries what.

* UDP 500: the datagram is an IKE message.
* UDP 4500 (either port): four zero bytes (the non-ESP marker, RFC 3948) and then an IKE
  message; a single 0xff byte is a NAT keepalive; anything else is ESP (SPI, sequence).
* IP protocol 50: native ESP.

The IKE message itself is decoded by :mod:`aovpn_lab.ike.wire` (scapy's IKEv2 layer).
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from ..ike.wire import (
    ERROR_NOTIFY_MAX,
    EXCHANGES,
    HEADER,
    IKE_PORT,
    NATT_PORT,
    NOTIFY_NAMES,
    PT_SK,
    PT_SKF,
    IkeMessage,
    decode,
    exchange_name,
    notify_name,
)
from .packets import PROTO_ESP, PROTO_UDP, Datagram

__all__ = [
    "ERROR_NOTIFY_MAX",
    "EXCHANGES",
    "HEADER",
    "IKE_PORT",
    "NATT_PORT",
    "NOTIFY_NAMES",
    "PT_SK",
    "PT_SKF",
    "EspRecord",
    "IkeRecord",
    "classify",
    "exchange_name",
    "notify_name",
]

NON_ESP_MARKER = b"\x00\x00\x00\x00"


@dataclass
class IkeRecord(IkeMessage):
    """One UDP datagram carrying an IKE message (or one RFC 7383 fragment of it)."""

    dgram: Datagram | None = None
    marker: bool = False          # carried behind the non-ESP marker (UDP 4500)
    fingerprint: bytes = b""      # identifies identical transmissions (retransmits) across captures

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


def _record(d: Datagram, data: bytes, marker: bool) -> IkeRecord | None:
    msg = decode(data)
    if msg is None:
        return None
    rec = IkeRecord(**vars(msg), dgram=d, marker=marker)
    # Encrypted: header + SK/SKF header + IV (random per message) identify a transmission.
    # Unencrypted (IKE_SA_INIT): a retry after COOKIE/INVALID_KE differs anywhere, so more.
    span = HEADER + 96 if rec.encrypted else 1024
    rec.fingerprint = hashlib.sha1(struct.pack("!I", rec.length) + data[:rec.length][:span]).digest()[:12]
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
        if len(data) >= 4 and data[:4] == NON_ESP_MARKER:
            return _record(d, data[4:], True)
        if data == b"\xff" or (d.length == 9 and data[:1] == b"\xff"):
            return "keepalive"
        if len(data) >= 8 or (d.length or 0) >= 16:
            spi = struct.unpack_from("!I", data, 0)[0] if len(data) >= 4 else None
            return EspRecord(d, spi, True)
        return None
    if IKE_PORT in ports:
        return _record(d, data, False)
    return None
