"""probe_sstp over real TCP/TLS on the loopback against the reference server: the
socket loop, the timers, the deadline and the cause of every failure (no root needed;
the SoftEther end-to-end lives in tests/integration/test_sstp_live.py)."""
from __future__ import annotations

import datetime
import hashlib
import http.server
import json
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aovpn_lab.sstp.client import CAUSES
from aovpn_lab.sstp.probe import SstpProbeResult, probe_sstp
from aovpn_lab.sstp.refserver import ReferenceServerThread, RefServerConfig

NAME = "sstp.example.net"
PASSWORD = "Tr0ub4dor&3"


def _issue(subject, issuer_name, issuer_key, *, ca=False, san=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = _issue("test root", None, None, ca=True)
    leaf, leaf_key = _issue(NAME, ca.subject, ca_key, san=NAME)
    other, _ = _issue("other root", None, None, ca=True)
    pem = serialization.Encoding.PEM
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    (d / "other-ca.pem").write_bytes(other.public_bytes(pem))
    (d / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (d / "leaf.key").write_bytes(leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return {"dir": d, "leaf_der": leaf.public_bytes(serialization.Encoding.DER),
            "other_der": other.public_bytes(serialization.Encoding.DER)}


def _listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


@pytest.fixture
def serve(pki):
    servers = []

    def start(**kwargs):
        config = RefServerConfig(users={"alice": PASSWORD}, cert_der=pki["leaf_der"], **kwargs)
        server = ReferenceServerThread(_listener(), str(pki["dir"] / "leaf.pem"),
                                       str(pki["dir"] / "leaf.key"), config).__enter__()
        servers.append(server)
        return server, server.listener.getsockname()[1]

    yield start
    for server in servers:
        server.stop()


def probe(port, pki, **kwargs):
    args = {"user": "alice", "password": PASSWORD, "ca_file": str(pki["dir"] / "ca.pem"), "sni": NAME,
                "timeout": 5.0}
    args.update(kwargs)
    return probe_sstp("127.0.0.1", port, **args)


def assert_no_secret(result: SstpProbeResult):
    text = json.dumps(result.to_json()) + result.summary() + repr(result)
    assert PASSWORD not in text


def test_connects_pings_and_disconnects(serve, pki):
    server, port = serve()
    result = probe(port, pki, ping="198.19.3.1")
    assert (result.connected, result.cause) == (True, "none"), result.summary()
    assert result.ip == "198.19.3.10" and result.peer_ip == "198.19.3.1"
    assert result.ping_ok is True and result.ping_ms is not None
    assert result.tls_version in ("TLSv1.2", "TLSv1.3") and result.tls_cipher
    assert result.cert_sha256 == hashlib.sha256(pki["leaf_der"]).hexdigest()
    assert result.cert_sha1 == hashlib.sha1(pki["leaf_der"]).hexdigest()
    assert result.hash_protocol == "SHA256" and result.crypto_binding_sent
    assert result.auth_method == "MS-CHAPv2" and result.http_status == 200
    assert result.disconnect.startswith("clean")
    assert [p.name for p in result.phases] == ["tcp", "tls", "http", "sstp-connect", "lcp", "auth",
                                               "ipcp", "ping", "disconnect"]
    assert all(p.ok for p in result.phases)
    assert server.logs[-1].binding_ok is True
    assert result.echo_requests == 1
    assert_no_secret(result)
    json.dumps(result.to_json())
    assert "CONNECTED" in result.summary()


def test_pap(serve, pki):
    _, port = serve(auth="pap")
    result = probe(port, pki, auth="pap")
    assert result.connected and result.auth_method == "PAP"


def test_wrong_password(serve, pki):
    _, port = serve()
    result = probe(port, pki, password="N0t-Th3-Pa55")
    assert (result.cause, result.failed_phase) == ("auth-failed", "auth")
    assert not result.connected and result.phase("auth").ok is False
    assert "N0t-Th3-Pa55" not in json.dumps(result.to_json()) + result.summary()


def test_binding_against_another_certificate_is_rejected(serve, pki):
    server, port = serve(expected_cert_der=pki["other_der"])
    result = probe(port, pki)
    assert result.cause == "crypto-binding-rejected" and not result.connected
    assert server.logs[-1].binding_ok is False


def test_untrusted_ca_and_wrong_name(serve, pki):
    _, port = serve()
    result = probe(port, pki, ca_file=str(pki["dir"] / "other-ca.pem"))
    assert (result.cause, result.failed_phase) == ("cert-untrusted", "tls")
    assert result.cert_sha256 == hashlib.sha256(pki["leaf_der"]).hexdigest()  # evidence
    assert "test root" in result.detail
    result = probe(port, pki, sni="other.example.net")
    assert result.cause == "cert-untrusted" and "hostname mismatch" in result.detail


def test_refused_port_is_tcp_blocked(pki):
    sock = _listener()
    port = sock.getsockname()[1]
    sock.close()
    result = probe(port, pki)
    assert (result.cause, result.failed_phase) == ("tcp-443-blocked", "tcp")
    assert "refused" in result.detail


@pytest.mark.parametrize("mode, cause, phase", [
    ("close-in-tls", "tls-failed", "tls"),
    ("close-after-request", "not-sstp", "http"),
    ("close-after-ack", "protocol-error", "lcp"),
])
def test_servers_that_hang_up(serve, pki, mode, cause, phase):
    _, port = serve(mode=mode)
    result = probe(port, pki)
    assert (result.cause, result.failed_phase) == (cause, phase), result.summary()


def test_silent_server_hits_the_deadline(serve, pki):
    _, port = serve(mode="silent-after-request")
    began = time.monotonic()
    result = probe(port, pki, timeout=1.5)
    took = time.monotonic() - began
    assert (result.cause, result.failed_phase) == ("timeout", "http")
    assert 1.4 <= took < 1.5 + 2.5  # deadline + the bounded goodbye


def test_plain_https_server_is_not_sstp(pki):
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["dir"] / "leaf.pem", pki["dir"] / "leaf.key")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        result = probe(httpd.server_address[1], pki)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (result.cause, result.http_status) == ("not-sstp", 501)
    assert "SimpleHTTP" in result.http_server


def test_every_cause_is_listed():
    assert set(CAUSES) == {"none", "tcp-443-blocked", "tls-failed", "cert-untrusted", "not-sstp",
                           "auth-failed", "crypto-binding-rejected", "protocol-error", "timeout"}


def test_bad_arguments():
    with pytest.raises(ValueError):
        probe_sstp("127.0.0.1", user="u", password="p", auth="chap")
    with pytest.raises(ValueError):
        probe_sstp("127.0.0.1", user="u", password="p", timeout=0)


def test_unanswered_ping_fails_the_attempt_after_three_echoes(serve, pki):
    _, port = serve()
    result = probe(port, pki, ping="198.19.3.99", timeout=10.0)
    assert (result.connected, result.cause, result.failed_phase) == (False, "timeout", "ping")
    assert result.ping_ok is False and result.ip == "198.19.3.10"
    assert sum("ICMP echo #" in line for line in result.log) == 3
    assert result.disconnect.startswith("clean")  # still a polite goodbye
