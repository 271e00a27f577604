"""aovpn_lab.certs.sizemodel: IKE_AUTH size prediction and IP fragment counts.

The calibration targets are the strongSwan 5.9.8 measurements in docs/domain.md ("Certificates"):
ECDSA P-256 single CA -> 848 B (initiator) / 768 B (responder); RSA-4096 root + 2
intermediates + leaf with CDP/AIA/policy -> 5936 B / 5888 B, 5 IP fragments at MTU 1500.
The certificates are the ones profiles/certificates.yml produces.
"""
from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from aovpn_lab.certs.inspect import inspect_chain, load_certificates
from aovpn_lab.certs.pki import PkiFiles, issue_pki
from aovpn_lab.certs.sizemodel import (
    FRAGMENTATION_ADVICE,
    auth_data_size,
    ike_auth_breakdown,
    ip_fragments_needed,
    key_label,
    needs_fragmentation,
    predict_ike_auth_size,
)

GW, MACHINE, USER = "vpn.example.net", "client.example.net", "alice"
MEASURED = {  # docs/domain.md, "Certificates": measured in this lab, strongSwan 5.9.8
    ("small", "initiator"): 848,
    ("small", "responder"): 768,
    ("large", "initiator"): 5936,
    ("large", "responder"): 5888,
}
KEYS = {"small": "ecdsa-p256", "large": "rsa-4096"}


@pytest.fixture(scope="session")
def pkis(tmp_path_factory) -> dict[str, PkiFiles]:
    # same directory as the other certs test modules: the large PKI is generated once
    base = tmp_path_factory.getbasetemp()
    return {
        p: issue_pki(p, base / f"certs-session-{p}", gateways=[GW], machines=[MACHINE], users=[USER])
        for p in ("small", "large")
    }


def der_sizes(*paths) -> list[int]:
    out = []
    for p in paths:
        data = p.read_bytes()
        if data.strip():
            out += [len(c.public_bytes(Encoding.DER)) for c in x509.load_pem_x509_certificates(data)]
    return out


@pytest.mark.parametrize("profile, role", sorted(MEASURED))
def test_prediction_within_10_percent_of_measurement(pkis, profile, role):
    pki = pkis[profile]
    leaf = pki.entity(MACHINE if role == "initiator" else GW).cert
    sizes = der_sizes(leaf, pki.chain)  # leaf + intermediates, never the root
    assert len(sizes) == (1 if profile == "small" else 3)
    predicted = predict_ike_auth_size(sizes, "pubkey", KEYS[profile], role=role,
                                      id_len=len(MACHINE if role == "initiator" else GW))
    measured = MEASURED[(profile, role)]
    assert abs(predicted - measured) / measured <= 0.10, (predicted, measured)


def test_measured_sizes_fragment_counts():
    assert ip_fragments_needed(MEASURED[("small", "initiator")]) == 1
    assert ip_fragments_needed(MEASURED[("small", "responder")]) == 1
    # docs/domain.md: "5 IP fragments at MTU 1500" -- true for the 5936 B initiator message;
    # 5888 B + 4 marker + 8 UDP = 5900 B fits 4 x 1480 B fragment payloads.
    assert ip_fragments_needed(MEASURED[("large", "initiator")]) == 5
    assert ip_fragments_needed(MEASURED[("large", "responder")]) == 4


@pytest.mark.parametrize("profile, fragments", [("small", 1), ("large", 5)])
def test_predicted_fragment_counts_for_the_lab_gateway(pkis, profile, fragments):
    report = inspect_chain(load_certificates(pkis[profile].entity(GW).fullchain), GW, "ikev2-server")
    assert report.ip_fragments == fragments
    assert report.needs_ike_fragmentation is (fragments > 1)


def test_breakdown_adds_up_and_names_the_parts():
    est = ike_auth_breakdown([1800, 1750, 1760], "pubkey", "rsa-4096", role="responder")
    assert sum(est.parts.values()) == est.size
    assert est.parts["IKE header"] == 28
    assert [k for k in est.parts if k.startswith("CERT[")] == ["CERT[0]", "CERT[1]", "CERT[2]"]
    assert est.parts["CERT[1]"] == 1750 + 5
    assert est.parts["AUTH"] == 8 + 1 + 15 + 512  # RFC 7427: length, AlgorithmIdentifier, signature
    assert "CERTREQ" not in est.parts  # responder sends CERTREQ in IKE_SA_INIT, not here
    ini = ike_auth_breakdown([1800], "pubkey", "rsa-4096", role="initiator")
    assert ini.parts["CERTREQ"] == 25 and "IDr" in ini.parts and "IDi" in ini.parts


def test_each_intermediate_adds_its_size_plus_cert_header():
    one = predict_ike_auth_size([500], key="ecdsa-p256", cipher="aes-gcm")
    two = predict_ike_auth_size([500, 700], key="ecdsa-p256", cipher="aes-gcm")
    assert two - one == 705  # GCM: no block padding, so the difference is exact


def test_cbc_padding_and_icv():
    est = ike_auth_breakdown([480], key="ecdsa-p256", cipher="aes-cbc")
    inner = sum(v for k, v in est.parts.items() if k not in ("SK(header,IV,padding,ICV)", "IKE header"))
    sk = est.parts["SK(header,IV,padding,ICV)"]
    assert (sk - 4 - 16 - 16 + inner) % 16 == 0  # IV 16, ICV 16, inner + pad(+len) multiple of 16
    assert 4 + 16 + 16 + 1 <= sk <= 4 + 16 + 16 + 16


@pytest.mark.parametrize(
    "key, rfc7427, classic",
    [("rsa-2048", 256 + 16, 256), ("rsa-4096", 512 + 16, 512), ("ecdsa-p256", 84, 64), ("ecdsa-p384", 116, 96)],
)
def test_auth_data_by_key(key, rfc7427, classic):
    assert auth_data_size(key) == rfc7427
    assert auth_data_size(key, "classic") == classic


def test_bigger_keys_make_bigger_messages():
    sizes = [1200]
    assert predict_ike_auth_size(sizes, key="rsa-4096") - predict_ike_auth_size(sizes, key="rsa-2048") >= 240
    assert predict_ike_auth_size(sizes, key="ecdsa-p256") < predict_ike_auth_size(sizes, key="rsa-2048")


def test_key_label_accepts_key_objects_and_spellings():
    assert key_label(ec.generate_private_key(ec.SECP384R1()).public_key()) == "ecdsa-p384"
    assert key_label(rsa.generate_private_key(65537, 2048)) == "rsa-2048"
    assert key_label("RSA4096") == "rsa-4096" and key_label("ec-secp256r1") == "ecdsa-p256"
    with pytest.raises(ValueError, match="unsupported key"):
        key_label("dsa-1024")


def test_eap_initiator_sends_no_cert_or_auth_and_responder_adds_eap():
    ini = ike_auth_breakdown([1800], "eap-tls", "rsa-4096", role="initiator")
    assert not any(k.startswith("CERT[") for k in ini.parts) and "AUTH" not in ini.parts
    resp = ike_auth_breakdown([1800], "eap-tls", "rsa-4096", role="responder")
    assert "EAP" in resp.parts and "CERT[0]" in resp.parts and "AUTH" in resp.parts
    psk = ike_auth_breakdown([1800], "psk", role="responder")
    assert "CERT[0]" not in psk.parts and psk.parts["AUTH"] == 40


@pytest.mark.parametrize("bad", [{"auth_method": "kerberos"}, {"role": "observer"}, {"cipher": "rot13"}])
def test_bad_options_raise(bad):
    with pytest.raises(ValueError):
        ike_auth_breakdown([500], **bad)


def test_ip_fragments_boundaries_ipv4():
    # 20 IP + 8 UDP + 4 non-ESP marker + message <= 1500
    assert ip_fragments_needed(1468) == 1
    assert ip_fragments_needed(1469) == 2
    assert ip_fragments_needed(1472, udp_port=500) == 1  # no marker on port 500
    assert ip_fragments_needed(1473, udp_port=500) == 2
    # 1480 payload bytes per fragment at MTU 1500
    assert ip_fragments_needed(1480 * 4 - 12) == 4
    assert ip_fragments_needed(1480 * 4 - 11) == 5
    assert ip_fragments_needed(5936, mtu=1280) == 5
    assert ip_fragments_needed(2000, mtu=1000) == 3
    assert needs_fragmentation(1469) and not needs_fragmentation(1468)


def test_ip_fragments_ipv6():
    assert ip_fragments_needed(1448, ip_version=6) == 1  # 40 + 8 + 4 + 1448 = 1500
    assert ip_fragments_needed(1449, ip_version=6) == 2
    assert ip_fragments_needed(5936, ip_version=6) == 5  # 1448 bytes per fragment
    with pytest.raises(ValueError):
        ip_fragments_needed(1000, mtu=1200, ip_version=6)


def test_advice_text_matches_the_brief():
    assert FRAGMENTATION_ADVICE == "needs IKE fragmentation (RFC 7383) or smaller certificates"
