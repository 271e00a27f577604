"""`aovpn-lab probe ikev2` from a bare lab host, with its own charon: the same code path
as the suite, its JSON, and its causes under hostile conditions."""
from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aovpn_lab.conditions.base import edge_device
from aovpn_lab.conditions.model import Condition
from labcli import CLI

import subprocess

pytestmark = pytest.mark.lab


def probe(lab, *extra: str, ns: str = "probe", ca: str | None = None) -> subprocess.CompletedProcess:
    pki = lab.spec.state_root / "pki" / "small"
    argv = ["ip", "netns", "exec", lab.spec.namespace(ns), CLI, "probe", "ikev2", "--gateway", "203.0.113.10",
            "--remote-id", "vpn.example.net", "--ca", ca or str(pki / "ca.pem"),
            "--cert", str(pki / "client1.example.net.cert.pem"), "--key", str(pki / "client1.example.net.key.pem"),
            "--local-id", "client1.example.net", "--remote-ts", "198.51.100.0/24", "--json", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_probe_connects_and_reports_sizes_proposal_and_ping(lab):
    r = probe(lab, "--ping", "198.51.100.1")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["connected"] is True and data["cause"] == "none" and data["ping_ok"] is True
    assert data["sizes"]["IKE_SA_INIT_request"] > 200 and data["sizes"]["IKE_AUTH_request"] > 500
    assert "AES_CBC/128" in data["proposal"] and "MODP_2048" in data["proposal"]
    assert data["virtual_ip"].startswith("198.19.1.")
    assert "PRIVATE KEY" not in r.stdout + r.stderr


def test_probe_names_a_blocked_udp_500(lab):
    with edge_device(lab.inventory) as edge:
        edge.apply(Condition.parse("block-udp-500"))
        try:
            r = probe(lab)
        finally:
            edge.apply(Condition.parse("open"))
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["connected"] is False and data["cause"] == "udp-500-blocked"
    assert data["reachability"]["probes"]["udp4500"]["answered"] is True


def test_probe_names_a_gateway_the_client_does_not_trust_as_auth_failed(lab, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Some Other Root")])
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    other = tmp_path / "other-ca.pem"
    other.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    r = probe(lab, ca=str(other))
    assert r.returncode == 1
    assert json.loads(r.stdout)["cause"] == "auth-failed"


def test_probe_refuses_to_share_the_ike_ports_with_another_daemon(lab):
    r = probe(lab, ns="client")    # the lab client's charon holds UDP 500/4500 there
    assert r.returncode == 2
    assert "already in use" in r.stderr and len(r.stderr.strip().splitlines()) == 1
