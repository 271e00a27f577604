"""SSTP codec: the MS-SSTP examples byte for byte, round trips, and malformed input."""
from __future__ import annotations

import pytest
from scapy.layers.ppp import HDLC, PPP, PPP_LCP_Configure, PPP_LCP_Echo, PPP_LCP_Magic_Number_Option

from aovpn_lab.sstp import messages as m
from aovpn_lab.sstp.errors import SstpProtocolError

# [MS-SSTP] 4.7 example CALL_CONNECT_REQUEST
CONNECT_REQUEST = bytes.fromhex("10 01 00 0E 00 01 00 01 00 01 00 06 00 01")
NONCE = bytes(range(32))


def test_call_connect_request_builds_the_ms_sstp_example():
    assert bytes(m.call_connect_request()) == CONNECT_REQUEST


def test_call_connect_request_example_parses_to_typed_fields():
    pkt = m.parse_packet(CONNECT_REQUEST)
    assert pkt.version == 0x10 and pkt.is_control and pkt.length == 14
    assert pkt.message_type == m.MessageType.CALL_CONNECT_REQUEST
    assert pkt.num_attributes == 1
    attr = pkt[m.SstpControl].attribute(m.EncapsulatedProtocolId)
    assert isinstance(attr, m.EncapsulatedProtocolId)
    assert attr.length == 6 and attr.protocol_id == m.ENCAPSULATED_PROTOCOL_PPP


def test_call_connect_ack_is_48_bytes_with_the_request_attribute():
    wire = bytes(m.call_connect_ack(m.HashProtocol.SHA1 | m.HashProtocol.SHA256, NONCE))
    assert len(wire) == 48
    assert wire[:12] == bytes.fromhex("10 01 00 30 00 02 00 01 00 04 00 28")
    assert wire[15] == 0x03 and wire[16:] == NONCE
    attr = m.parse_packet(wire)[m.SstpControl].attribute(m.AttributeId.CRYPTO_BINDING_REQ)
    assert attr.hash_protocol_bitmask.SHA1 and attr.hash_protocol_bitmask.SHA256
    assert attr.nonce == NONCE


def test_call_connected_is_112_bytes_with_the_documented_header():
    wire = bytes(m.call_connected(m.HashProtocol.SHA1, NONCE, b"\xaa" * 20, b"\xbb" * 20))
    assert len(wire) == 112
    assert wire[:4] == bytes.fromhex("10 01 00 70")
    assert wire[4:12] == bytes.fromhex("00 04 00 01 00 03 00 68")
    assert wire[12:16] == bytes.fromhex("00 00 00 01")
    # SHA1 values are zero padded to 32 bytes, in both hash fields.
    assert wire[48:80] == b"\xaa" * 20 + bytes(12)
    assert wire[80:112] == b"\xbb" * 20 + bytes(12)


@pytest.mark.parametrize(
    "packet",
    [
        m.call_connect_request(),
        m.call_connect_ack(m.HashProtocol.SHA256, NONCE),
        m.call_connect_nak(
            m.StatusInfo(attrib_id=m.AttributeId.ENCAPSULATED_PROTOCOL_ID,
                         status=m.AttributeStatus.VALUE_NOT_SUPPORTED, attrib_value=b"\x00\x02")
        ),
        m.call_connected(m.HashProtocol.SHA256, NONCE, b"\x01" * 32, b"\x02" * 32),
        m.call_abort(m.AttributeStatus.NEGOTIATION_TIMEOUT),
        m.call_disconnect(),
        m.call_disconnect_ack(),
        m.echo_request(),
        m.echo_response(),
    ],
    ids=lambda p: m.MessageType(p.message_type).name,
)
def test_control_messages_round_trip(packet):
    wire = bytes(packet)
    parsed = m.parse_packet(wire)
    assert bytes(parsed) == wire
    assert parsed.length == len(wire)
    assert parsed.message_type == packet.message_type
    assert parsed.num_attributes == len(packet.attributes)


def test_status_info_carries_attribute_status_and_value():
    wire = bytes(m.call_connect_nak(m.StatusInfo(
        attrib_id=m.AttributeId.ENCAPSULATED_PROTOCOL_ID,
        status=m.AttributeStatus.VALUE_NOT_SUPPORTED, attrib_value=b"\x00\x02")))
    assert wire[8:] == bytes.fromhex("00 02 00 0E 00 00 00 01 00 00 00 04 00 02")
    status = m.parse_packet(wire)[m.SstpControl].attribute(m.StatusInfo)
    assert status.status == m.AttributeStatus.VALUE_NOT_SUPPORTED
    assert status.attrib_value == b"\x00\x02"


def test_echo_request_is_the_8_byte_form():
    assert bytes(m.echo_request()) == bytes.fromhex("10 01 00 08 00 08 00 00")


def test_data_packet_carries_a_bare_ppp_frame():
    lcp = bytes(HDLC() / PPP(proto=0xC021) / PPP_LCP_Configure(
        id=1, options=[PPP_LCP_Magic_Number_Option(magic_number=0x01020304)]))
    wire = bytes(m.data_packet(lcp))
    assert wire[:2] == b"\x10\x00"  # C bit clear
    assert int.from_bytes(wire[2:4], "big") == 4 + len(lcp)
    assert wire[4:6] == b"\xff\x03"  # no HDLC flag, no escaping
    parsed = m.parse_packet(wire)
    assert not parsed.is_control
    assert parsed[PPP_LCP_Configure].options[0].magic_number == 0x01020304
    assert bytes(parsed.payload) == lcp


def test_data_packet_keeps_trailing_octets_scapy_calls_padding():
    frame = bytes(HDLC() / PPP(proto=0xC021) / PPP_LCP_Echo(id=1, magic_number=1)) + b"\x00\x00"
    wire = bytes(m.data_packet(frame))
    assert wire[4:] == frame and m.parse_packet(wire).length == len(wire)


def test_stream_reader_reassembles_packets_split_across_records():
    wire = CONNECT_REQUEST + bytes(m.echo_request()) + bytes(m.call_disconnect_ack())
    reader = m.SstpStreamReader()
    got = []
    for i in range(0, len(wire), 5):
        got += reader.feed(wire[i:i + 5])
    assert [p.message_type for p in got] == [
        m.MessageType.CALL_CONNECT_REQUEST, m.MessageType.ECHO_REQUEST,
        m.MessageType.CALL_DISCONNECT_ACK]
    assert reader.pending == 0


def test_stream_reader_rejects_a_non_sstp_stream_early():
    with pytest.raises(SstpProtocolError, match="version 0x48"):
        m.SstpStreamReader().feed(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x10\x01", "too short"),
        (bytes.fromhex("20 01 00 0E 00 01 00 01 00 01 00 06 00 01"), "version 0x20"),
        (bytes.fromhex("10 01 00 0F 00 01 00 01 00 01 00 06 00 01"), "length field says 15"),
        (bytes.fromhex("10 01 00 02"), "below the 4-byte header"),
        (bytes.fromhex("10 01 00 06 00 01"), "needs at least 8"),
        (bytes.fromhex("10 01 00 0C 00 01 00 01 00 01 00 06"), "does not fit"),
        (bytes.fromhex("10 01 00 0E 00 01 00 02 00 01 00 06 00 01"), "attribute 2 of 2: missing"),
        (bytes.fromhex("10 01 00 0E 00 01 00 01 00 01 00 02 00 01"), "length 2 does not fit"),
        (bytes.fromhex("10 01 00 10 00 01 00 01 00 01 00 08 00 01 00 00"), "must be 6"),
        (bytes.fromhex("10 01 00 10 00 01 00 01 00 01 00 06 00 01 00 00"), "2 bytes after"),
        (bytes.fromhex("10 01 00 10 00 05 00 01 00 02 00 08 00 00 00 00"), "at least 12"),
    ],
)
def test_malformed_framing_raises_one_clear_error(data, message):
    with pytest.raises(SstpProtocolError, match=message):
        m.parse_packet(data)


@pytest.mark.parametrize(
    "packet, message",
    [
        (m.control_message(m.MessageType.CALL_CONNECT_ACK), "0 attributes, expected 1"),
        (m.control_message(m.MessageType.CALL_CONNECTED, m.EncapsulatedProtocolId()),
         "ENCAPSULATED_PROTOCOL_ID is not allowed"),
        (m.control_message(0x0A), "unknown message type 0x000a"),
        (m.control_message(m.MessageType.ECHO_REQUEST, m.StatusInfo()), "1 attributes, expected 0"),
        (m.control_message(m.MessageType.CALL_ABORT, m.StatusInfo(), m.StatusInfo()), "0..1"),
        (m.control_message(m.MessageType.CALL_CONNECT_NAK), "expected 1..256"),
    ],
)
def test_strict_parse_enforces_per_message_rules(packet, message):
    wire = bytes(packet)
    with pytest.raises(SstpProtocolError, match=message):
        m.parse_packet(wire)
    # ...and lenient parsing still shows what the peer sent.
    assert m.parse_packet(wire, strict=False).message_type == packet.message_type


def test_strict_parse_refuses_an_empty_data_packet():
    with pytest.raises(SstpProtocolError, match="without a PPP frame"):
        m.parse_packet(b"\x10\x00\x00\x04")


def test_reserved_bits_are_ignored_on_receipt():
    # MS-SSTP: reserved bits MUST be ignored on receipt, including the R nibble of Length.
    data = bytearray(CONNECT_REQUEST)
    data[1] |= 0xFE
    data[2] |= 0xF0
    assert m.parse_packet(bytes(data)).length == 14


def test_oversized_packet_cannot_be_built():
    with pytest.raises(SstpProtocolError, match="12-bit length"):
        bytes(m.data_packet(b"\xff\x03\x00\x21" + bytes(5000)))


def test_builders_check_nonce_length():
    with pytest.raises(SstpProtocolError, match="nonce: 31 bytes"):
        m.call_connect_ack(m.HashProtocol.SHA256, bytes(31))
