"""The verifying server's side of the crypto binding, checked against the published vectors
([MS-SSTP] 4.7 Compound MAC examples, RFC 3079 3.5.3 keys) and against the client's packets:
two derivations that share no code must agree."""
from __future__ import annotations

import hashlib
import struct

import pytest

from aovpn_lab.sstp import binding, mppe, serverbinding
from aovpn_lab.sstp.messages import HashProtocol

# RFC 3079 3.5.3 (MS-CHAPv2 with 128-bit keys): the server's keys
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
MASTER_KEY = "FDECE3717A8C838CB388E527AE3CDD31"
SERVER_SEND_KEY = "8B7CDC149B993A1BA118CB153F56DCCB"   # SendStartKey128

# [MS-SSTP] 4.7
SHA256 = dict(protocol=2,
              hlak="2A1BB40D55AB0F5EF32F06F2B3CC73C48FD3FAC41D7A1315A19228D9024CA164",
              nonce="412B489AEBD7ECC7D08966F26BE7CD72B231A0E9210D7C91B308862B0344C435",
              cert_hash="7993EF314C493DACE9F02D60E7E61C84B6690AAFE9D7AEEA92CBBE8AD599422D",
              mac="52A68EFD8CFFBF52770B8F0FE8EC73716583AF6D611EB6D179B3B20840985449")
SHA1 = dict(protocol=1,
            hlak="4B3128F43925D9006EEFB1C4E86515A1D88E56BAB3CA2BDF0373B7F5A8A13B19",
            nonce="0F1A2D58D4A3E3000FAD3CE4906E07B707AA9E441CCEAC5CBD7B2CC1C9D86CDF",
            cert_hash="5826B629BDA59B8E6FD8DCD2622FD34C534805A5",
            mac="69915DD583D8062FEF16F61DB2F03290EC27CB6C")


def wire(protocol: int, nonce: bytes, cert_hash: bytes, mac: bytes = b"") -> bytes:
    """CALL_CONNECTED laid out by hand from [MS-SSTP] 2.2.13 and 2.2.7."""
    return (bytes.fromhex("10010070") + struct.pack("!HH", 0x0004, 1) + struct.pack("!BBH", 0, 3, 104)
            + bytes(3) + bytes([protocol]) + nonce + cert_hash.ljust(32, b"\0") + mac.ljust(32, b"\0"))


def test_the_server_derives_the_rfc_3079_keys():
    keys = serverbinding.server_keys("clientPass", NT_RESPONSE)
    assert keys.master.hex().upper() == MASTER_KEY and keys.send.hex().upper() == SERVER_SEND_KEY
    assert keys.hlak == keys.receive + keys.send and len(keys.hlak) == 32


@pytest.mark.parametrize("v", [SHA256, SHA1], ids=["SHA256", "SHA1"])
def test_the_server_reproduces_the_published_compound_macs(v):
    unsigned = wire(v["protocol"], bytes.fromhex(v["nonce"]), bytes.fromhex(v["cert_hash"]))
    mac = serverbinding.expected_compound_mac(bytes.fromhex(v["hlak"]), v["protocol"], unsigned)
    assert mac.hex().upper() == v["mac"]


def test_a_client_packet_verifies_with_the_servers_own_keys():
    cert = b"DER of the server's certificate"
    nonce = bytes(range(32))
    client_hlak = binding.hlak_from_mppe_keys(mppe.derive_keys("clientPass", NT_RESPONSE))
    packet = bytes(binding.build_call_connected(HashProtocol.SHA256, nonce, hashlib.sha256(cert).digest(),
                                                client_hlak))
    server = serverbinding.server_keys("clientPass", NT_RESPONSE)
    assert server.hlak == client_hlak
    assert serverbinding.check_call_connected(packet, hlak=server.hlak, nonce=nonce, certificate_der=cert,
                                              offered=frozenset({2})) == 2


def _signed(cert=b"cert", nonce=bytes(32), hlak=bytes(32), protocol=2):
    h = serverbinding.HASHES[protocol]
    unsigned = wire(protocol, nonce, h(cert).digest())
    return wire(protocol, nonce, h(cert).digest(), serverbinding.expected_compound_mac(hlak, protocol, unsigned))


@pytest.mark.parametrize("kwargs, field", [
    (dict(nonce=b"\x01" * 32), "nonce"),
    (dict(certificate_der=b"the balancer's certificate"), "certificate"),
    (dict(hlak=b"\x02" * 32), "compound-mac"),
    (dict(offered=frozenset({1})), "hash-protocol"),
])
def test_the_server_names_the_input_that_differs(kwargs, field):
    args = dict(hlak=bytes(32), nonce=bytes(32), certificate_der=b"cert", offered=frozenset({2}))
    args.update(kwargs)
    with pytest.raises(serverbinding.BindingRejected) as err:
        serverbinding.check_call_connected(_signed(), **args)
    assert err.value.field == field


def test_a_corrupted_compound_mac_is_rejected():
    good = bytearray(_signed())
    good[100] ^= 0x01
    with pytest.raises(serverbinding.BindingRejected, match="Compound MAC does not verify"):
        serverbinding.check_call_connected(bytes(good), hlak=bytes(32), nonce=bytes(32), certificate_der=b"cert",
                                           offered=frozenset({2}))


def test_anything_but_a_112_byte_call_connected_is_refused():
    with pytest.raises(serverbinding.BindingRejected) as err:
        serverbinding.check_call_connected(_signed()[:100], hlak=bytes(32), nonce=bytes(32), certificate_der=b"c",
                                           offered=frozenset({2}))
    assert err.value.field == "length"
