"""MS-CHAPv2 (RFC 2759): the client's computations and the PPP message formats.

Function names follow the RFC's pseudo-code, so each can be checked against it. MD4 comes
from scapy's pure-Python implementation because OpenSSL 3 no longer offers it through
hashlib; single DES is 3DES with the key repeated (the decrepit 8-byte-key form warns)::

    >>> from aovpn_lab.sstp import mschapv2
    >>> nt = mschapv2.generate_nt_response(
    ...     bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628"),
    ...     bytes.fromhex("21402324255E262A28295F2B3A337C7E"), "User", "clientPass")
    >>> nt.hex().upper()
    '82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF'
    >>> mschapv2.parse_failure("E=691 R=0 C=00112233445566778899AABBCCDDEEFF V=3 M=Bad").reason
    'ERROR_AUTHENTICATION_FAILURE: wrong user name or password'
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from scapy.layers.tls.crypto.md4 import MD4

from .errors import SstpProtocolError

CHALLENGE_LENGTH = 16
NT_RESPONSE_LENGTH = 24
RESPONSE_VALUE_LENGTH = 49  # PeerChallenge 16 + Reserved 8 + NT-Response 24 + Flags 1

# RFC 2759 section 8.7
MAGIC1 = b"Magic server to client signing constant"
MAGIC2 = b"Pad to make it do more than one iteration"

# RFC 2759 section 6 plus the codes Windows servers actually send.
FAILURE_REASONS = {
    646: "ERROR_RESTRICTED_LOGON_HOURS: logon not permitted at this time",
    647: "ERROR_ACCT_DISABLED: account disabled",
    648: "ERROR_PASSWD_EXPIRED: password expired",
    649: "ERROR_NO_DIALIN_PERMISSION: user has no dial-in (network policy) permission",
    691: "ERROR_AUTHENTICATION_FAILURE: wrong user name or password",
    709: "ERROR_CHANGING_PASSWORD: error changing password",
}


def _md4(data: bytes) -> bytes:
    return MD4(data).digest()


def _user_name_for_hash(username: str) -> bytes:
    # RFC 2759 8.2: the user name "excluding any prepended domain name" goes into the
    # challenge hash, while the Name field of the Response carries it whole.
    return username.rsplit("\\", 1)[-1].encode("utf-8")


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: str) -> bytes:
    """ChallengeHash(): the 8-byte challenge fed to DES (RFC 2759 8.2)."""
    digest = hashlib.sha1(
        peer_challenge + authenticator_challenge + _user_name_for_hash(username)
    ).digest()
    return digest[:8]


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash(): MD4 over the UTF-16LE password (RFC 2759 8.3)."""
    return _md4(password.encode("utf-16-le"))


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """HashNtPasswordHash() (RFC 2759 8.4)."""
    return _md4(password_hash)


def _des_key(seven: bytes) -> bytes:
    """Spread 56 key bits over 8 bytes, low bit of each byte left for parity (ignored)."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def des_encrypt(clear: bytes, key7: bytes) -> bytes:
    """DesEncrypt() (RFC 2759 8.6): one 8-byte block under a 7-byte key."""
    key = _des_key(key7)
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(clear) + encryptor.finalize()


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse() (RFC 2759 8.5): three DES blocks over the zero-padded hash."""
    z = password_hash.ljust(21, b"\x00")
    return b"".join(des_encrypt(challenge, z[i:i + 7]) for i in (0, 7, 14))


def generate_nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, username: str, password: str
) -> bytes:
    """GenerateNTResponse() (RFC 2759 8.1)."""
    _check("AuthenticatorChallenge", authenticator_challenge, CHALLENGE_LENGTH)
    _check("PeerChallenge", peer_challenge, CHALLENGE_LENGTH)
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(challenge, nt_password_hash(password))


def generate_authenticator_response(
    password: str,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: str,
) -> str:
    """GenerateAuthenticatorResponse() (RFC 2759 8.7): the ``S=`` + 40 hex digits string."""
    password_hash_hash = hash_nt_password_hash(nt_password_hash(password))
    digest = hashlib.sha1(password_hash_hash + nt_response + MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = hashlib.sha1(digest + challenge + MAGIC2).digest()
    return "S=" + digest.hex().upper()


def check_authenticator_response(
    password: str,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: str,
    received: str,
) -> bool:
    """CheckAuthenticatorResponse() (RFC 2759 8.8); hex case does not matter."""
    expected = generate_authenticator_response(
        password, nt_response, peer_challenge, authenticator_challenge, username
    )
    return hmac.compare_digest(expected.upper().encode(), received.strip().upper().encode())


# ---------------------------------------------------------------------------------------
# Message formats (RFC 2759 sections 4 - 6)


def response_value(peer_challenge: bytes, nt_response: bytes, flags: int = 0) -> bytes:
    """The 49-byte Value of a Response packet; Flags MUST be zero (RFC 2759 4)."""
    _check("PeerChallenge", peer_challenge, CHALLENGE_LENGTH)
    _check("NT-Response", nt_response, NT_RESPONSE_LENGTH)
    return peer_challenge + bytes(8) + nt_response + bytes([flags])


@dataclass(frozen=True)
class SuccessMessage:
    authenticator_response: str  # "S=" + 40 hex digits
    message: str


@dataclass(frozen=True)
class FailureMessage:
    error: int | None
    retry: bool
    challenge: bytes | None
    version: int | None
    message: str

    @property
    def reason(self) -> str:
        if self.error is None:
            return "failure without an E= error code"
        return FAILURE_REASONS.get(self.error, f"error {self.error}")


_SUCCESS = re.compile(r"^(S=[0-9A-Fa-f]{40})(?:\s+M=(?P<message>.*))?\s*$", re.DOTALL)
_FAILURE_FIELD = re.compile(r"([ERCVM])=")


def parse_success(data: bytes) -> SuccessMessage:
    """Success packet Message: ``S=<auth_string> M=<message>`` (RFC 2759 5)."""
    text = data.decode("latin-1")
    match = _SUCCESS.match(text)
    if not match:
        raise SstpProtocolError(f"MS-CHAPv2 Success: no valid S=<40 hex> in {text!r}")
    return SuccessMessage(match.group(1), match.group("message") or "")


def parse_failure(data: bytes | str) -> FailureMessage:
    """Failure packet Message: ``E=eeeeeeeeee R=r C=cccc V=vvvv M=<msg>`` (RFC 2759 6).

    Lenient about field order and missing fields: servers differ, and the failure has
    to be reported either way. M= runs to the end because the text may contain spaces.
    """
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    fields: dict[str, str] = {}
    message_at = text.find("M=")
    head = text if message_at < 0 else text[:message_at]
    if message_at >= 0:
        fields["M"] = text[message_at + 2:].strip()
    for token in head.split():
        if _FAILURE_FIELD.match(token):
            fields[token[0]] = token[2:]

    def number(key: str) -> int | None:
        try:
            return int(fields[key])
        except (KeyError, ValueError):
            return None

    challenge = None
    if "C" in fields:
        try:
            challenge = bytes.fromhex(fields["C"])
        except ValueError:
            challenge = None
    return FailureMessage(
        error=number("E"),
        retry=fields.get("R") == "1",
        challenge=challenge,
        version=number("V"),
        message=fields.get("M", ""),
    )


def _check(what: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise SstpProtocolError(f"MS-CHAPv2 {what}: {len(value)} bytes, expected {length}")
