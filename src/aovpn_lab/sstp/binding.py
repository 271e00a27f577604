"""SSTP crypto binding ([MS-SSTP] 3.2.5.2): HLAK, CMK, Compound MAC, CALL_CONNECTED.

The binding proves to the server that whoever authenticated inside PPP also owns this
TLS connection, and that the TLS certificate the client saw is the one the server has
configured. A TLS-offloading balancer or an inspecting middlebox changes that
certificate, and RRAS then drops the session right after it comes up::

    >>> from aovpn_lab.sstp import binding
    >>> from aovpn_lab.sstp.messages import HashProtocol
    >>> pkt = binding.build_call_connected(
    ...     HashProtocol.SHA256, nonce=bytes(32), cert_hash=bytes(32), hlak=binding.NULL_HLAK)
    >>> wire = bytes(pkt)
    >>> len(wire), wire[:4].hex()
    (112, '10010070')

A server checks it with its own derivation (:mod:`aovpn_lab.sstp.serverbinding`, which
shares no code with this module).

Both published vectors (SHA256 and SHA1) reproduce with the construction below as
written: the seed has no terminating NUL, LEN is the digest size as 16-bit
little-endian, and the MAC covers all 112 bytes of CALL_CONNECTED with the MAC field
zeroed, including the header. For SHA1 the HLAK stays 32 bytes; only the CMK, the
certificate hash and the MAC are 20 bytes, the latter two zero padded to 32 on the wire.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Callable

from .errors import SstpProtocolError
from .messages import (
    HASH_FIELD_LENGTH,
    NONCE_LENGTH,
    SSTP,
    HashProtocol,
    call_connected,
)
from .mppe import MppeKeys

HLAK_LENGTH = 32
NULL_HLAK = bytes(HLAK_LENGTH)  # PAP and anything else that yields no keys
CMK_SEED = b"SSTP inner method derived CMK"  # 29 ASCII bytes, no NUL

# Offset of the Compound MAC inside the 112-byte CALL_CONNECTED: header 4, control
# header 4, attribute header 4, reserved 3, hash protocol 1, nonce 32, cert hash 32.
COMPOUND_MAC_OFFSET = 80
CALL_CONNECTED_LENGTH = 112

_DIGESTS: dict[HashProtocol, Callable] = {
    HashProtocol.SHA1: hashlib.sha1,
    HashProtocol.SHA256: hashlib.sha256,
}


def _digest(hash_protocol: int) -> Callable:
    try:
        return _DIGESTS[HashProtocol(hash_protocol)]
    except (ValueError, KeyError):
        raise SstpProtocolError(
            f"crypto binding: hash protocol {hash_protocol!r} is neither SHA1 (1) nor SHA256 (2)"
        ) from None


def digest_size(hash_protocol: int) -> int:
    return _digest(hash_protocol)().digest_size


def choose_hash_protocol(bitmask: int, *, allow_sha1: bool = True) -> HashProtocol:
    """Pick from CALL_CONNECT_ACK's bitmask: SHA256 whenever offered ([MS-SSTP] 2.2.10)."""
    if bitmask & HashProtocol.SHA256:
        return HashProtocol.SHA256
    if bitmask & HashProtocol.SHA1 and allow_sha1:
        return HashProtocol.SHA1
    raise SstpProtocolError(
        f"CALL_CONNECT_ACK hash protocol bitmask 0x{bitmask:02x} offers nothing usable "
        f"({'SHA1 refused by policy' if bitmask & HashProtocol.SHA1 else 'no SHA1/SHA256 bit'})"
    )


# ---------------------------------------------------------------------------------------
# HLAK


def hlak_from_mppe_keys(keys: MppeKeys) -> bytes:
    """MS-CHAPv2: MasterSendKey | MasterReceiveKey as the *client* sees them.

    That is the Magic2 key then the Magic3 key; network-manager-sstp's pppd plugin
    hands pppd's client-side mppe_send_key | mppe_recv_key to sstp-client the same way.

    A server holds the same two keys the other way round (its receive key is the
    client's send key), so it builds the same HLAK by swapping them back.
    """
    send, receive = (keys.receive_key, keys.send_key) if keys.is_server else (
        keys.send_key, keys.receive_key)
    return _fit(send + receive)


def hlak_from_msk(msk: bytes) -> bytes:
    """EAP methods: the first 32 bytes of the MSK, zero padded if shorter."""
    return _fit(msk)


def _fit(material: bytes) -> bytes:
    return material[:HLAK_LENGTH].ljust(HLAK_LENGTH, b"\x00")


# ---------------------------------------------------------------------------------------
# CMK and Compound MAC


def compound_mac_key(hlak: bytes, hash_protocol: int) -> bytes:
    """CMK = HMAC-H(HLAK, seed | LEN (16-bit LE digest size) | 0x01) (the T1 of the PRF+)."""
    digest = _digest(hash_protocol)
    if len(hlak) != HLAK_LENGTH:
        raise SstpProtocolError(f"crypto binding: HLAK is {len(hlak)} bytes, must be 32")
    seed = CMK_SEED + digest().digest_size.to_bytes(2, "little") + b"\x01"
    return hmac.new(hlak, seed, digest).digest()


def compound_mac(cmk: bytes, call_connected_bytes: bytes, hash_protocol: int) -> bytes:
    """HMAC-H(CMK, CALL_CONNECTED with the MAC field zeroed); unpadded digest."""
    if len(call_connected_bytes) != CALL_CONNECTED_LENGTH:
        raise SstpProtocolError(
            f"CALL_CONNECTED is {len(call_connected_bytes)} bytes, must be {CALL_CONNECTED_LENGTH}"
        )
    zeroed = (
        bytes(call_connected_bytes[:COMPOUND_MAC_OFFSET])
        + bytes(HASH_FIELD_LENGTH)
        + bytes(call_connected_bytes[COMPOUND_MAC_OFFSET + HASH_FIELD_LENGTH:])
    )
    return hmac.new(cmk, zeroed, _digest(hash_protocol)).digest()


def certificate_hash(certificate_der: bytes, hash_protocol: int) -> bytes:
    """Hash of the server's leaf certificate (DER) as carried on the wire (32 bytes)."""
    return _digest(hash_protocol)(certificate_der).digest().ljust(HASH_FIELD_LENGTH, b"\x00")


def build_call_connected(
    hash_protocol: HashProtocol, nonce: bytes, cert_hash: bytes, hlak: bytes
) -> SSTP:
    """The complete CALL_CONNECTED for the nonce from CALL_CONNECT_ACK.

    ``cert_hash`` is the raw digest (20 or 32 bytes) or already padded to 32.
    """
    size = digest_size(hash_protocol)
    if len(nonce) != NONCE_LENGTH:
        raise SstpProtocolError(f"crypto binding: nonce is {len(nonce)} bytes, must be 32")
    if len(cert_hash) not in (size, HASH_FIELD_LENGTH) or any(cert_hash[size:]):
        raise SstpProtocolError(
            f"crypto binding: certificate hash of {len(cert_hash)} bytes does not fit "
            f"{HashProtocol(hash_protocol).name} ({size} bytes, zero padded to 32)"
        )
    unsigned = call_connected(hash_protocol, nonce, cert_hash[:size])
    mac = compound_mac(compound_mac_key(hlak, hash_protocol), bytes(unsigned), hash_protocol)
    return call_connected(hash_protocol, nonce, cert_hash[:size], mac)
