"""MS-CHAPv2 (RFC 2759 section 9.2 vectors) and MPPE keys (RFC 3079 vectors)."""
from __future__ import annotations

import pytest

from aovpn_lab.sstp import mppe, mschapv2
from aovpn_lab.sstp.errors import SstpProtocolError

USER = "User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
CHALLENGE = bytes.fromhex("D02E4386BCE91226")
PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
AUTHENTICATOR_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
SERVER_SEND_START_KEY = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")


def test_challenge_hash():
    assert mschapv2.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == CHALLENGE


def test_challenge_hash_ignores_a_domain_prefix():
    assert mschapv2.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, "CORP\\User") == CHALLENGE


def test_nt_password_hash():
    assert mschapv2.nt_password_hash(PASSWORD) == PASSWORD_HASH


def test_hash_nt_password_hash():
    # PasswordHashHash as printed in RFC 2759 9.2 / RFC 3079 3.5.3
    assert mschapv2.hash_nt_password_hash(PASSWORD_HASH).hex().upper() == (
        "41C00C584BD2D91C4017A2A12FA59F3F")


def test_challenge_response():
    assert mschapv2.challenge_response(CHALLENGE, PASSWORD_HASH) == NT_RESPONSE


def test_generate_nt_response():
    assert mschapv2.generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD) == (
        NT_RESPONSE)


def test_generate_authenticator_response():
    assert mschapv2.generate_authenticator_response(
        PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER) == AUTHENTICATOR_RESPONSE


@pytest.mark.parametrize(
    "received, expected",
    [
        (AUTHENTICATOR_RESPONSE, True),
        (AUTHENTICATOR_RESPONSE.lower().replace("s=", "S="), True),
        ("S=" + "0" * 40, False),
        (AUTHENTICATOR_RESPONSE[:-1], False),
    ],
)
def test_check_authenticator_response(received, expected):
    assert mschapv2.check_authenticator_response(
        PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER, received) is expected


def test_check_authenticator_response_fails_for_the_wrong_password():
    assert not mschapv2.check_authenticator_response(
        "serverPass", NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER, AUTHENTICATOR_RESPONSE)


def test_response_value_layout():
    value = mschapv2.response_value(PEER_CHALLENGE, NT_RESPONSE)
    assert len(value) == 49
    assert value[:16] == PEER_CHALLENGE and value[16:24] == bytes(8)
    assert value[24:48] == NT_RESPONSE and value[48] == 0  # Flags MUST be zero


def test_generate_nt_response_checks_challenge_sizes():
    with pytest.raises(SstpProtocolError, match="AuthenticatorChallenge: 8 bytes"):
        mschapv2.generate_nt_response(bytes(8), PEER_CHALLENGE, USER, PASSWORD)


def test_parse_success_with_message():
    success = mschapv2.parse_success((AUTHENTICATOR_RESPONSE + " M=Access granted").encode())
    assert success.authenticator_response == AUTHENTICATOR_RESPONSE
    assert success.message == "Access granted"


def test_parse_success_rejects_a_missing_authenticator():
    with pytest.raises(SstpProtocolError, match="no valid S="):
        mschapv2.parse_success(b"M=welcome")


@pytest.mark.parametrize(
    "text, error, retry, reason",
    [
        ("E=691 R=0 C=8D1B5B8E4B09F2C7C3A4B98A2B1E3C4D V=3 M=Authentication failure",
         691, False, "ERROR_AUTHENTICATION_FAILURE"),
        ("E=649 R=0 C=00000000000000000000000000000000 V=3 M=Dial-in denied",
         649, False, "ERROR_NO_DIALIN_PERMISSION"),
        ("E=648 R=1 V=3", 648, True, "ERROR_PASSWD_EXPIRED"),
        ("E=9999 R=0", 9999, False, "error 9999"),
        ("M=something went wrong", None, False, "without an E= error code"),
    ],
)
def test_parse_failure(text, error, retry, reason):
    failure = mschapv2.parse_failure(text.encode())
    assert failure.error == error
    assert failure.retry is retry
    assert reason in failure.reason


def test_parse_failure_keeps_spaces_in_the_message_and_decodes_the_challenge():
    failure = mschapv2.parse_failure(
        b"E=691 R=0 C=00112233445566778899AABBCCDDEEFF V=3 M=Bad user name or password")
    assert failure.message == "Bad user name or password"
    assert failure.challenge == bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    assert failure.version == 3


# -- MPPE (RFC 3079) ---------------------------------------------------------------


def test_master_key():
    password_hash_hash = mschapv2.hash_nt_password_hash(PASSWORD_HASH)
    assert mppe.get_master_key(password_hash_hash, NT_RESPONSE) == MASTER_KEY


def test_server_send_start_key_is_the_rfc_3079_vector():
    key = mppe.get_asymmetric_start_key(MASTER_KEY, 16, is_send=True, is_server=True)
    assert key == SERVER_SEND_START_KEY


def test_client_keys_mirror_the_server_keys():
    client = mppe.derive_keys(PASSWORD, NT_RESPONSE)
    server = mppe.derive_keys(PASSWORD, NT_RESPONSE, is_server=True)
    assert client.master_key == server.master_key == MASTER_KEY
    assert client.receive_key == server.send_key == SERVER_SEND_START_KEY
    assert client.send_key == server.receive_key
    assert client.send_key != client.receive_key


def test_client_send_key_uses_magic2():
    import hashlib

    expected = hashlib.sha1(MASTER_KEY + bytes(40) + mppe.MAGIC2 + b"\xf2" * 40).digest()[:16]
    assert mppe.derive_keys(PASSWORD, NT_RESPONSE).send_key == expected
    assert len(mppe.MAGIC2) == len(mppe.MAGIC3) == 84


def test_short_start_key_is_a_prefix_and_odd_lengths_are_refused():
    key8 = mppe.get_asymmetric_start_key(MASTER_KEY, 8, is_send=True, is_server=True)
    assert key8 == SERVER_SEND_START_KEY[:8]
    with pytest.raises(SstpProtocolError, match="must be 8 or 16"):
        mppe.get_asymmetric_start_key(MASTER_KEY, 5, is_send=True, is_server=True)
