"""aovpn_lab.ike.eap: the vici dicts of an EAP-TLS user tunnel (client) and its gateway."""
from __future__ import annotations

from aovpn_lab.ike import eap
from aovpn_lab.ike.probe import IkeTarget
from aovpn_lab.ike.profiles import ClientProfile

CA, CERT = b"-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n", b"USER"


def test_client_connection():
    c = eap.eap_tls_connection("203.0.113.241", "vpn.example.net", CA, CERT, "alice@example.net",
                               aaa_id="radius.example.net")
    assert c["local"] == {"auth": "eap-tls", "certs": [CERT], "eap_id": "alice@example.net",
                          "id": "alice@example.net", "aaa_id": "radius.example.net"}
    assert c["remote"] == {"auth": "pubkey", "id": "vpn.example.net", "cacerts": [CA]}
    assert c["remote_addrs"] == ["203.0.113.241"] and c["send_cert"] == "always" and c["vips"] == ["0.0.0.0"]
    assert c["children"]["tunnel"]["start_action"] == "none"


def test_from_probe_target_and_profile():
    t = IkeTarget(gateway="203.0.113.241", remote_id="vpn.example.net", ca_pem=CA, cert_pem=CERT, key_pem=b"KEY",
                  local_id="alice@example.net", remote_ts="198.51.100.0/24")
    p = ClientProfile("x", "", ("aes128gcm16-prfsha256-ecp256",), ("aes128gcm16",), False)
    c = eap.connection_config_eap_tls(t, p, aaa_id="radius.example.net")
    assert c["local"]["eap_id"] == "alice@example.net" and c["fragmentation"] == "no"
    assert c["proposals"] == ["aes128gcm16-prfsha256-ecp256"] and c["children"]["tunnel"]["esp_proposals"] == ["aes128gcm16"]
    assert c["children"]["tunnel"]["remote_ts"] == ["198.51.100.0/24"]
    assert b"KEY" not in repr(c).encode()


def test_gateway_connection():
    g = eap.gateway_connection("203.0.113.241", "vpn.example.net", CERT, pools=["p"], local_ts=["198.51.100.0/24"])
    assert g["remote"] == {"auth": "eap-radius", "eap_id": "%any"}
    assert g["local"] == {"auth": "pubkey", "certs": [CERT], "id": "vpn.example.net"}
    assert g["send_certreq"] == "no" and g["send_cert"] == "always" and g["pools"] == ["p"]


def test_split_pem_and_failure_markers():
    assert eap.split_pem(CA + CA) == [CA, CA] and eap.split_pem(b"") == []
    assert eap.eap_failed(["x", "received EAP_FAILURE, EAP authentication failed"]).startswith("received")
    assert eap.eap_failed(["IKE_SA established"]) is None
