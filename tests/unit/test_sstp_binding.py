"""Crypto binding: both published Compound MAC vectors, HLAK rules, verification."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from aovpn_lab.sstp import binding, mppe, messages
from aovpn_lab.sstp.errors import SstpProtocolError
from aovpn_lab.sstp.messages import HashProtocol

SHA256_VECTOR = dict(
    hlak=bytes.fromhex("2A1BB40D55AB0F5EF32F06F2B3CC73C48FD3FAC41D7A1315A19228D9024CA164"),
    nonce=bytes.fromhex("412B489AEBD7ECC7D08966F26BE7CD72B231A0E9210D7C91B308862B0344C435"),
    cert_hash=bytes.fromhex("7993EF314C493DACE9F02D60E7E61C84B6690AAFE9D7AEEA92CBBE8AD599422D"),
    mac=bytes.fromhex("52A68EFD8CFFBF52770B8F0FE8EC73716583AF6D611EB6D179B3B20840985449"),
)
SHA1_VECTOR = dict(
    hlak=bytes.fromhex("4B3128F43925D9006EEFB1C4E86515A1D88E56BAB3CA2BDF0373B7F5A8A13B19"),
    nonce=bytes.fromhex("0F1A2D58D4A3E3000FAD3CE4906E07B707AA9E441CCEAC5CBD7B2CC1C9D86CDF"),
    cert_hash=bytes.fromhex("5826B629BDA59B8E6FD8DCD2622FD34C534805A5"),
    mac=bytes.fromhex("69915DD583D8062FEF16F61DB2F03290EC27CB6C"),
)
VECTORS = [(HashProtocol.SHA256, SHA256_VECTOR), (HashProtocol.SHA1, SHA1_VECTOR)]


@pytest.mark.parametrize("protocol, v", VECTORS, ids=["SHA256", "SHA1"])
def test_build_call_connected_reproduces_the_published_compound_mac(protocol, v):
    wire = bytes(binding.build_call_connected(protocol, v["nonce"], v["cert_hash"], v["hlak"]))
    assert len(wire) == 112 and wire[:4] == bytes.fromhex("10010070")
    assert wire[15] == protocol
    assert wire[16:48] == v["nonce"]
    assert wire[48:80] == v["cert_hash"].ljust(32, b"\x00")
    assert wire[80:112] == v["mac"].ljust(32, b"\x00")


@pytest.mark.parametrize("protocol, v", VECTORS, ids=["SHA256", "SHA1"])
def test_compound_mac_from_its_parts(protocol, v):
    unsigned = bytes(messages.call_connected(protocol, v["nonce"], v["cert_hash"]))
    cmk = binding.compound_mac_key(v["hlak"], protocol)
    assert len(cmk) == len(v["mac"])
    assert binding.compound_mac(cmk, unsigned, protocol) == v["mac"]


def test_cmk_seed_is_29_bytes_then_little_endian_length_then_one():
    hlak = SHA256_VECTOR["hlak"]
    seed = b"SSTP inner method derived CMK" + b"\x20\x00" + b"\x01"
    assert len(binding.CMK_SEED) == 29
    expected = hmac.new(hlak, seed, hashlib.sha256).digest()
    assert binding.compound_mac_key(hlak, HashProtocol.SHA256) == expected
    sha1_seed = b"SSTP inner method derived CMK" + b"\x14\x00" + b"\x01"
    assert binding.compound_mac_key(hlak, HashProtocol.SHA1) == hmac.new(
        hlak, sha1_seed, hashlib.sha1).digest()


def test_compound_mac_ignores_whatever_is_in_the_mac_field():
    v = SHA256_VECTOR
    signed = bytes(binding.build_call_connected(
        HashProtocol.SHA256, v["nonce"], v["cert_hash"], v["hlak"]))
    cmk = binding.compound_mac_key(v["hlak"], HashProtocol.SHA256)
    assert binding.compound_mac(cmk, signed, HashProtocol.SHA256) == v["mac"]


def test_hlak_for_mschapv2_is_client_send_then_client_receive():
    nt_response = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
    client = mppe.derive_keys("clientPass", nt_response)
    server = mppe.derive_keys("clientPass", nt_response, is_server=True)
    hlak = binding.hlak_from_mppe_keys(client)
    assert hlak == client.send_key + client.receive_key
    # RFC 3079's SendStartKey128 (server side) is the client's receive key: second half.
    assert hlak[16:] == bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")
    assert binding.hlak_from_mppe_keys(server) == hlak


def test_hlak_for_eap_truncates_or_pads_the_msk():
    msk = bytes(range(64))
    assert binding.hlak_from_msk(msk) == bytes(range(32))
    assert binding.hlak_from_msk(b"\x01" * 20) == b"\x01" * 20 + bytes(12)


def test_null_hlak_is_32_zero_bytes():
    assert binding.NULL_HLAK == bytes(32)


@pytest.mark.parametrize(
    "bitmask, expected",
    [(0x01, HashProtocol.SHA1), (0x02, HashProtocol.SHA256), (0x03, HashProtocol.SHA256)],
)
def test_choose_hash_protocol_prefers_sha256(bitmask, expected):
    assert binding.choose_hash_protocol(bitmask) is expected


def test_choose_hash_protocol_refuses_nothing_usable():
    with pytest.raises(SstpProtocolError, match="no SHA1/SHA256 bit"):
        binding.choose_hash_protocol(0x04)
    with pytest.raises(SstpProtocolError, match="SHA1 refused by policy"):
        binding.choose_hash_protocol(0x01, allow_sha1=False)


def test_certificate_hash_pads_sha1():
    der = b"0\x82 not really a certificate"
    assert binding.certificate_hash(der, HashProtocol.SHA256) == hashlib.sha256(der).digest()
    assert binding.certificate_hash(der, HashProtocol.SHA1) == (
        hashlib.sha1(der).digest() + bytes(12))


def test_build_call_connected_refuses_a_hash_of_the_wrong_size():
    with pytest.raises(SstpProtocolError, match="does not fit SHA256"):
        binding.build_call_connected(HashProtocol.SHA256, bytes(32), bytes(20), bytes(32))
    with pytest.raises(SstpProtocolError, match="does not fit SHA1"):
        binding.build_call_connected(HashProtocol.SHA1, bytes(32), b"\x01" * 32, bytes(32))


def test_compound_mac_key_refuses_a_short_hlak():
    with pytest.raises(SstpProtocolError, match="HLAK is 16 bytes"):
        binding.compound_mac_key(bytes(16), HashProtocol.SHA256)
