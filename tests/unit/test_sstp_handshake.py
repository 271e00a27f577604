"""The HTTP step of SSTP: the exact request, and parsing whatever comes back."""
from __future__ import annotations

import uuid

import pytest

from aovpn_lab.sstp.errors import SstpProtocolError
from aovpn_lab.sstp.handshake import (
    DUPLEX_CONTENT_LENGTH,
    HttpResponseParser,
    NotSstpError,
    correlation_header,
    duplex_post,
    parse_response_head,
)

GUID = uuid.UUID("1b6a3b8c-2f0e-4e5b-9c1d-0123456789ab")
RRAS_200 = (b"HTTP/1.1 200\r\nContent-Length: 18446744073709551615\r\n"
            b"Server: Microsoft-HTTPAPI/2.0\r\nDate: Thu, 09 Nov 2023 10:00:00 GMT\r\n\r\n")


def test_request_is_byte_for_byte_what_windows_sends():
    assert duplex_post("vpn.example.net", GUID) == (
        b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n"
        b"Host: vpn.example.net\r\n"
        b"Content-Length: 18446744073709551615\r\n"
        b"SstpCorrelationID: {1B6A3B8C-2F0E-4E5B-9C1D-0123456789AB}\r\n"
        b"\r\n")
    assert DUPLEX_CONTENT_LENGTH == 2**64 - 1
    assert correlation_header(GUID) == "{1B6A3B8C-2F0E-4E5B-9C1D-0123456789AB}"


@pytest.mark.parametrize("host", ["", "a b", "x\r\nEvil: 1"])
def test_request_refuses_unusable_host(host):
    with pytest.raises(SstpProtocolError):
        duplex_post(host, GUID)


def test_rras_answer_without_reason_phrase_is_an_accept():
    response = HttpResponseParser().feed(RRAS_200)
    assert (response.status, response.reason, response.version) == (200, "", "1.1")
    assert response.is_sstp_accept
    assert response.header("content-length") == "18446744073709551615"
    assert response.header("SERVER") == "Microsoft-HTTPAPI/2.0"
    assert response.rest == b""


def test_byte_by_byte_and_sstp_bytes_after_the_head_are_kept():
    parser = HttpResponseParser()
    wire = RRAS_200 + b"\x10\x01\x00\x30"
    results = [parser.feed(wire[i:i + 1]) for i in range(len(RRAS_200) - 1)]
    assert results == [None] * (len(RRAS_200) - 1)
    response = parser.feed(wire[len(RRAS_200) - 1:])
    assert response.status == 200 and response.rest == b"\x10\x01\x00\x30"


@pytest.mark.parametrize("head, status", [
    (b"HTTP/1.0 501 Unsupported method ('SSTP_DUPLEX_POST')\r\nServer: SimpleHTTP/0.6\r\n\r\n", 501),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404),
    (b"HTTP/1.1 302 Found\r\nLocation: https://portal.example/\r\n\r\n", 302),
    (b"HTTP/1.1 401 Unauthorized\r\n\r\n", 401),
])
def test_other_answers_are_not_an_accept(head, status):
    response = HttpResponseParser().feed(head)
    assert response.status == status and not response.is_sstp_accept
    assert str(status) in response.describe()


@pytest.mark.parametrize("first", [b"SSH-2.0-OpenSSH_9.2\r\n", b"\x10\x01\x00\x0e", b"<html>"])
def test_non_http_first_bytes_are_refused_at_once(first):
    with pytest.raises(NotSstpError, match="not an HTTP response"):
        HttpResponseParser().feed(first)


def test_a_partial_prefix_is_not_judged_early():
    parser = HttpResponseParser()
    assert parser.feed(b"HT") is None
    with pytest.raises(NotSstpError):
        parser.feed(b"ML")


def test_endless_head_is_refused():
    parser = HttpResponseParser(max_head=100)
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(NotSstpError, match="exceeds 100 bytes"):
        parser.feed(b"X-Filler: " + b"a" * 200 + b"\r\n")


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 20 OK", b"HTTP/x.1 200 OK", b"HTTP/1.1 200 OK\r\nno colon here",
    b"HTTP/1.1 200 OK\r\n Folded: value",
])
def test_malformed_heads(head):
    with pytest.raises(NotSstpError):
        parse_response_head(head)
