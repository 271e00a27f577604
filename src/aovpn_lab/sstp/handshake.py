"""The HTTPS step that turns a TLS connection into an SSTP one ([MS-SSTP] 2.2.1, 3.2.4.1).

The client sends one request with the odd ``SSTP_DUPLEX_POST`` method, a fixed URI, the
largest possible Content-Length and a correlation GUID; an SSTP server answers ``200``
and from then on both directions carry SSTP packets. Anything else (a web server's 404
or 501, a load balancer's error page, a redirect to a portal) means the name and port
do not lead to an SSTP service::

    >>> import uuid
    >>> from aovpn_lab.sstp.handshake import duplex_post, HttpResponseParser
    >>> request = duplex_post("vpn.example.net", uuid.UUID(int=1))
    >>> request.splitlines()[0]
    b'SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1'
    >>> parser = HttpResponseParser()
    >>> parser.feed(b"HTTP/1.1 200\\r\\nContent-Length: 18446744073709551615\\r\\n")
    >>> response = parser.feed(b"Server: Microsoft-HTTPAPI/2.0\\r\\n\\r\\n\\x10\\x01")
    >>> response.status, response.header("server"), response.rest
    (200, 'Microsoft-HTTPAPI/2.0', b'\\x10\\x01')
    >>> response.is_sstp_accept
    True
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from .errors import SstpProtocolError

SRA_PATH = "/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/"
METHOD = "SSTP_DUPLEX_POST"
# 2**64 - 1: the request body never ends; SSTP packets follow the headers.
DUPLEX_CONTENT_LENGTH = 18446744073709551615
MAX_RESPONSE_HEAD = 16384  # a real SSTP answer is ~150 bytes; a portal page is not one

_STATUS_LINE = re.compile(rb"^HTTP/(\d)\.(\d) (\d{3})(?: (.*))?$")


class NotSstpError(SstpProtocolError):
    """The peer speaks something other than SSTP's HTTP step (or garbles it)."""


def correlation_header(correlation_id: uuid.UUID) -> str:
    """``{GUID}`` in upper case, the way Windows writes SstpCorrelationID."""
    return "{" + str(correlation_id).upper() + "}"


def duplex_post(host: str, correlation_id: uuid.UUID) -> bytes:
    """The request of [MS-SSTP] 3.2.4.1 (what Windows' RasSstp sends, header for header)."""
    if not host or any(c in host for c in "\r\n "):
        raise SstpProtocolError(f"SSTP_DUPLEX_POST: unusable Host value {host!r}")
    return (
        f"{METHOD} {SRA_PATH} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Content-Length: {DUPLEX_CONTENT_LENGTH}\r\n"
        f"SstpCorrelationID: {correlation_header(correlation_id)}\r\n"
        "\r\n"
    ).encode("ascii")


@dataclass(frozen=True)
class HttpResponse:
    version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    rest: bytes = field(default=b"", repr=False)  # bytes after the blank line: SSTP already

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def is_sstp_accept(self) -> bool:
        return self.status == 200

    def describe(self) -> str:
        server = self.header("server")
        text = f"HTTP/{self.version} {self.status}{(' ' + self.reason) if self.reason else ''}"
        return f"{text} (Server: {server})" if server else text


class HttpResponseParser:
    """Collect the response head from the TLS byte stream; None until it is complete."""

    def __init__(self, max_head: int = MAX_RESPONSE_HEAD) -> None:
        self._buffer = b""
        self._max_head = max_head

    def feed(self, data: bytes) -> HttpResponse | None:
        self._buffer += data
        prefix = self._buffer[:5]
        if prefix != b"HTTP/"[:len(prefix)]:
            raise NotSstpError(
                f"the server's first bytes are not an HTTP response: {self._buffer[:16]!r}"
            )
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > self._max_head:
                raise NotSstpError(
                    f"HTTP response head exceeds {self._max_head} bytes without ending"
                )
            return None
        head, rest = self._buffer[:end], self._buffer[end + 4:]
        return parse_response_head(head, rest)


def parse_response_head(head: bytes, rest: bytes = b"") -> HttpResponse:
    lines = head.split(b"\r\n")
    match = _STATUS_LINE.match(lines[0].rstrip())
    if not match:
        raise NotSstpError(f"malformed HTTP status line {lines[0][:80]!r}")
    major, minor, status, reason = match.groups()
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name.strip() or name != name.strip():
            raise NotSstpError(f"malformed HTTP header line {line[:80]!r}")
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return HttpResponse(
        version=f"{major.decode()}.{minor.decode()}",
        status=int(status),
        reason=(reason or b"").decode("latin-1").strip(),
        headers=tuple(headers),
        rest=rest,
    )
