"""TCP and TLS for the SSTP client: connect, verify, and keep the evidence.

Every failure below the HTTP layer becomes a :class:`TransportFailure` naming the cause
the probe reports (``tcp-443-blocked``, ``tls-failed``, ``cert-untrusted``), the phase
and what was seen. A successful connection carries what the crypto binding needs (the
DER of the server's leaf certificate) and what a report shows (TLS version, cipher,
certificate hashes and names)::

    >>> failure = TransportFailure("tcp-443-blocked", "connection refused", "tcp")
    >>> str(failure)
    'tcp-443-blocked in tcp: connection refused'
"""
from __future__ import annotations

import errno
import hashlib
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field

# TLS alerts and errors that mean "the server's certificate is not acceptable".
_CERT_VERIFY_CODES = {
    2: "unable to get issuer certificate",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in chain",
    20: "unable to get local issuer certificate",
    62: "hostname mismatch",
}


class TransportFailure(Exception):
    def __init__(self, cause: str, detail: str, phase: str, *, elapsed_ms: int = 0,
                 evidence: dict | None = None) -> None:
        super().__init__(f"{cause} in {phase}: {detail}")
        self.cause = cause
        self.detail = detail
        self.phase = phase
        self.elapsed_ms = elapsed_ms
        self.evidence = evidence or {}


@dataclass
class CertificateInfo:
    der: bytes = field(repr=False)
    sha256: str
    sha1: str
    subject: str = ""
    issuer: str = ""
    san: tuple[str, ...] = ()
    not_after: str = ""

    @classmethod
    def from_der(cls, der: bytes) -> CertificateInfo:
        info = cls(der=der, sha256=hashlib.sha256(der).hexdigest(),
                   sha1=hashlib.sha1(der).hexdigest())
        try:
            from cryptography import x509
            cert = x509.load_der_x509_certificate(der)
            info.subject = cert.subject.rfc4514_string()
            info.issuer = cert.issuer.rfc4514_string()
            info.not_after = cert.not_valid_after_utc.isoformat()
            try:
                ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                names = [f"DNS:{n}" for n in ext.value.get_values_for_type(x509.DNSName)]
                names += [f"IP:{n}" for n in ext.value.get_values_for_type(x509.IPAddress)]
                info.san = tuple(names)
            except x509.ExtensionNotFound:
                pass
        except ValueError:  # unparsable: evidence only, the hashes above are what matters
            info.subject = "(unparsable certificate)"
        return info

    def to_json(self) -> dict:
        return {"sha256": self.sha256, "sha1": self.sha1, "subject": self.subject,
                "issuer": self.issuer, "san": list(self.san), "not_after": self.not_after}


@dataclass
class TlsConnection:
    sock: ssl.SSLSocket = field(repr=False)
    version: str
    cipher: str
    certificate: CertificateInfo
    server_name: str
    tcp_ms: int
    tls_ms: int

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def tls_context(ca_file: str | None, *, verify: bool = True) -> ssl.SSLContext:
    """Client context: chain checked against ``ca_file`` (or the system store), name checked."""
    context = ssl.create_default_context(cafile=ca_file) if verify else ssl.SSLContext(
        ssl.PROTOCOL_TLS_CLIENT)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def open_tcp(host: str, port: int, timeout: float, source: str | None = None) -> tuple[socket.socket, int]:
    """source: the local address to connect from (one of many clients on one host)."""
    began = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=max(timeout, 0.01),
                                        source_address=(source, 0) if source else None)
    except TimeoutError:
        raise TransportFailure(
            "tcp-443-blocked", f"no answer to TCP SYN to {host}:{port} within {timeout:g} s "
            "(dropped by a firewall, or nothing routes there)", "tcp",
            elapsed_ms=_ms(began)) from None
    except ConnectionRefusedError:
        raise TransportFailure(
            "tcp-443-blocked", f"TCP connection to {host}:{port} refused (RST: nothing "
            "listening, or a firewall rejecting)", "tcp", elapsed_ms=_ms(began)) from None
    except socket.gaierror as exc:
        raise TransportFailure("tcp-443-blocked", f"cannot resolve {host}: {exc.strerror}",
                               "tcp", elapsed_ms=_ms(began)) from None
    except OSError as exc:
        what = {errno.EHOSTUNREACH: "host unreachable", errno.ENETUNREACH: "network unreachable",
                errno.ECONNRESET: "connection reset"}.get(exc.errno, exc.strerror or str(exc))
        raise TransportFailure("tcp-443-blocked", f"TCP to {host}:{port}: {what}", "tcp",
                               elapsed_ms=_ms(began)) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, _ms(began)


def open_tls(host: str, port: int = 443, *, ca_file: str | None = None, sni: str | None = None,
             timeout: float = 10.0, source: str | None = None, syn_timeout: float | None = None) -> TlsConnection:
    """TCP connect + TLS handshake with chain and name verification. `syn_timeout`: how long
    an unanswered SYN is waited for (default: the whole `timeout`)."""
    deadline = time.monotonic() + timeout
    server_name = sni or host
    try:
        context = tls_context(ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TransportFailure("cert-untrusted", f"cannot load CA file {ca_file}: {exc}", "tls")
    raw, tcp_ms = open_tcp(host, port, min(timeout, syn_timeout or timeout), source)
    began = time.monotonic()
    raw.settimeout(max(deadline - time.monotonic(), 0.01))
    try:
        # An IP address as server_hostname is checked against IP SANs and sent without SNI.
        sock = context.wrap_socket(raw, server_hostname=server_name)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        reason = _CERT_VERIFY_CODES.get(exc.verify_code, exc.verify_message or str(exc))
        evidence = _peek_certificate(host, port, server_name, max(deadline - time.monotonic(), 1.0))
        seen = f"; server presented {evidence['subject'] or '?'} issued by {evidence['issuer'] or '?'}" \
            if evidence else ""
        raise TransportFailure(
            "cert-untrusted", f"certificate verification failed for {server_name!r}: {reason} "
            f"(OpenSSL code {exc.verify_code}){seen}", "tls", elapsed_ms=_ms(began),
            evidence=evidence) from None
    except TimeoutError:
        raw.close()
        raise TransportFailure("tls-failed", f"TLS handshake did not finish within {timeout:g} s",
                               "tls", elapsed_ms=_ms(began)) from None
    except ssl.SSLError as exc:
        raw.close()
        raise TransportFailure("tls-failed", f"TLS handshake failed: {exc.reason or exc}", "tls",
                               elapsed_ms=_ms(began)) from None
    except (ConnectionError, OSError) as exc:
        raw.close()
        text = "the server closed the connection" if isinstance(
            exc, (ConnectionResetError, BrokenPipeError)) or not exc.args else str(exc)
        raise TransportFailure("tls-failed", f"TLS handshake interrupted: {text}", "tls",
                               elapsed_ms=_ms(began)) from None
    der = sock.getpeercert(binary_form=True)
    cipher = sock.cipher()
    return TlsConnection(sock=sock, version=sock.version() or "", cipher=cipher[0] if cipher else "",
                         certificate=CertificateInfo.from_der(der), server_name=server_name,
                         tcp_ms=tcp_ms, tls_ms=_ms(began))


def _peek_certificate(host: str, port: int, server_name: str, timeout: float) -> dict:
    """What the server presents, fetched without verification (evidence for a refusal)."""
    try:
        raw, _ = open_tcp(host, port, min(timeout, 3.0))
        raw.settimeout(min(timeout, 3.0))
        with tls_context(None, verify=False).wrap_socket(
                raw, server_hostname=None if _is_ip(server_name) else server_name) as sock:
            return CertificateInfo.from_der(sock.getpeercert(binary_form=True)).to_json()
    except (TransportFailure, OSError, ssl.SSLError, ValueError):
        return {}


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)
