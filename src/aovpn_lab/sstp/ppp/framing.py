"""PPP frames as SSTP carries them: ``FF 03`` + protocol + information, nothing else.

SSTP runs over TLS, so there are no HDLC flags, no byte stuffing and no FCS. We always
send the full address/control and 2-byte protocol fields; on receipt we also accept the
compressed forms a peer may use once it has negotiated ACFC/PFC::

    >>> from aovpn_lab.sstp.ppp.framing import frame, unframe, PROTO_LCP
    >>> frame(PROTO_LCP, bytes.fromhex("09010008 00000000")).hex()
    'ff03c0210901000800000000'
    >>> unframe(bytes.fromhex("c0210901000800000000"))  # address/control compressed
    (49185, b'\\t\\x01\\x00\\x08\\x00\\x00\\x00\\x00')
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from scapy.layers.ppp import HDLC, PPP
from scapy.packet import Packet, Raw

from ..errors import SstpProtocolError

PROTO_IPV4 = 0x0021
PROTO_IPV6 = 0x0057
PROTO_IPCP = 0x8021
PROTO_IPV6CP = 0x8057
PROTO_CCP = 0x80FD
PROTO_LCP = 0xC021
PROTO_PAP = 0xC023
PROTO_CHAP = 0xC223
PROTO_EAP = 0xC227

PROTOCOL_NAMES = {
    PROTO_IPV4: "IPv4",
    PROTO_IPV6: "IPv6",
    PROTO_IPCP: "IPCP",
    PROTO_IPV6CP: "IPV6CP",
    PROTO_CCP: "CCP",
    PROTO_LCP: "LCP",
    PROTO_PAP: "PAP",
    PROTO_CHAP: "CHAP",
    PROTO_EAP: "EAP",
}

CONTROL_HEADER = struct.Struct("!BBH")  # Code, Identifier, Length (RFC 1661 5)


def protocol_name(protocol: int) -> str:
    return PROTOCOL_NAMES.get(protocol, f"0x{protocol:04x}")


def frame(protocol: int, information: Packet | bytes) -> bytes:
    """One PPP frame ready for :func:`aovpn_lab.sstp.messages.data_packet`."""
    body = information if isinstance(information, Packet) else Raw(bytes(information))
    return bytes(HDLC() / PPP(proto=protocol) / body)


def unframe(data: bytes) -> tuple[int, bytes]:
    """(protocol, information) from a received frame, compressed fields allowed."""
    data = bytes(data)
    if data[:2] == b"\xff\x03":
        data = data[2:]
    if not data:
        raise SstpProtocolError("PPP frame without a protocol field")
    if data[0] & 0x01:  # PFC: a one-byte protocol field has its low bit set
        return data[0], data[1:]
    if len(data) < 2 or not data[1] & 0x01:
        raise SstpProtocolError(f"PPP frame: invalid protocol field {data[:2].hex()}")
    return struct.unpack("!H", data[:2])[0], data[2:]


@dataclass(frozen=True)
class ControlPacket:
    """Header of an LCP-like packet (LCP, IPCP, CHAP, PAP share it), padding removed."""

    code: int
    identifier: int
    data: bytes

    @property
    def raw(self) -> bytes:
        return CONTROL_HEADER.pack(self.code, self.identifier, 4 + len(self.data)) + self.data


def split_control_packet(information: bytes) -> ControlPacket:
    """Validate Code/Identifier/Length; RFC 1661 says bad ones are silently discarded."""
    if len(information) < 4:
        raise SstpProtocolError(f"control packet of {len(information)} bytes, header needs 4")
    code, identifier, length = CONTROL_HEADER.unpack(information[:4])
    if length < 4 or length > len(information):
        raise SstpProtocolError(
            f"control packet Length {length} outside 4..{len(information)} received bytes"
        )
    # Octets beyond Length are padding (RFC 1661 5).
    return ControlPacket(code, identifier, information[4:length])


def split_options(data: bytes) -> list[bytes]:
    """Cut a Configure-* options field into raw Type-Length-Data options."""
    options = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise SstpProtocolError(f"option at byte {offset}: truncated header")
        length = data[offset + 1]
        if length < 2 or offset + length > len(data):
            raise SstpProtocolError(
                f"option type {data[offset]} at byte {offset}: length {length} does not fit"
            )
        options.append(data[offset:offset + length])
        offset += length
    return options
