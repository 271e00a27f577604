"""The server's side of the SSTP crypto binding: what a verifying server (RRAS) computes.

Written from the server's point of view straight from RFC 3079 section 3 and [MS-SSTP]
3.2.5.2, and sharing no code with the client's derivation (sstp.mppe, sstp.binding):
a verdict on the client's binding must not rest on the client's own arithmetic. Only
the hash primitives come from libraries (hashlib, and scapy's MD4, which OpenSSL 3 no
longer offers).

The server knows the user's password and saw the MS-CHAPv2 NT-Response; from them it
derives its MPPE start keys, builds the HLAK the client must have used (the client's
send key then its receive key: the server's receive key then its send key), the CMK,
and checks the Compound MAC over the 112-byte CALL_CONNECTED with the MAC field zeroed,
together with the nonce it sent and the hash of the certificate it believes the client
saw. RFC 3079's own example:

    >>> keys = server_keys("clientPass", bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF"))
    >>> keys.master.hex().upper(), keys.send.hex().upper()
    ('FDECE3717A8C838CB388E527AE3CDD31', '8B7CDC149B993A1BA118CB153F56DCCB')
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from scapy.layers.tls.crypto.md4 import MD4

# RFC 3079 section 3.4, as the server reads them.
MASTER_MAGIC = b"This is the MPPE Master Key"
SERVER_RECEIVE_MAGIC = b"On the client side, this is the send key; on the server side, it is the receive key."
SERVER_SEND_MAGIC = b"On the client side, this is the receive key; on the server side, it is the send key."
PAD_ZERO, PAD_F2 = b"\x00" * 40, b"\xf2" * 40

# [MS-SSTP] 2.2.7 / 2.2.10 / 3.2.5.2
CMK_LABEL = b"SSTP inner method derived CMK"
HASHES = {1: hashlib.sha1, 2: hashlib.sha256}          # CERT_HASH_PROTOCOL_SHA1 / _SHA256
NO_KEYS_HLAK = bytes(32)                                 # PAP: no inner-method keys
CALL_CONNECTED = 0x0004
ATTRIB_CRYPTO_BINDING = 0x03
# header(4) control header(4) attribute header(4) reserved(3) protocol(1) nonce(32) cert hash(32) MAC(32)
LAYOUT = struct.Struct("!BBH HH BBH 3sB 32s 32s 32s")


@dataclass(frozen=True)
class ServerKeys:
    master: bytes
    send: bytes      # what the server encrypts with (the client's receive key)
    receive: bytes   # what the server decrypts with (the client's send key)

    @property
    def hlak(self) -> bytes:
        """The client's MasterSendKey | MasterReceiveKey, i.e. our receive key then our send key."""
        return self.receive + self.send


def server_keys(password: str, nt_response: bytes) -> ServerKeys:
    """GetMasterKey and GetAsymmetricStartKey(IsServer=TRUE) with 128-bit keys (RFC 3079 3.4)."""
    password_hash = MD4(password.encode("utf-16-le")).digest()
    password_hash_hash = MD4(password_hash).digest()
    master = hashlib.sha1(password_hash_hash + nt_response + MASTER_MAGIC).digest()[:16]

    def start_key(magic: bytes) -> bytes:
        return hashlib.sha1(master + PAD_ZERO + magic + PAD_F2).digest()[:16]

    return ServerKeys(master, start_key(SERVER_SEND_MAGIC), start_key(SERVER_RECEIVE_MAGIC))


def expected_compound_mac(hlak: bytes, protocol: int, call_connected: bytes) -> bytes:
    """CMK = HMAC-H(HLAK, label | digest length (16-bit LE) | 0x01); MAC = HMAC-H(CMK, message, MAC zeroed)."""
    h = HASHES[protocol]
    length = h().digest_size
    cmk = hmac.new(hlak, CMK_LABEL + struct.pack("<H", length) + b"\x01", h).digest()
    zeroed = call_connected[:80] + bytes(32)
    return hmac.new(cmk, zeroed, h).digest()


class BindingRejected(Exception):
    """The CALL_CONNECTED does not bind this session; `field` names the input that differs."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_call_connected(data: bytes, *, hlak: bytes, nonce: bytes, certificate_der: bytes,
                         offered: frozenset[int]) -> int:
    """Verify a CALL_CONNECTED as the server; return the hash protocol it used.

    Raises BindingRejected naming the first field that does not match what this server
    sent (nonce), holds (its certificate) or derived (the keys behind the MAC).
    """
    if len(data) != LAYOUT.size:
        raise BindingRejected("length", f"CALL_CONNECTED is {len(data)} bytes, must be {LAYOUT.size}")
    (version, control, length, message_type, attributes, _reserved, attribute_id, attribute_length,
     _pad, protocol, got_nonce, got_cert_hash, got_mac) = LAYOUT.unpack(data)
    if (version, control & 1, length, message_type, attributes, attribute_id, attribute_length) != \
            (0x10, 1, LAYOUT.size, CALL_CONNECTED, 1, ATTRIB_CRYPTO_BINDING, 104):
        raise BindingRejected("framing", "not a CALL_CONNECTED with one crypto binding attribute")
    if protocol not in offered or protocol not in HASHES:
        raise BindingRejected("hash-protocol", f"hash protocol {protocol} was not offered in CALL_CONNECT_ACK")
    size = HASHES[protocol]().digest_size
    if not hmac.compare_digest(got_nonce, nonce):
        raise BindingRejected("nonce", "the nonce is not the one this server sent in CALL_CONNECT_ACK")
    wanted_cert = HASHES[protocol](certificate_der).digest().ljust(32, b"\x00")
    if not hmac.compare_digest(got_cert_hash, wanted_cert):
        raise BindingRejected("certificate", "the certificate hash is not this server's certificate "
                                             "(TLS terminated elsewhere: an offloading balancer or a proxy)")
    if not hmac.compare_digest(got_mac[:size], expected_compound_mac(hlak, protocol, data)) or any(got_mac[size:]):
        raise BindingRejected("compound-mac", "the Compound MAC does not verify with the keys of this "
                                              "session's inner authentication")
    return protocol
