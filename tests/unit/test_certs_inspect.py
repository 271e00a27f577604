"""aovpn_lab.certs.inspect: chain facts, requirement findings, loading, rendering."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from aovpn_lab.certs.errors import CertificateInputError
from aovpn_lab.certs.inspect import (
    describe,
    inspect_chain,
    load_certificates,
    load_files,
    render_text,
    to_json,
)
from aovpn_lab.certs.pki import PkiFiles, issue_pki
from aovpn_lab.certs.sizemodel import FRAGMENTATION_ADVICE
from aovpn_lab.errors import AovpnError

GW, MACHINE, USER = "vpn.example.net", "client.example.net", "alice"
IKE_INT = ObjectIdentifier("1.3.6.1.5.5.8.2.2")
NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="session")
def large(tmp_path_factory) -> PkiFiles:
    out = tmp_path_factory.getbasetemp() / "certs-session-large"  # shared with the other modules
    return issue_pki("large", out, gateways=[GW], machines=[MACHINE], users=[USER])


@pytest.fixture(scope="session")
def small(tmp_path_factory) -> PkiFiles:
    out = tmp_path_factory.getbasetemp() / "certs-session-small"
    return issue_pki("small", out, gateways=[GW], machines=[MACHINE], users=[USER])


# ------------------------------------------------------------------ test certificate kit


class MiniCA:
    """A throwaway EC CA that issues deliberately broken leaves."""

    def __init__(self, name: str = "Test Root"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def leaf(self, cn: str = GW, *, san: list[str] | None = None, ekus=(ExtendedKeyUsageOID.SERVER_AUTH, IKE_INT),
             not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
             signer=None, key=None, digital_signature: bool = True) -> x509.Certificate:
        key = key or ec.generate_private_key(ec.SECP256R1())
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - dt.timedelta(days=1))
            .not_valid_after(not_after or NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature, False, not digital_signature, False, False, False, False,
                                         False, False), critical=True)
        )
        if ekus:
            b = b.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
        names = [cn] if san is None else san
        if names:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        return b.sign(signer or self.key, hashes.SHA256())


@pytest.fixture(scope="module")
def ca() -> MiniCA:
    return MiniCA()


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# ------------------------------------------------------------------------- good chains


def test_large_gateway_chain_sorted_and_described(large):
    root = load_certificates(large.ca)
    ints = load_certificates(large.intermediates)  # int1, int2: root side first
    leaf = load_certificates(large.entity(GW).cert)
    report = inspect_chain(root + ints + leaf, dial_name=GW, role="ikev2-server")  # deliberately shuffled
    names = [c.common_name for c in report.certs]
    assert names == [GW, "aovpn-lab Issuing CA 2", "aovpn-lab Policy CA 1", "aovpn-lab Enterprise Root CA"]
    assert report.length == 4
    assert report.total_der_bytes == sum(len(c.public_bytes(serialization.Encoding.DER)) for c in root + ints + leaf)
    assert [c.self_signed for c in report.certs] == [False, False, False, True]
    leaf_info = report.certs[0]
    assert (leaf_info.key_type, leaf_info.key_size, leaf_info.key) == ("RSA", 4096, "rsa-4096")
    assert leaf_info.ekus == ("server_auth", "ipsec_ike_intermediate")
    assert leaf_info.eku_labels == ["Server Authentication", "IP security IKE intermediate"]
    assert leaf_info.san_dns == (GW,) and leaf_info.sans == [f"DNS:{GW}"]
    assert leaf_info.has_cdp and leaf_info.has_aia and leaf_info.has_policies
    assert leaf_info.ocsp_urls == ("http://ocsp.pki.example.net/",)
    assert leaf_info.not_before < NOW < leaf_info.not_after
    assert not report.certs[3].has_cdp and report.certs[3].is_ca
    # the root is not sent in IKE_AUTH
    assert report.sent_der_sizes == [c.der_size for c in report.certs[:3]]
    assert not report.failed, report.findings
    assert report.codes("warn") == {"ike-fragmentation-needed"}
    frag = next(f for f in report.findings if f.code == "ike-fragmentation-needed")
    assert FRAGMENTATION_ADVICE in frag.message and "RSA keys > 2048" in frag.message and "2 intermediate" in frag.message
    assert report.needs_ike_fragmentation and report.ip_fragments == 5
    assert "root-included" in report.codes("info")


def test_small_gateway_chain_passes_without_fragmentation(small):
    report = inspect_chain(load_certificates(small.entity(GW).cert) + load_certificates(small.ca), GW)
    assert report.length == 2 and not report.failed and not report.warnings
    assert report.certs[0].curve == "secp256r1" and report.certs[0].key == "ecdsa-p256"
    assert report.ip_fragments == 1 and not report.needs_ike_fragmentation
    assert report.ike_auth is not None and report.ike_auth.size < 1000


def test_client_role_uses_client_auth_and_initiator_size(small):
    report = inspect_chain(load_certificates(small.entity(MACHINE).cert), MACHINE, "client")
    assert not report.failed
    assert report.ike_auth.role == "initiator"
    user = inspect_chain(load_certificates(small.entity(USER).cert), None, "client")
    assert not user.failed and user.certs[0].san_upn == ("alice@corp.example.net",)


def test_rsa_2048_single_ca_fits_one_packet():
    key = rsa.generate_private_key(65537, 2048)
    ca = MiniCA("RSA Root")
    leaf = ca.leaf(key=key)
    report = inspect_chain([leaf, ca.cert], GW)
    assert report.certs[0].key == "rsa-2048"
    assert report.ip_fragments == 1 and "ike-fragmentation-needed" not in report.codes()


def test_small_mtu_triggers_fragmentation_warning(small):
    certs = load_certificates(small.entity(GW).cert)
    assert inspect_chain(certs, GW, mtu=1500).ip_fragments == 1
    report = inspect_chain(certs, GW, mtu=576)
    assert report.ip_fragments == 2 and report.needs_ike_fragmentation
    assert "ike-fragmentation-needed" in report.codes("warn") and not report.failed


# ------------------------------------------------------------------------ broken certs


def test_missing_server_auth_eku_fails(ca):
    report = inspect_chain([ca.leaf(ekus=[ExtendedKeyUsageOID.CLIENT_AUTH]), ca.cert], GW, "ikev2-server")
    assert "eku-server-auth-missing" in report.codes("fail") and report.failed
    sstp = inspect_chain([ca.leaf(ekus=[]), ca.cert], GW, "sstp-server")
    assert "eku-server-auth-missing" in sstp.codes("fail")


def test_missing_ike_intermediate_is_only_a_warning(ca):
    report = inspect_chain([ca.leaf(ekus=[ExtendedKeyUsageOID.SERVER_AUTH]), ca.cert], GW, "ikev2-server")
    assert report.codes("warn") == {"eku-ike-intermediate-missing"}
    assert not report.failed
    # SSTP does not need it
    assert "eku-ike-intermediate-missing" not in inspect_chain([ca.leaf(ekus=[ExtendedKeyUsageOID.SERVER_AUTH])],
                                                                GW, "sstp-server").codes()


def test_client_without_client_auth_fails(ca):
    report = inspect_chain([ca.leaf(MACHINE, ekus=[ExtendedKeyUsageOID.SERVER_AUTH])], MACHINE, "client")
    assert "eku-client-auth-missing" in report.codes("fail")


def test_wrong_name_fails(ca):
    report = inspect_chain([ca.leaf("gw.other.net"), ca.cert], GW)
    f = next(f for f in report.findings if f.code == "name-mismatch")
    assert f.severity == "fail" and "gw.other.net" in f.message and GW in f.message


def test_cn_only_and_san_only_are_warnings(ca):
    cn_only = inspect_chain([ca.leaf(GW, san=[])], GW)
    assert "name-cn-only" in cn_only.codes("warn") and not cn_only.failed
    san_only = inspect_chain([ca.leaf("Gateway 1", san=[GW])], GW, "ikev2-server")
    assert "name-cn-differs" in san_only.codes("warn") and not san_only.failed
    assert "name-cn-differs" not in inspect_chain([ca.leaf("Gateway 1", san=[GW])], GW, "sstp-server").codes()


def test_wildcard_and_case_insensitive_names(ca):
    assert not inspect_chain([ca.leaf("*.example.net", san=["*.example.net"])], "VPN.Example.NET").failed
    assert "name-mismatch" in inspect_chain([ca.leaf("*.example.net", san=["*.example.net"])], "a.b.example.net").codes()


def test_expired_not_yet_valid_and_expiring(ca):
    expired = ca.leaf(not_before=NOW - dt.timedelta(days=400), not_after=NOW - dt.timedelta(days=2))
    assert "expired" in inspect_chain([expired, ca.cert], GW).codes("fail")
    future = ca.leaf(not_before=NOW + dt.timedelta(days=2), not_after=NOW + dt.timedelta(days=400))
    assert "not-yet-valid" in inspect_chain([future, ca.cert], GW).codes("fail")
    soon = ca.leaf(not_after=NOW + dt.timedelta(days=10))
    r = inspect_chain([soon, ca.cert], GW)
    assert "expires-soon" in r.codes("warn") and not r.failed
    # the clock is a parameter: the same certificate is expired a year from now
    assert "expired" in inspect_chain([ca.leaf(), ca.cert], GW, now=NOW + dt.timedelta(days=400)).codes("fail")


def test_signature_from_the_wrong_key_breaks_the_chain(ca):
    impostor = ec.generate_private_key(ec.SECP256R1())
    forged = ca.leaf(signer=impostor)  # names the CA as issuer, signed by another key
    report = inspect_chain([forged, ca.cert], GW)
    assert [c.common_name for c in report.certs] == [GW, "Test Root"]
    assert "chain-broken" in report.codes("fail")


def test_unrelated_or_missing_link_breaks_the_chain(large, ca):
    # leaf + root without the two intermediates: the root is not the leaf's issuer
    report = inspect_chain(load_certificates(large.entity(GW).cert) + load_certificates(large.ca), GW)
    f = [x for x in report.findings if x.code == "chain-broken"]
    assert f and f[0].severity == "fail" and "Issuing CA 2" in f[0].message
    # a certificate from another PKI mixed in
    mixed = inspect_chain([ca.leaf(), ca.cert, MiniCA("Other Root").cert], GW)
    assert "chain-broken" in mixed.codes("fail") and mixed.certs[-1].common_name == "Other Root"


def test_key_usage_without_digital_signature_fails(ca):
    report = inspect_chain([ca.leaf(digital_signature=False)], GW)
    assert "key-usage-digital-signature-missing" in report.codes("fail")


def test_sstp_role_checks_revocation_info_and_skips_ike_size(ca, large):
    r = inspect_chain([ca.leaf(), ca.cert], GW, "sstp-server")
    assert "sstp-no-revocation-info" in r.codes("warn")
    assert r.ike_auth is None and r.ip_fragments is None and not r.needs_ike_fragmentation
    big = inspect_chain(load_certificates(large.entity(GW).fullchain), GW, "sstp-server")
    assert "sstp-rsa-key" in big.codes("info") and "sstp-no-revocation-info" not in big.codes()


def test_duplicates_are_dropped_and_empty_input_fails(ca):
    leaf = ca.leaf()
    assert inspect_chain([leaf, leaf, ca.cert], GW).length == 2
    empty = inspect_chain([], GW)
    assert empty.failed and empty.codes() == {"chain-empty"}


def test_unknown_role_raises(ca):
    with pytest.raises(ValueError, match="unknown role"):
        inspect_chain([ca.cert], GW, role="radius")


# ----------------------------------------------------------------------------- loading


def test_load_pem_bundle_der_and_pkcs7(tmp_path, ca):
    leaf = ca.leaf()
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(b"# comment line\n" + pem(leaf, ca.cert))
    assert load_certificates(bundle) == [leaf, ca.cert]
    der = tmp_path / "leaf.cer"
    der.write_bytes(leaf.public_bytes(serialization.Encoding.DER))
    assert load_certificates(der) == [leaf]
    p7b = tmp_path / "chain.p7b"
    p7b.write_bytes(pkcs7.serialize_certificates([leaf, ca.cert], serialization.Encoding.DER))
    assert set(load_certificates(p7b)) == {leaf, ca.cert}
    p7pem = tmp_path / "chain.p7c"
    p7pem.write_bytes(pkcs7.serialize_certificates([leaf], serialization.Encoding.PEM))
    assert load_certificates(p7pem) == [leaf]
    certs, sources = load_files([bundle, der])
    assert len(certs) == 3 and sources == [str(bundle), str(bundle), str(der)]
    report = inspect_chain(certs, GW, sources=sources)
    assert report.certs[0].source in (str(bundle), str(der))


def test_haproxy_style_bundle_ignores_the_key_without_echoing_it(tmp_path, small):
    f = tmp_path / "bundle.pem"
    f.write_bytes(small.entity(GW).cert.read_bytes() + small.entity(GW).key.read_bytes())
    assert len(load_certificates(f)) == 1


@pytest.mark.parametrize(
    "name, content, expect",
    [
        ("key.pem", None, "PRIVATE KEY"),  # filled from the small PKI
        ("empty.pem", b"", "is empty"),
        ("blank.pem", b"\n  \n", "is empty"),
        ("random.bin", bytes(range(256)) * 3, "not a certificate"),
        ("notes.txt", b"hello, this is a text file\n", "text file"),
        ("csr.pem", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
         "CERTIFICATE REQUEST"),
        ("broken.pem", b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
         "block 1 (CERTIFICATE) is not a valid certificate"),
        ("der-junk.der", b"\x30\x03\x02\x01\x05", "not a certificate"),
    ],
)
def test_bad_input_names_the_file_and_what_was_expected(tmp_path, small, name, content, expect):
    f = tmp_path / name
    f.write_bytes(small.entity(GW).key.read_bytes() if content is None else content)
    with pytest.raises(CertificateInputError) as exc:
        load_certificates(f)
    msg = str(exc.value)
    assert str(f) in msg and expect in msg and "\n" not in msg
    assert exc.value.path == str(f)
    assert isinstance(exc.value, AovpnError) and isinstance(exc.value, ValueError)
    assert "MII" not in msg  # never echoes key/certificate material


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CertificateInputError, match="cannot read"):
        load_certificates(tmp_path / "nope.pem")
    with pytest.raises(CertificateInputError, match="is a directory"):
        load_certificates(tmp_path)


# ----------------------------------------------------------------------------- output


def test_render_text_is_a_compact_table(large):
    report = inspect_chain(load_certificates(large.entity(GW).fullchain) + load_certificates(large.ca), GW)
    text = render_text(report)
    lines = text.splitlines()
    assert lines[0].startswith(f"Chain for ikev2-server {GW}: 4 certificate(s)")
    assert "subject CN" in lines[1] and "DER" in lines[1] and "EKU" in lines[1]
    assert lines[2].split()[:2] == ["0", GW] and "serverAuth,ikeIntermediate" in lines[2]
    assert any("IKE_AUTH (responder, rsa-4096)" in line and "5 IP fragment(s)" in line for line in lines)
    assert FRAGMENTATION_ADVICE in text
    assert lines[-1] == "Result: PASS (0 failed, 1 warning(s))"
    assert max(len(line) for line in lines[:6]) < 180


def test_render_text_reports_failures_first(ca):
    text = render_text(inspect_chain([ca.leaf("wrong.example.net", ekus=[])], GW))
    findings = [line.split()[0] for line in text.splitlines() if line.startswith("  ") and line.split()[0] in
                ("FAIL", "WARN", "INFO")]
    assert findings[0] == "FAIL" and findings == sorted(findings, key=["FAIL", "WARN", "INFO"].index)
    assert text.splitlines()[-1].startswith("Result: FAIL (2 failed")


def test_to_json_round_trips(large):
    report = inspect_chain(load_certificates(large.entity(GW).fullchain), GW)
    data = json.loads(json.dumps(to_json(report)))
    assert data["result"] == "pass" and data["length"] == 3
    assert data["certificates"][0]["common_name"] == GW
    assert data["certificates"][0]["ekus"] == ["server_auth", "ipsec_ike_intermediate"]
    assert data["certificates"][0]["sans"] == [f"DNS:{GW}"]
    assert data["ike_auth"]["size"] == report.ike_auth.size and data["ip_fragments"] == 5
    assert data["fragmentation_advice"] == FRAGMENTATION_ADVICE
    assert {f["code"] for f in data["findings"]} == report.codes()
    assert data["certificates"][0]["not_after"].startswith(str(report.certs[0].not_after.year))


def test_describe_gives_fingerprints_for_sstp_binding(small):
    c = load_certificates(small.entity(GW).cert)[0]
    info = describe(c)
    assert info.sha256 == c.fingerprint(hashes.SHA256()).hex().upper() and len(info.sha256) == 64
    assert info.der_size == len(c.public_bytes(serialization.Encoding.DER))
