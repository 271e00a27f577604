"""TLS posture without a lab: cipher classification, findings from recorded facts, the
health check against a local HTTPS server, output formats and argument errors."""
from __future__ import annotations

import datetime
import json
import socket
import ssl
import sys
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aovpn_lab.certs.inspect import inspect_chain
from aovpn_lab.tls import posture as tp
from aovpn_lab.tls.posture import (
    AcceptedCipher,
    HealthCheck,
    TlsPosture,
    assess,
    cipher_weaknesses,
    health_check,
    parse_status,
)


def _issue(cn, *, san=None, issuer=None, issuer_key=None, ca=False, key=None, eku=True):
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=90))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), False)
    if eku and not ca:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    return b.sign(issuer_key or key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def pki():
    root, root_key = _issue("unit root", ca=True)
    leaf, leaf_key = _issue("vpn.example.net", san="vpn.example.net", issuer=root, issuer_key=root_key)
    return root, root_key, leaf, leaf_key


def _posture(**kw) -> TlsPosture:
    base = {"host": "203.0.113.231", "port": 443, "server_name": "vpn.example.net", "reachable": True,
            "protocols": {"SSL 2.0": False, "SSL 3.0": False, "TLS 1.0": False, "TLS 1.1": False,
                          "TLS 1.2": True, "TLS 1.3": True},
            "trusted": True, "trust_anchor": "ca.pem", "chain_in_order": True, "deployments": 1}
    base.update(kw)
    return TlsPosture(**base)


def _good_ciphers():
    return [AcceptedCipher("TLS 1.3", "TLS_AES_128_GCM_SHA256", key_size=128),
            AcceptedCipher("TLS 1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", key_size=128)]


# -- cipher suites ------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs, expected", [
    ("TLS_RSA_WITH_NULL_SHA256", {"key_size": 0}, ["cipher-null"]),
    ("TLS_ECDH_anon_WITH_NULL_SHA", {"key_size": 0, "anonymous": True}, ["cipher-null", "cipher-anon"]),
    ("TLS_DH_anon_WITH_AES_128_CBC_SHA", {"key_size": 128, "anonymous": True}, ["cipher-anon"]),
    ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", {"key_size": 40}, ["cipher-export", "cipher-rc4", "cipher-md5"]),
    ("TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", {"key_size": 40}, ["cipher-export", "cipher-des"]),
    ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", {"key_size": 128}, ["cipher-rc4"]),
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", {"key_size": 168}, ["cipher-3des"]),
    ("SSL_CK_DES_192_EDE3_CBC_WITH_MD5", {"key_size": 168}, ["cipher-3des", "cipher-md5"]),
    ("TLS_RSA_WITH_DES_CBC_SHA", {"key_size": 56}, ["cipher-des"]),
    ("TLS_RSA_WITH_IDEA_CBC_SHA", {"key_size": 128}, ["cipher-legacy"]),
    ("SSL_CK_RC2_128_CBC_WITH_MD5", {"key_size": 128}, ["cipher-legacy", "cipher-md5"]),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", {"key_size": 128}, ["cipher-cbc-sha1"]),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", {"key_size": 128}, ["cipher-cbc-sha1", "cipher-no-forward-secrecy"]),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", {"key_size": 256}, ["cipher-no-forward-secrecy"]),
    ("TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256", {"key_size": 128}, ["cipher-no-forward-secrecy"]),
    ("TLS_PSK_WITH_AES_128_GCM_SHA256", {"key_size": 128}, ["cipher-no-forward-secrecy"]),
    ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", {"key_size": 128, "dh_type": "DH", "dh_bits": 1024},
     ["cipher-weak-dh"]),
    ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", {"key_size": 128, "dh_type": "DH", "dh_bits": 2048}, []),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", {"key_size": 128, "dh_type": "ECDH", "dh_bits": 253}, []),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", {"key_size": 256}, []),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", {"key_size": 256}, []),
    ("TLS_AES_256_GCM_SHA384", {"key_size": 256}, []),
    ("TLS_CHACHA20_POLY1305_SHA256", {"key_size": 256}, []),
])
def test_cipher_weaknesses(name, kwargs, expected):
    assert cipher_weaknesses(name, **kwargs) == expected


def test_every_cipher_code_has_a_known_severity():
    assert {sev for sev, _ in tp.CIPHER_CODES.values()} <= set(tp.SEVERITIES)


def test_aead_detection():
    assert tp.is_aead("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8")
    assert tp.is_aead("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256")
    assert not tp.is_aead("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256")


# -- findings from facts -------------------------------------------------------------------

def test_a_tls12_plus_server_with_good_suites_and_an_ecdsa_chain_passes(pki):
    root, _, leaf, _ = pki
    p = _posture(ciphers=_good_ciphers(), chain=inspect_chain([leaf, root], "vpn.example.net", "sstp-server"))
    findings = assess(p)
    assert not [f for f in findings if f.severity == "fail"], findings
    codes = {f.code for f in findings}
    assert "cert-ecdsa" in codes and "sstp-rsa-key" not in codes
    assert "protocol-tls1.3-missing" not in codes


@pytest.mark.parametrize("label, code", list(tp.FORBIDDEN_PROTOCOLS.items()))
def test_any_protocol_below_tls12_is_a_fail(pki, label, code):
    root, _, leaf, _ = pki
    protocols = dict(_posture().protocols, **{label: True})
    p = _posture(protocols=protocols, ciphers=_good_ciphers(),
                 chain=inspect_chain([leaf, root], "vpn.example.net", "sstp-server"))
    fails = {f.code for f in assess(p) if f.severity == "fail"}
    assert fails == {code}


def test_missing_tls12_warns_and_missing_tls13_is_info(pki):
    root, _, leaf, _ = pki
    chain = inspect_chain([leaf, root], "vpn.example.net", "sstp-server")
    only13 = _posture(protocols=dict(_posture().protocols, **{"TLS 1.2": False}), chain=chain,
                      ciphers=_good_ciphers()[:1])
    only12 = _posture(protocols=dict(_posture().protocols, **{"TLS 1.3": False}), chain=chain,
                      ciphers=_good_ciphers()[1:])
    assert {(f.code, f.severity) for f in assess(only13) if f.area == "protocol"} == {
        ("protocol-tls1.2-missing", "warn")}
    assert {(f.code, f.severity) for f in assess(only12) if f.area == "protocol"} == {
        ("protocol-tls1.3-missing", "info")}


def test_weak_suites_become_one_finding_per_code_naming_every_protocol(pki):
    root, _, leaf, _ = pki
    ciphers = _good_ciphers()
    for proto in ("TLS 1.0", "TLS 1.2"):
        for name in ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"):
            ciphers.append(AcceptedCipher(proto, name, key_size=128,
                                          weaknesses=cipher_weaknesses(name, key_size=128)))
    p = _posture(ciphers=ciphers, chain=inspect_chain([leaf, root], "vpn.example.net", "sstp-server"),
                 protocols=dict(_posture().protocols, **{"TLS 1.0": True}))
    findings = [f for f in assess(p) if f.area == "cipher"]
    assert [(f.code, f.severity) for f in findings] == [("cipher-3des", "fail"), ("cipher-cbc-sha1", "warn")]
    assert "TLS_RSA_WITH_3DES_EDE_CBC_SHA (TLS 1.0, TLS 1.2)" in findings[0].message


def test_tls12_without_aead_warns(pki):
    root, _, leaf, _ = pki
    name = "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"
    p = _posture(ciphers=[AcceptedCipher("TLS 1.2", name, key_size=256)],
                 protocols=dict(_posture().protocols, **{"TLS 1.3": False}),
                 chain=inspect_chain([leaf, root], "vpn.example.net", "sstp-server"))
    assert "cipher-no-aead" in {f.code for f in assess(p) if f.severity == "warn"}


def test_certificate_findings_untrusted_wrong_name_order_and_rsa(pki):
    root, root_key, _, _ = pki
    rsa_leaf, _ = _issue("other.example.net", san="other.example.net", issuer=root, issuer_key=root_key,
                         key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    p = _posture(ciphers=_good_ciphers(), trusted=False, trust_error="unable to get local issuer certificate",
                 chain_in_order=False, chain=inspect_chain([rsa_leaf, root], "vpn.example.net", "sstp-server"))
    found = {(f.code, f.severity) for f in assess(p) if f.area == "certificate"}
    assert {("cert-untrusted", "fail"), ("name-mismatch", "fail"), ("cert-chain-order", "warn"),
            ("sstp-rsa-key", "info")} <= found
    assert ("cert-ecdsa", "info") not in found


def test_missing_server_auth_eku_fails(pki):
    root, root_key, _, _ = pki
    leaf, _ = _issue("vpn.example.net", san="vpn.example.net", issuer=root, issuer_key=root_key, eku=False)
    leaf_eku, _ = _issue("vpn.example.net", san="vpn.example.net", issuer=root, issuer_key=root_key)
    # no EKU extension at all is "any purpose" for TLS stacks but not the requirement
    p = _posture(ciphers=_good_ciphers(), chain=inspect_chain([leaf, root], "vpn.example.net", "sstp-server"))
    assert "eku-server-auth-missing" in {f.code for f in assess(p) if f.severity == "fail"}
    p = _posture(ciphers=_good_ciphers(), chain=inspect_chain([leaf_eku, root], "vpn.example.net", "sstp-server"))
    assert "eku-server-auth-missing" not in {f.code for f in assess(p)}


def test_strict_validation_is_only_reported_when_openssl_trusts(pki):
    root, _, leaf, _ = pki
    chain = inspect_chain([leaf, root], "vpn.example.net", "sstp-server")
    p = _posture(ciphers=_good_ciphers(), chain=chain, strict_error="missing AKI")
    assert ("cert-strict-validation", "warn") in {(f.code, f.severity) for f in assess(p)}
    p = _posture(ciphers=_good_ciphers(), chain=chain, strict_error="missing AKI", trusted=False,
                 trust_error="x")
    assert "cert-strict-validation" not in {f.code for f in assess(p)}


def test_name_errors_from_strict_validation_are_left_to_the_name_check():
    assert tp.is_name_error("validation failed: leaf certificate has no matching subjectAltName")
    assert not tp.is_name_error("validation failed: invalid extension: 2.5.29.35: missing")


def test_unreachable_is_one_fail_and_nothing_else():
    p = _posture(reachable=False, error="ServerRejectedConnection: Connection rejected")
    findings = assess(p)
    assert [(f.code, f.severity) for f in findings] == [("scan-unreachable", "fail")]


def test_an_untested_protocol_is_reported(pki):
    root, _, leaf, _ = pki
    p = _posture(protocols=dict(_posture().protocols, **{"SSL 2.0": None}), ciphers=_good_ciphers(),
                 chain=inspect_chain([leaf, root], "vpn.example.net", "sstp-server"))
    assert ("scan-incomplete", "warn") in {(f.code, f.severity) for f in assess(p)}


@pytest.mark.parametrize("health, expected", [
    (HealthCheck("h", 443, "n", answered=True, status_line="HTTP/1.1 401 Unauthorized", status=401),
     ("health-401", "info")),
    (HealthCheck("h", 443, "n", answered=True, status_line="HTTP/1.1 404 Not Found", status=404),
     ("health-not-401", "warn")),
    (HealthCheck("h", 443, "n", cause="tcp-443-blocked", error="Connection refused"),
     ("health-no-answer", "fail")),
])
def test_health_findings(health, expected):
    assert [(f.code, f.severity) for f in tp.health_findings(health)] == [expected]


def test_json_and_text_output(pki):
    root, _, leaf, _ = pki
    ciphers = _good_ciphers() + [AcceptedCipher("TLS 1.0", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", key_size=168,
                                                weaknesses=["cipher-3des"])]
    p = _posture(ciphers=ciphers, protocols=dict(_posture().protocols, **{"TLS 1.0": True}),
                 chain=inspect_chain([leaf, root], "vpn.example.net", "sstp-server"),
                 health=HealthCheck("h", 443, "n", answered=True, status_line="HTTP/1.1 401 Unauthorized",
                                    status=401), netns="hxt-c", elapsed_ms=12)
    p.findings = assess(p)
    data = json.loads(json.dumps(p.to_json()))
    assert data["result"] == "fail"
    assert data["accepted_protocols"] == ["TLS 1.0", "TLS 1.2", "TLS 1.3"]
    assert data["certificate"]["chain"]["certificates"][0]["san_dns"] == ["vpn.example.net"]
    assert data["health"]["status"] == 401 and data["health"]["rras_like"] is True
    assert data["counts"]["fail"] == 2  # protocol-tls1.0, cipher-3des
    text = p.render_text()
    assert text.splitlines()[0].startswith("TLS posture of 203.0.113.231:443 (SNI vpn.example.net) from netns hxt-c: FAIL")
    assert "TLS 1.0 YES" in text and "[3des]" in text and "HTTP/1.1 401 Unauthorized" in text
    assert text.index("FAIL  protocol-tls1.0") < text.index("INFO  cert-ecdsa")


def test_parse_status():
    line, code, reason, headers = parse_status(
        b"HTTP/1.1 401 Unauthorized\r\nServer: Microsoft-HTTPAPI/2.0\r\nContent-Length: 0\r\n\r\n")
    assert (line, code, reason, headers["server"]) == ("HTTP/1.1 401 Unauthorized", 401,
                                                        "Unauthorized", "Microsoft-HTTPAPI/2.0")
    assert parse_status(b"HTTP/1.0 200\r\n\r\n")[1:3] == (200, "")
    assert parse_status(b"SSH-2.0-OpenSSH_9.2\r\n") is None


# -- the health check against a local HTTPS server -------------------------------------------

@pytest.fixture
def https_server(tmp_path, pki):
    root, _, leaf, leaf_key = pki
    cert, key = tmp_path / "leaf.pem", tmp_path / "key.pem"
    cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    (tmp_path / "ca.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    seen: list[bytes] = []
    answer = {"bytes": b"HTTP/1.1 401 Unauthorized\r\nServer: Microsoft-HTTPAPI/2.0\r\nContent-Length: 0\r\n\r\n"}

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    seen.append(data)
                    tls.sendall(answer["bytes"])
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], tmp_path / "ca.pem", seen, answer
    listener.close()


def test_health_check_sends_the_rras_monitor_request_and_records_401(https_server):
    port, ca, seen, _ = https_server
    result = health_check("127.0.0.1", port, server_name="vpn.example.net", ca_file=str(ca), timeout=3)
    assert result.answered and result.cause == "none" and result.verified
    assert (result.status, result.status_line) == (401, "HTTP/1.1 401 Unauthorized")
    assert result.headers["server"] == "Microsoft-HTTPAPI/2.0" and result.rras_like
    request = seen[0].decode()
    assert request.startswith("HEAD /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n")
    assert "\r\nHost: vpn.example.net\r\n" in request


def test_health_check_records_other_answers(https_server):
    port, ca, _, answer = https_server
    answer["bytes"] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    result = health_check("127.0.0.1", port, server_name="vpn.example.net", ca_file=str(ca), timeout=3)
    assert (result.status, result.rras_like) == (404, False)
    answer["bytes"] = b"garbage\r\n\r\n"
    result = health_check("127.0.0.1", port, server_name="vpn.example.net", timeout=3)
    assert (result.answered, result.cause, result.verified) == (False, "not-http", False)


def test_health_check_with_a_wrong_name_or_ca_is_cert_untrusted(https_server, tmp_path):
    port, ca, _, _ = https_server
    result = health_check("127.0.0.1", port, server_name="other.example.net", ca_file=str(ca), timeout=3)
    assert (result.answered, result.cause) == (False, "cert-untrusted")
    # without a CA file the monitor does not verify, like most load balancers
    result = health_check("127.0.0.1", port, server_name="other.example.net", timeout=3)
    assert result.status == 401


def test_health_check_nothing_listening():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    result = health_check("127.0.0.1", port, server_name="vpn.example.net", timeout=2)
    assert (result.answered, result.cause) == (False, "tcp-443-blocked")
    assert result.summary().endswith(f"after {result.elapsed_ms} ms")


# -- arguments and the command line --------------------------------------------------------

def test_scan_refuses_a_missing_ca_file_or_namespace(tmp_path):
    import sslyze  # noqa: F401  (a project dependency: its absence is a broken install, not a skip)
    with pytest.raises(tp.TlsScanError, match="does not exist"):
        tp.scan_tls("127.0.0.1", 1, server_name="x", ca_file=str(tmp_path / "nope.pem"))
    with pytest.raises(tp.TlsScanError, match="network namespace 'hxt-absent'"):
        tp.scan_tls("127.0.0.1", 1, server_name="x", netns="hxt-absent")


def test_scan_without_sslyze_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sslyze", None)
    with pytest.raises(tp.TlsScanError) as err:
        tp.scan_tls("127.0.0.1", 1, server_name="x")
    assert tp.SSLYZE_REQUIREMENT in str(err.value)


def test_cli_health_json(https_server, capsys):
    port, ca, _, _ = https_server
    code = tp.main(["health", "127.0.0.1", "--port", str(port), "--server-name", "vpn.example.net",
                    "--ca-file", str(ca), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["status"] == 401


def test_cli_error_is_json_and_exit_2(capsys, tmp_path):
    import sslyze  # noqa: F401  (a project dependency: its absence is a broken install, not a skip)
    code = tp.main(["scan", "127.0.0.1", "--ca-file", str(tmp_path / "nope.pem"), "--json"])
    out = capsys.readouterr()
    assert code == 2 and json.loads(out.out)["failed"] is True and "does not exist" in out.err



def test_trust_that_could_not_be_checked_warns(pki):
    root, _, leaf, _ = pki
    p = _posture(ciphers=_good_ciphers(), trusted=None, trust_error="trust check could not connect: reset",
                 chain=inspect_chain([leaf, root], "vpn.example.net", "sstp-server"))
    assert ("cert-trust-unknown", "warn") in {(f.code, f.severity) for f in assess(p)}
