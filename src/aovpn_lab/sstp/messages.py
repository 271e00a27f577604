"""SSTP packets ([MS-SSTP] 2.2) as scapy field lists, plus a strict parser.

The classes read like the MS-SSTP tables; lengths and attribute counts are left as
``None`` and filled in on build. Parsing goes through :func:`parse_packet`, which checks
the framing itself before scapy sees the bytes (scapy is deliberately lenient and would
happily dissect a truncated packet), so malformed input always ends in one
:class:`~aovpn_lab.sstp.errors.SstpProtocolError` that says what was wrong::

    >>> from aovpn_lab.sstp import messages as m
    >>> bytes(m.call_connect_request()).hex(" ")
    '10 01 00 0e 00 01 00 01 00 01 00 06 00 01'
    >>> ack = m.parse_packet(bytes(m.call_connect_ack(m.HashProtocol.SHA256, bytes(32))))
    >>> ack.message_type == m.MessageType.CALL_CONNECT_ACK, ack.length
    (True, 48)
    >>> ack[m.SstpControl].attribute(m.CryptoBindingRequest).hash_protocol_bitmask.SHA256
    True

Data packets carry a bare PPP frame (``FF 03`` + protocol; SSTP has no HDLC flags,
byte stuffing or FCS), dissected with scapy's HDLC/PPP layers.
"""
from __future__ import annotations

import struct
from enum import IntEnum

from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ByteField,
    FieldLenField,
    FlagsField,
    IntEnumField,
    PacketListField,
    ShortEnumField,
    StrFixedLenField,
    StrLenField,
    XByteField,
    XStrFixedLenField,
)
from scapy.layers.ppp import HDLC, PPP
from scapy.packet import Packet, bind_layers

from .errors import SstpProtocolError

SSTP_VERSION = 0x10
HEADER_LENGTH = 4
CONTROL_HEADER_LENGTH = 8
ATTRIBUTE_HEADER_LENGTH = 4
MAX_PACKET_LENGTH = 0xFFF  # the length field has 12 bits
NONCE_LENGTH = 32
HASH_FIELD_LENGTH = 32  # cert hash and compound MAC fields; SHA1 values are zero padded
STATUS_ATTRIB_VALUE_MAX = 64  # [MS-SSTP] 2.2.12: AttribValue is cut to 64 bytes
ENCAPSULATED_PROTOCOL_PPP = 1


class MessageType(IntEnum):
    CALL_CONNECT_REQUEST = 0x0001
    CALL_CONNECT_ACK = 0x0002
    CALL_CONNECT_NAK = 0x0003
    CALL_CONNECTED = 0x0004
    CALL_ABORT = 0x0005
    CALL_DISCONNECT = 0x0006
    CALL_DISCONNECT_ACK = 0x0007
    ECHO_REQUEST = 0x0008
    ECHO_RESPONSE = 0x0009


class AttributeId(IntEnum):
    NO_ERROR = 0x00  # only ever seen as the AttribID inside a Status Info
    ENCAPSULATED_PROTOCOL_ID = 0x01
    STATUS_INFO = 0x02
    CRYPTO_BINDING = 0x03
    CRYPTO_BINDING_REQ = 0x04


class AttributeStatus(IntEnum):
    NO_ERROR = 0x00000000
    DUPLICATE_ATTRIBUTE = 0x00000001
    UNRECOGNIZED_ATTRIBUTE = 0x00000002
    INVALID_ATTRIB_VALUE_LENGTH = 0x00000003
    VALUE_NOT_SUPPORTED = 0x00000004
    UNACCEPTED_FRAME_RECEIVED = 0x00000005
    RETRY_COUNT_EXCEEDED = 0x00000006
    INVALID_FRAME_RECEIVED = 0x00000007
    NEGOTIATION_TIMEOUT = 0x00000008
    ATTRIB_NOT_SUPPORTED_IN_MSG = 0x00000009
    REQUIRED_ATTRIBUTE_MISSING = 0x0000000A
    STATUS_INFO_NOT_SUPPORTED_IN_MSG = 0x0000000B


class HashProtocol(IntEnum):
    """CERT_HASH_PROTOCOL_*: a single value in Crypto Binding, bits of a mask in the Request."""

    SHA1 = 0x01
    SHA256 = 0x02


def _names(enum: type[IntEnum]) -> dict[int, str]:
    return {member.value: member.name for member in enum}


def _fill_length(built: bytes, offset: int, length: int, what: str) -> bytes:
    """Write a 12-bit length into the 4-bit-reserved + 12-bit-length word at offset."""
    if length > MAX_PACKET_LENGTH:
        raise SstpProtocolError(f"{what}: {length} bytes do not fit the 12-bit length field")
    word = (built[offset] & 0xF0) << 8 | length
    return built[:offset] + struct.pack("!H", word) + built[offset + 2:]


# ---------------------------------------------------------------------------------------
# Attributes ([MS-SSTP] 2.2.3 - 2.2.7)


def _attribute_header(attribute_id: int) -> list:
    """Reserved, Attribute ID, 4 reserved bits and the 12-bit length: every attribute starts so."""
    return [
        ByteField("reserved", 0),
        ByteEnumField("attribute_id", attribute_id, _names(AttributeId)),
        BitField("r", 0, 4),
        BitField("length", None, 12),
    ]


class SstpAttribute(Packet):
    """Generic attribute; parsing dispatches on Attribute ID to the typed subclasses."""

    name = "SSTP attribute"
    fields_desc = _attribute_header(0) + [
        StrLenField("value", b"", length_from=lambda pkt: pkt.length - ATTRIBUTE_HEADER_LENGTH),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args, **kwargs):
        if _pkt and len(_pkt) >= 2:
            return _ATTRIBUTE_CLASSES.get(_pkt[1], SstpAttribute)
        return cls

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.length is None:
            pkt = _fill_length(pkt, 2, len(pkt), self.name)
        return pkt + pay

    def extract_padding(self, s: bytes):
        # Attributes sit in a list; whatever follows belongs to the next one.
        return b"", s


class EncapsulatedProtocolId(SstpAttribute):
    name = "SSTP_ATTRIB_ENCAPSULATED_PROTOCOL_ID"
    fields_desc = _attribute_header(AttributeId.ENCAPSULATED_PROTOCOL_ID) + [
        ShortEnumField(
            "protocol_id", ENCAPSULATED_PROTOCOL_PPP, {ENCAPSULATED_PROTOCOL_PPP: "PPP"}
        ),
    ]


class StatusInfo(SstpAttribute):
    name = "SSTP_ATTRIB_STATUS_INFO"
    fields_desc = _attribute_header(AttributeId.STATUS_INFO) + [
        StrFixedLenField("reserved2", b"\x00" * 3, 3),
        ByteEnumField("attrib_id", AttributeId.NO_ERROR, _names(AttributeId)),
        IntEnumField("status", AttributeStatus.NO_ERROR, _names(AttributeStatus)),
        StrLenField("attrib_value", b"", length_from=lambda pkt: pkt.length - 12),
    ]


class CryptoBindingRequest(SstpAttribute):
    name = "SSTP_ATTRIB_CRYPTO_BINDING_REQ"
    fields_desc = _attribute_header(AttributeId.CRYPTO_BINDING_REQ) + [
        StrFixedLenField("reserved2", b"\x00" * 3, 3),
        FlagsField("hash_protocol_bitmask", HashProtocol.SHA256, 8, ["SHA1", "SHA256"]),
        XStrFixedLenField("nonce", b"\x00" * NONCE_LENGTH, NONCE_LENGTH),
    ]


class CryptoBinding(SstpAttribute):
    """Crypto Binding; cert_hash and compound_mac include the SHA1 zero padding (32 B each)."""

    name = "SSTP_ATTRIB_CRYPTO_BINDING"
    fields_desc = _attribute_header(AttributeId.CRYPTO_BINDING) + [
        StrFixedLenField("reserved2", b"\x00" * 3, 3),
        ByteEnumField("hash_protocol", HashProtocol.SHA256, _names(HashProtocol)),
        XStrFixedLenField("nonce", b"\x00" * NONCE_LENGTH, NONCE_LENGTH),
        XStrFixedLenField("cert_hash", b"\x00" * HASH_FIELD_LENGTH, HASH_FIELD_LENGTH),
        XStrFixedLenField("compound_mac", b"\x00" * HASH_FIELD_LENGTH, HASH_FIELD_LENGTH),
    ]


_ATTRIBUTE_CLASSES: dict[int, type[SstpAttribute]] = {
    AttributeId.ENCAPSULATED_PROTOCOL_ID: EncapsulatedProtocolId,
    AttributeId.STATUS_INFO: StatusInfo,
    AttributeId.CRYPTO_BINDING: CryptoBinding,
    AttributeId.CRYPTO_BINDING_REQ: CryptoBindingRequest,
}

# Length rules from the attribute tables: exact for the fixed ones, a floor for Status Info.
_ATTRIBUTE_EXACT_LENGTH = {
    AttributeId.ENCAPSULATED_PROTOCOL_ID: 6,
    AttributeId.CRYPTO_BINDING: 104,
    AttributeId.CRYPTO_BINDING_REQ: 40,
}
_STATUS_INFO_MIN_LENGTH = 12


# ---------------------------------------------------------------------------------------
# Packets ([MS-SSTP] 2.2.1, 2.2.2)


class SstpControl(Packet):
    """The control message that follows the header when C = 1."""

    name = "SSTP control message"
    fields_desc = [
        ShortEnumField("message_type", MessageType.CALL_CONNECT_REQUEST, _names(MessageType)),
        FieldLenField("num_attributes", None, count_of="attributes", fmt="!H"),
        PacketListField(
            "attributes", [], SstpAttribute, count_from=lambda pkt: pkt.num_attributes
        ),
    ]

    def attribute(self, kind: type[SstpAttribute] | int) -> SstpAttribute | None:
        """The first attribute of a class or Attribute ID, or None."""
        for attr in self.attributes:
            if (isinstance(kind, type) and isinstance(attr, kind)) or attr.attribute_id == kind:
                return attr
        return None


class SSTP(Packet):
    """The 4-byte SSTP header; payload is SstpControl (C = 1) or a PPP frame (C = 0)."""

    name = "SSTP"
    fields_desc = [
        XByteField("version", SSTP_VERSION),
        BitField("reserved", 0, 7),
        BitEnumField("c", 0, 1, {0: "data", 1: "control"}),
        BitField("r", 0, 4),
        BitField("length", None, 12),
    ]

    @property
    def is_control(self) -> bool:
        return self.c == 1

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.length is None:
            pkt = _fill_length(pkt, 2, len(pkt) + len(pay), self.name)
        return pkt + pay

    def extract_padding(self, s: bytes):
        if self.length is None:
            return s, b""
        body = self.length - HEADER_LENGTH
        return s[:body], s[body:]

    def guess_payload_class(self, payload: bytes):
        # PPP's own dispatch hook turns a leading FF into HDLC, and handles frames sent
        # with address/control field compression.
        return SstpControl if self.c == 1 else PPP


bind_layers(SSTP, SstpControl, c=1)
bind_layers(SSTP, HDLC, c=0)
bind_layers(SSTP, PPP, c=0)


# ---------------------------------------------------------------------------------------
# Builders


def control_message(message_type: MessageType, *attributes: SstpAttribute) -> SSTP:
    return SSTP(c=1) / SstpControl(message_type=message_type, attributes=list(attributes))


def call_connect_request(protocol_id: int = ENCAPSULATED_PROTOCOL_PPP) -> SSTP:
    return control_message(
        MessageType.CALL_CONNECT_REQUEST, EncapsulatedProtocolId(protocol_id=protocol_id)
    )


def call_connect_ack(hash_bitmask: int, nonce: bytes) -> SSTP:
    """Server side; used by tests and mock servers."""
    _check_length("nonce", nonce, NONCE_LENGTH)
    return control_message(
        MessageType.CALL_CONNECT_ACK,
        CryptoBindingRequest(hash_protocol_bitmask=int(hash_bitmask), nonce=nonce),
    )


def call_connect_nak(*statuses: StatusInfo) -> SSTP:
    return control_message(MessageType.CALL_CONNECT_NAK, *statuses)


def call_connected(
    hash_protocol: HashProtocol, nonce: bytes, cert_hash: bytes, compound_mac: bytes = b""
) -> SSTP:
    """Raw CALL_CONNECTED; :func:`aovpn_lab.sstp.binding.build_call_connected` fills the MAC."""
    _check_length("nonce", nonce, NONCE_LENGTH)
    if len(cert_hash) > HASH_FIELD_LENGTH or len(compound_mac) > HASH_FIELD_LENGTH:
        raise SstpProtocolError("CALL_CONNECTED: cert hash and compound MAC are at most 32 bytes")
    return control_message(
        MessageType.CALL_CONNECTED,
        CryptoBinding(
            hash_protocol=hash_protocol,
            nonce=nonce,
            cert_hash=cert_hash.ljust(HASH_FIELD_LENGTH, b"\x00"),
            compound_mac=compound_mac.ljust(HASH_FIELD_LENGTH, b"\x00"),
        ),
    )


def call_abort(
    status: AttributeStatus, attrib_id: int = AttributeId.NO_ERROR, attrib_value: bytes = b""
) -> SSTP:
    return control_message(
        MessageType.CALL_ABORT,
        StatusInfo(attrib_id=attrib_id, status=status, attrib_value=attrib_value),
    )


def call_disconnect() -> SSTP:
    # [MS-SSTP] 2.2.14: the Status Info of a normal disconnect is NO_ERROR / NO_ERROR.
    return control_message(MessageType.CALL_DISCONNECT, StatusInfo())


def call_disconnect_ack() -> SSTP:
    return control_message(MessageType.CALL_DISCONNECT_ACK)


def echo_request() -> SSTP:
    return control_message(MessageType.ECHO_REQUEST)


def echo_response() -> SSTP:
    return control_message(MessageType.ECHO_RESPONSE)


def data_packet(ppp_frame: bytes) -> SSTP:
    """Wrap one PPP frame (as produced by :mod:`aovpn_lab.sstp.ppp`) in an SSTP data packet."""
    if not ppp_frame:
        raise SstpProtocolError("SSTP data packet: empty PPP frame")
    frame = bytes(ppp_frame)
    if HEADER_LENGTH + len(frame) > MAX_PACKET_LENGTH:
        raise SstpProtocolError(
            f"SSTP data packet: {HEADER_LENGTH + len(frame)} bytes do not fit the 12-bit length"
        )
    # The length is taken from the bytes, not from the dissection, so that a frame with
    # trailing octets scapy calls padding still travels unchanged.
    return SSTP(c=0, length=HEADER_LENGTH + len(frame)) / PPP(frame)


def _check_length(what: str, value: bytes, expected: int) -> None:
    if len(value) != expected:
        raise SstpProtocolError(f"{what}: {len(value)} bytes, expected {expected}")


# ---------------------------------------------------------------------------------------
# Parsing

# (allowed attribute ids, min count, max count, exact packet length or None), from 2.2.9-15.
_MESSAGE_RULES: dict[int, tuple[frozenset[int], int, int, int | None]] = {
    MessageType.CALL_CONNECT_REQUEST: (frozenset({AttributeId.ENCAPSULATED_PROTOCOL_ID}), 1, 1, 14),
    MessageType.CALL_CONNECT_ACK: (frozenset({AttributeId.CRYPTO_BINDING_REQ}), 1, 1, 48),
    MessageType.CALL_CONNECT_NAK: (frozenset({AttributeId.STATUS_INFO}), 1, 256, None),
    MessageType.CALL_CONNECTED: (frozenset({AttributeId.CRYPTO_BINDING}), 1, 1, 112),
    MessageType.CALL_ABORT: (frozenset({AttributeId.STATUS_INFO}), 0, 1, None),
    MessageType.CALL_DISCONNECT: (frozenset({AttributeId.STATUS_INFO}), 0, 1, None),
    MessageType.CALL_DISCONNECT_ACK: (frozenset(), 0, 0, 8),
    MessageType.ECHO_REQUEST: (frozenset(), 0, 0, 8),
    MessageType.ECHO_RESPONSE: (frozenset(), 0, 0, 8),
}


def declared_length(header: bytes) -> int:
    """The 12-bit packet length from the first 4 bytes, after checking the version."""
    if len(header) < HEADER_LENGTH:
        raise SstpProtocolError(
            f"SSTP packet too short: {len(header)} bytes, the header alone is {HEADER_LENGTH}"
        )
    if header[0] != SSTP_VERSION:
        raise SstpProtocolError(
            f"SSTP header: version 0x{header[0]:02x}, expected 0x{SSTP_VERSION:02x} "
            "(not an SSTP stream, or the HTTP layer was not consumed)"
        )
    length = struct.unpack("!H", header[2:4])[0] & 0x0FFF
    if length < HEADER_LENGTH:
        raise SstpProtocolError(f"SSTP header: length field {length} is below the 4-byte header")
    return length


def _check_structure(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Walk the framing; returns (message type or -1 for data, [(attribute id, length)])."""
    length = declared_length(data)
    if length != len(data):
        raise SstpProtocolError(
            f"SSTP header: length field says {length} bytes, packet has {len(data)}"
        )
    if not data[1] & 0x01:
        return -1, []
    if length < CONTROL_HEADER_LENGTH:
        raise SstpProtocolError(
            f"SSTP control packet: {length} bytes, needs at least {CONTROL_HEADER_LENGTH}"
        )
    message_type, count = struct.unpack("!HH", data[4:8])
    attributes: list[tuple[int, int]] = []
    offset = CONTROL_HEADER_LENGTH
    for index in range(count):
        where = f"SSTP control message 0x{message_type:04x}, attribute {index + 1} of {count}"
        if offset + ATTRIBUTE_HEADER_LENGTH > length:
            raise SstpProtocolError(f"{where}: missing (packet ends at byte {length})")
        attribute_id = data[offset + 1]
        attr_length = struct.unpack("!H", data[offset + 2:offset + 4])[0] & 0x0FFF
        if attr_length < ATTRIBUTE_HEADER_LENGTH or offset + attr_length > length:
            raise SstpProtocolError(
                f"{where}: length {attr_length} does not fit "
                f"({length - offset} bytes left, header is 4)"
            )
        exact = _ATTRIBUTE_EXACT_LENGTH.get(attribute_id)
        if exact is not None and attr_length != exact:
            raise SstpProtocolError(
                f"{where}: {AttributeId(attribute_id).name} length {attr_length}, must be {exact}"
            )
        if attribute_id == AttributeId.STATUS_INFO and attr_length < _STATUS_INFO_MIN_LENGTH:
            raise SstpProtocolError(
                f"{where}: STATUS_INFO length {attr_length}, must be at least 12"
            )
        attributes.append((attribute_id, attr_length))
        offset += attr_length
    if offset != length:
        raise SstpProtocolError(
            f"SSTP control message 0x{message_type:04x}: {length - offset} bytes after the "
            f"last of {count} attributes"
        )
    return message_type, attributes


def _check_message_rules(message_type: int, attributes: list[tuple[int, int]], length: int) -> None:
    rules = _MESSAGE_RULES.get(message_type)
    if rules is None:
        raise SstpProtocolError(f"SSTP control message: unknown message type 0x{message_type:04x}")
    allowed, least, most, exact_length = rules
    name = MessageType(message_type).name
    if not least <= len(attributes) <= most:
        expected = str(least) if least == most else f"{least}..{most}"
        raise SstpProtocolError(f"{name}: {len(attributes)} attributes, expected {expected}")
    for attribute_id, _ in attributes:
        if attribute_id not in allowed:
            label = _names(AttributeId).get(attribute_id, f"0x{attribute_id:02x}")
            raise SstpProtocolError(f"{name}: attribute {label} is not allowed in this message")
    if exact_length is not None and length != exact_length:
        raise SstpProtocolError(f"{name}: {length} bytes, must be {exact_length}")


def parse_packet(data: bytes, *, strict: bool = True) -> SSTP:
    """Dissect exactly one SSTP packet.

    Framing errors always raise. ``strict`` also enforces the per-message rules of
    [MS-SSTP] 2.2.9-2.2.15 (known type, which attributes, how many, fixed sizes) and
    refuses empty data packets; turn it off to look at what a misbehaving peer sent.
    """
    data = bytes(data)
    message_type, attributes = _check_structure(data)
    if strict:
        if message_type >= 0:
            _check_message_rules(message_type, attributes, len(data))
        elif len(data) == HEADER_LENGTH:
            raise SstpProtocolError("SSTP data packet without a PPP frame")
    return SSTP(data)


class SstpStreamReader:
    """Cut the TLS byte stream into SSTP packets; TLS records do not align with them.

    >>> reader = SstpStreamReader()
    >>> wire = bytes(echo_request()) + bytes(echo_response())
    >>> reader.feed(wire[:5]), len(reader.feed(wire[5:]))
    ([], 2)
    """

    def __init__(self, *, strict: bool = True) -> None:
        self._buffer = b""
        self._strict = strict

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a packet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[SSTP]:
        self._buffer += data
        packets: list[SSTP] = []
        while len(self._buffer) >= HEADER_LENGTH:
            length = declared_length(self._buffer)
            if len(self._buffer) < length:
                break
            chunk, self._buffer = self._buffer[:length], self._buffer[length:]
            packets.append(parse_packet(chunk, strict=self._strict))
        return packets
