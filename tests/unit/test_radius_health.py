"""aovpn_lab.radius.health: signed RADIUS requests and verified answers, no network."""
from __future__ import annotations

import hashlib
import hmac
import struct

import pytest

from aovpn_lab.radius.config import Secret
from aovpn_lab.radius.health import (
    ACCESS_ACCEPT,
    ACCESS_CHALLENGE,
    ACCESS_REQUEST,
    EAP_MESSAGE,
    MESSAGE_AUTHENTICATOR,
    STATUS_SERVER,
    HealthResult,
    _judge,
    build_request,
    eap_identity_response,
    parse_attrs,
    verify_response,
)

S = Secret("testing123")


def answer(request: bytes, code: int, attrs: list[tuple[int, bytes]], secret: Secret = S,
           with_ma: bool = True) -> bytes:
    """What a RADIUS server sends back (RFC 2865 §3, RFC 3579 §3.2)."""
    key = secret.reveal().encode()
    body = b"".join(bytes([t, len(v) + 2]) + v for t, v in attrs)
    if with_ma:
        body += bytes([MESSAGE_AUTHENTICATOR, 18]) + b"\0" * 16
    head = struct.pack("!BBH", code, request[1], 20 + len(body))
    if with_ma:
        mac = hmac.new(key, head + request[4:20] + body, hashlib.md5).digest()
        body = body[:-16] + mac
    auth = hashlib.md5(head + request[4:20] + body + key).digest()
    return head + auth + body


def test_request_is_signed_with_message_authenticator():
    req = build_request(STATUS_SERVER, 7, S, [(32, b"nas")], authenticator=b"A" * 16)
    code, ident, length = struct.unpack("!BBH", req[:4])
    assert (code, ident, length) == (STATUS_SERVER, 7, len(req))
    attrs = parse_attrs(req)
    assert attrs[0] == (32, b"nas") and attrs[-1][0] == MESSAGE_AUTHENTICATOR
    zeroed = req[:-16] + b"\0" * 16
    assert attrs[-1][1] == hmac.new(b"testing123", zeroed, hashlib.md5).digest()
    assert req != build_request(STATUS_SERVER, 7, Secret("other"), [(32, b"nas")], authenticator=b"A" * 16)


def test_authentic_answer_verifies_and_forgeries_do_not():
    req = build_request(ACCESS_REQUEST, 3, S, [(1, b"alice")])
    good = answer(req, ACCESS_ACCEPT, [])
    assert verify_response(good, req, S) is None
    assert "Response Authenticator" in verify_response(answer(req, ACCESS_ACCEPT, [], Secret("nope")), req, S)
    assert "identifier" in verify_response(bytes([2, req[1] ^ 1]) + good[2:], req, S)
    assert verify_response(good[:10], req, S) == "shorter than a RADIUS header"
    # a right Response Authenticator but a tampered Message-Authenticator
    bad_ma = bytearray(answer(req, ACCESS_ACCEPT, [], with_ma=False))
    bad_ma += bytes([MESSAGE_AUTHENTICATOR, 18]) + b"\1" * 16
    bad_ma[2:4] = struct.pack("!H", len(bad_ma))
    bad_ma[4:20] = hashlib.md5(bytes(bad_ma[:4]) + req[4:20] + bytes(bad_ma[20:]) + b"testing123").digest()
    assert verify_response(bytes(bad_ma), req, S) == "Message-Authenticator does not verify"


def test_eap_identity_response_layout():
    assert eap_identity_response("alice@example.net", 5) == b"\x02\x05\x00\x16\x01alice@example.net"


def test_judge_eap_tls_start():
    req = build_request(ACCESS_REQUEST, 1, S, [])
    tls_start = b"\x01\x02\x00\x06\x0d\x20"  # EAP-Request, type 13, flags S
    ok = _judge(HealthResult(False, "eap", "x", "no-answer"), answer(req, ACCESS_CHALLENGE, [(EAP_MESSAGE, tls_start)]))
    assert ok.ok and ok.answer == "Access-Challenge" and ok.eap_type == "EAP-TLS"
    md5 = b"\x01\x02\x00\x16\x04\x10" + b"\0" * 16
    not_tls = _judge(HealthResult(False, "eap", "x", "no-answer"), answer(req, ACCESS_CHALLENGE, [(EAP_MESSAGE, md5)]))
    assert not not_tls.ok and not_tls.eap_type == "MD5-Challenge" and "not offered" in not_tls.detail
    status = _judge(HealthResult(False, "status", "x", "no-answer"), answer(req, ACCESS_ACCEPT, []))
    assert status.ok and status.answer == "Access-Accept"


def test_parse_attrs_rejects_garbage():
    with pytest.raises(ValueError):
        parse_attrs(b"\0" * 20 + b"\x01\x09ab")


def test_unknown_kind():
    from aovpn_lab.radius.health import check
    with pytest.raises(ValueError):
        check("198.51.100.242", S, kind="ping")
