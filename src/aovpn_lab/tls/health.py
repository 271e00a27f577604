"""The RRAS health monitor: ``HEAD /sra_{...}/`` as a load balancer sends it, and the answer.

docs/domain.md, "Load balancing": RRAS answers the probe with ``HTTP/1.1 401``; a monitor
built for RRAS marks any other answer, or none, as down.
"""
from __future__ import annotations

import re
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import check_netns

__all__ = ["HEALTH_PATH", "RRAS_HEALTHY_STATUS", "HealthCheck", "health_check", "parse_status"]

HEALTH_PATH = "/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/"
RRAS_HEALTHY_STATUS = 401


@dataclass
class HealthCheck:
    """One ``HEAD /sra_{...}/`` as a load balancer's monitor sends it."""

    host: str
    port: int
    server_name: str | None
    request: str = f"HEAD {HEALTH_PATH} HTTP/1.1"
    answered: bool = False
    status_line: str = ""
    status: int | None = None
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    tls_version: str = ""
    tls_cipher: str = ""
    verified: bool = False  # the certificate was checked against ca_file (and the name)
    cause: str = "none"  # none | tcp-443-blocked | tls-failed | cert-untrusted | not-http | timeout
    error: str = ""
    elapsed_ms: int = 0
    netns: str | None = None

    @property
    def rras_like(self) -> bool:
        return self.status == RRAS_HEALTHY_STATUS

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rras_like"] = self.rras_like
        return data

    def summary(self) -> str:
        if self.answered:
            text = f"{self.request} -> {self.status_line}"
            if self.headers.get("server"):
                text += f" (Server: {self.headers['server']})"
            return text + f" in {self.elapsed_ms} ms"
        return f"{self.request} -> no answer ({self.cause}: {self.error}) after {self.elapsed_ms} ms"


def health_check(host: str, port: int = 443, *, server_name: str | None = None,
                 ca_file: str | None = None, netns: str | None = None,
                 timeout: float = 5.0, verify: bool | None = None) -> HealthCheck:
    """``HEAD /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1`` and what comes back.

    ``verify`` (default: when ``ca_file`` is given) checks the certificate against
    ``ca_file`` and ``server_name`` first, as a strict monitor would; load balancers
    usually do not. Never raises for what the server does.
    """
    check_netns(netns)
    if verify is None:
        verify = ca_file is not None
    if netns:
        from ..ike.craft_netns import run_in_netns
        result = run_in_netns(netns, _health, host, port, server_name, ca_file, verify, timeout,
                              netns_timeout=timeout * 3 + 10)
    else:
        result = _health(host, port, server_name, ca_file, verify, timeout)
    result.netns = netns
    return result


def _context(verify: bool, ca_file: str | None, server_name: str | None) -> ssl.SSLContext:
    if verify:
        ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        ctx.check_hostname = bool(server_name)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# (cause, error, answer head): cause None when an answer head was read
_Outcome = tuple[str | None, str, bytes]


def _request(tls: ssl.SSLSocket, result: HealthCheck, deadline: float) -> _Outcome:
    result.tls_version = tls.version() or ""
    result.tls_cipher = (tls.cipher() or ("",))[0]
    host_header = result.server_name or result.host
    request = (f"{result.request}\r\nHost: {host_header}\r\n"
               "User-Agent: aovpn-lab health monitor\r\nConnection: close\r\n\r\n")
    try:
        tls.sendall(request.encode("ascii"))
        head = _read_head(tls, deadline)
    except TimeoutError:
        return "timeout", "no HTTP answer", b""
    except (ssl.SSLError, OSError) as exc:
        return "tls-failed", f"connection broke: {exc}", b""
    return None, "", head


def _ask(result: HealthCheck, ctx: ssl.SSLContext, timeout: float, deadline: float) -> _Outcome:
    """TCP, TLS, the request and the answer's head, or where it stopped."""
    try:
        raw = socket.create_connection((result.host, result.port), timeout=timeout)
    except TimeoutError:
        return "tcp-443-blocked", f"no answer to TCP SYN within {timeout:g} s", b""
    except OSError as exc:
        return "tcp-443-blocked", exc.strerror or str(exc), b""
    try:
        raw.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            tls = ctx.wrap_socket(raw, server_hostname=result.server_name)
        except ssl.SSLCertVerificationError as exc:
            return "cert-untrusted", exc.verify_message or str(exc), b""
        except TimeoutError:
            return "timeout", "TLS handshake did not finish", b""
        except (ssl.SSLError, OSError) as exc:
            return "tls-failed", str(exc), b""
        with tls:
            return _request(tls, result, deadline)
    finally:
        raw.close()


def _read_answer(result: HealthCheck, head: bytes) -> tuple[str, str]:
    """(cause, error) from the answer's head; the status into ``result``."""
    if not head:
        return "not-http", "the server closed the connection without an answer"
    parsed = parse_status(head)
    if parsed is None:
        result.status_line = head.split(b"\r\n", 1)[0][:200].decode("latin-1")
        return "not-http", f"not an HTTP status line: {result.status_line!r}"
    result.answered = True
    result.status_line, result.status, result.reason, result.headers = parsed
    return "none", ""


def _health(host: str, port: int, server_name: str | None, ca_file: str | None, verify: bool,
            timeout: float) -> HealthCheck:
    result = HealthCheck(host=host, port=port, server_name=server_name, verified=verify)
    began = time.monotonic()
    deadline = began + timeout
    cause, error, head = _ask(result, _context(verify, ca_file, server_name), timeout, deadline)
    if cause is None:
        cause, error = _read_answer(result, head)
    result.cause, result.error = cause, error
    result.elapsed_ms = int((time.monotonic() - began) * 1000)
    return result


def _read_head(tls: ssl.SSLSocket, deadline: float, limit: int = 65536) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if data:
                break
            raise TimeoutError("deadline")
        tls.settimeout(remaining)
        try:
            chunk = tls.recv(4096)
        except ssl.SSLZeroReturnError:
            break
        if not chunk:
            break
        data += chunk
    return data


_STATUS = re.compile(rb"^(HTTP/\d(?:\.\d)?) (\d{3})(?: (.*))?$")


def parse_status(head: bytes) -> tuple[str, int, str, dict[str, str]] | None:
    """(status line, code, reason, lower-cased headers) of an HTTP answer head, or None.

    >>> parse_status(b"HTTP/1.1 401 Unauthorized\\r\\nServer: Microsoft-HTTPAPI/2.0\\r\\n\\r\\n")[:3]
    ('HTTP/1.1 401 Unauthorized', 401, 'Unauthorized')
    """
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    match = _STATUS.match(lines[0].strip())
    if not match:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")[:200]
    reason = (match.group(3) or b"").decode("latin-1")
    return lines[0].strip().decode("latin-1"), int(match.group(2)), reason, headers
