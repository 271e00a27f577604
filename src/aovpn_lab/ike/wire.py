"""IKEv2 messages as bytes on the wire, decoded by scapy's IKEv2 layer (scapy.contrib.ikev2).

One decoding for every reader of IKE bytes: the capture diagnosis
(:mod:`aovpn_lab.capture.ikewire`) and the crafted probes' answers. :func:`parse` gives
scapy's packet (for the fields of a payload: a cookie, the group INVALID_KE asks for,
the chosen proposal), :func:`payload_chain` walks its payloads, :func:`decode` gives the
summary the diagnosis reads. What can be read
without keys: the header (SPIs, exchange, flags, message ID, length), the chain of
unencrypted payloads (all of IKE_SA_INIT: SA, KE, notifies such as NO_PROPOSAL_CHOSEN
or IKEV2_FRAGMENTATION_SUPPORTED), and for an encrypted message the type of its first
payload: SK (46) or SKF (53, RFC 7383 Encrypted Fragment, whose fragment number and
total are outside the encryption). The bytes may be cut short (a capture's snap
length); the header's length is what the message was on the wire.

    >>> from scapy.contrib.ikev2 import IKEv2, IKEv2_Notify
    >>> m = decode(bytes(IKEv2(init_SPI=b"\\x01" * 8, exch_type=34, flags="Response")
    ...                  / IKEv2_Notify(type=14)))
    >>> m.exchange_name, m.is_response, [notify_name(n) for n in m.notifies]
    ('IKE_SA_INIT', True, ['NO_PROPOSAL_CHOSEN'])
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from scapy.contrib.ikev2 import (
    IKEv2,
    IKEv2_Encrypted_Fragment,
    IKEv2_Notify,
    IKEv2_Payload,
    IKEv2ExchangeTypes,
    IKEv2NotifyMessageTypes,
)

__all__ = [
    "EXCHANGES",
    "HEADER",
    "IKE_PORT",
    "NATT_PORT",
    "NOTIFY_NAMES",
    "IkeMessage",
    "decode",
    "exchange_name",
    "notify_name",
    "parse",
    "payload_chain",
]

from .numbers import FLAG_INITIATOR, FLAG_RESPONSE, IKE_PORT, NATT_PORT, PT_SK, PT_SKF
from .numbers import HEADER_LEN as HEADER
#: a chain longer than this is garbage, not a message
MAX_PAYLOADS = 64

#: scapy's names, plus the exchange it does not know yet (RFC 9370)
EXCHANGES = {**IKEv2ExchangeTypes, 44: "IKE_FOLLOWUP_KE"}
NOTIFY_NAMES = IKEv2NotifyMessageTypes
ERROR_NOTIFY_MAX = 16383  # RFC 7296 3.10.1: types below 16384 are errors


def exchange_name(exch: int) -> str:
    return EXCHANGES.get(exch, f"EXCHANGE_{exch}")


def notify_name(n: int) -> str:
    return NOTIFY_NAMES.get(n, str(n))


@dataclass
class IkeMessage:
    """What an IKE message (or one RFC 7383 fragment of it) shows without keys."""

    spi_i: bytes
    spi_r: bytes
    exchange: int
    flags: int
    msg_id: int
    length: int                   # IKE length from the header (the fragment's, for SKF)
    first_payload: int
    payloads: list[int] = field(default_factory=list)
    notifies: list[int] = field(default_factory=list)
    skf: tuple[int, int] | None = None     # (fragment number, total)
    encrypted: bool = False

    @property
    def from_initiator(self) -> bool:
        return bool(self.flags & FLAG_INITIATOR)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)

    @property
    def exchange_name(self) -> str:
        return exchange_name(self.exchange)


def parse(data: bytes) -> IKEv2 | None:
    """scapy's IKEv2 packet for ``data`` (no non-ESP marker), or None when it is not one.

    Not one: shorter than the header, not version 2, a zero initiator SPI, or a header
    length below the header's own.
    """
    if len(data) < HEADER or data[17] >> 4 != 2:
        return None
    pkt = IKEv2(data)
    if not isinstance(pkt, IKEv2) or pkt.init_SPI == b"\x00" * 8 or pkt.length < HEADER:
        return None
    return pkt


def payload_chain(pkt: IKEv2) -> Iterator[tuple[int, IKEv2_Payload]]:
    """(payload type, scapy layer) in order, up to and including SK/SKF (what follows is encrypted)."""
    ptype, layer = pkt.next_payload, pkt.payload
    for _ in range(MAX_PAYLOADS):
        if ptype == 0 or not isinstance(layer, IKEv2_Payload):
            return
        yield ptype, layer
        if ptype in (PT_SK, PT_SKF) or (layer.length or 0) < 4:
            return
        ptype, layer = layer.next_payload, layer.payload


def decode(data: bytes) -> IkeMessage | None:
    """What the IKEv2 message in ``data`` shows without keys (None: not one, see :func:`parse`)."""
    pkt = parse(data)
    if pkt is None:
        return None
    msg = IkeMessage(bytes(pkt.init_SPI), bytes(pkt.resp_SPI), pkt.exch_type, int(pkt.flags), pkt.id,
                     pkt.length, pkt.next_payload)
    for ptype, layer in payload_chain(pkt):
        msg.payloads.append(ptype)
        if ptype in (PT_SK, PT_SKF):
            msg.encrypted = True
        if isinstance(layer, IKEv2_Encrypted_Fragment):
            msg.skf = (layer.frag_number, layer.frag_total)
        elif isinstance(layer, IKEv2_Notify):
            msg.notifies.append(layer.type)
    return msg
