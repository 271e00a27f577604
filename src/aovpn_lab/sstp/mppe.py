"""MPPE master keys from MS-CHAPv2 (RFC 3079 section 3).

SSTP never encrypts with MPPE; it needs these keys only to build the crypto binding's
HLAK (MasterSendKey | MasterReceiveKey, from the client's side). Which magic string goes
with which direction is the part implementations get wrong, so :func:`derive_keys` takes
the side explicitly::

    >>> from aovpn_lab.sstp import mppe
    >>> keys = mppe.derive_keys(
    ...     "clientPass", bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF"))
    >>> keys.master_key.hex().upper()
    'FDECE3717A8C838CB388E527AE3CDD31'
    >>> keys.receive_key.hex().upper()  # the server's send key: RFC 3079 SendStartKey128
    '8B7CDC149B993A1BA118CB153F56DCCB'
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import mschapv2
from .errors import SstpProtocolError

# RFC 3079 section 3.4
MAGIC1 = b"This is the MPPE Master Key"
MAGIC2 = (
    b"On the client side, this is the send key; on the server side, it is the receive key."
)
MAGIC3 = (
    b"On the client side, this is the receive key; on the server side, it is the send key."
)
SHS_PAD1 = b"\x00" * 40
SHS_PAD2 = b"\xf2" * 40
KEY_LENGTH = 16  # 128-bit; SSTP's HLAK takes the full 16 bytes of each


def get_master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey() (RFC 3079 3.4)."""
    return hashlib.sha1(password_hash_hash + nt_response + MAGIC1).digest()[:16]


def get_asymmetric_start_key(
    master_key: bytes, key_length: int, *, is_send: bool, is_server: bool
) -> bytes:
    """GetAsymmetricStartKey() (RFC 3079 3.4).

    Client send and server receive use Magic2; client receive and server send Magic3.
    """
    if key_length not in (8, 16):
        raise SstpProtocolError(f"MPPE session key length {key_length}, must be 8 or 16")
    magic = MAGIC2 if is_send != is_server else MAGIC3
    return hashlib.sha1(master_key + SHS_PAD1 + magic + SHS_PAD2).digest()[:key_length]


@dataclass(frozen=True)
class MppeKeys:
    """Keys of one side of the link; ``send_key`` is what that side encrypts with."""

    master_key: bytes
    send_key: bytes
    receive_key: bytes
    is_server: bool = False


def derive_keys(
    password: str, nt_response: bytes, *, is_server: bool = False, key_length: int = KEY_LENGTH
) -> MppeKeys:
    """Master key and both start keys for one side, from the password and NT-Response."""
    password_hash_hash = mschapv2.hash_nt_password_hash(mschapv2.nt_password_hash(password))
    master_key = get_master_key(password_hash_hash, nt_response)
    return MppeKeys(
        master_key=master_key,
        send_key=get_asymmetric_start_key(
            master_key, key_length, is_send=True, is_server=is_server
        ),
        receive_key=get_asymmetric_start_key(
            master_key, key_length, is_send=False, is_server=is_server
        ),
        is_server=is_server,
    )
