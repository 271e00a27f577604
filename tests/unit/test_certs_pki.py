"""aovpn_lab.certs.pki / profiles: the lab PKI built from profiles/certificates.yml.

The RSA-4096 ("large") PKI is generated once per session: every module asks issue_pki for
the same directory under the session's base temp dir, so later requests hit the cache.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID, ObjectIdentifier
from cryptography.x509.verification import PolicyBuilder, Store

from aovpn_lab.certs.errors import CertificateProfileError
from aovpn_lab.certs.pki import MANIFEST_NAME, PkiFiles, issue_pki, main
from aovpn_lab.certs.profiles import default_profiles_file, load_profile, profile_names

GW = "vpn.example.net"
MACHINE = "client.example.net"
USER = "alice"
IKE_INTERMEDIATE = ObjectIdentifier("1.3.6.1.5.5.8.2.2")
UPN = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


def session_pki(tmp_path_factory: pytest.TempPathFactory, profile: str) -> PkiFiles:
    out = tmp_path_factory.getbasetemp() / f"certs-session-{profile}"
    return issue_pki(profile, out, gateways=[GW], machines=[MACHINE], users=[USER])


@pytest.fixture(scope="session")
def small(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return session_pki(tmp_path_factory, "small")


@pytest.fixture(scope="session")
def large(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return session_pki(tmp_path_factory, "large")


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def certs(path: Path) -> list[x509.Certificate]:
    data = path.read_bytes()
    return x509.load_pem_x509_certificates(data) if data.strip() else []


def ekus(c: x509.Certificate) -> list[ObjectIdentifier]:
    return list(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def cn(c: x509.Certificate) -> str:
    return c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


# ---------------------------------------------------------------------------- profiles


def test_profiles_file_defines_small_and_large():
    assert default_profiles_file().name == "certificates.yml"
    assert {"small", "large"} <= set(profile_names())
    small_p, large_p = load_profile("small"), load_profile("large")
    assert (small_p.root.key.label, small_p.leaf.key.label, len(small_p.intermediates)) == ("ecdsa-p256", "ecdsa-p256", 0)
    assert (large_p.root.key.label, large_p.leaf.key.label) == ("rsa-4096", "rsa-4096")
    assert [c.key.label for c in large_p.intermediates] == ["rsa-4096", "rsa-4096"]
    assert large_p.leaf_extensions.crl_distribution_points and large_p.leaf_extensions.policies
    assert all("pki.example.net" in u for u in large_p.leaf_extensions.ocsp + large_p.leaf_extensions.ca_issuers)


def test_unknown_profile_names_file_and_known_profiles():
    with pytest.raises(CertificateProfileError) as exc:
        load_profile("medium")
    msg = str(exc.value)
    assert "certificates.yml" in msg and "'medium'" in msg and "large" in msg and "small" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "body, where",
    [
        ("profiles: {x: {root: {name: r, key: {type: dsa}}, leaf: {key: {type: ec}}}}\nroles: {}", "roles"),
        ("roles: {gateway: {eku: [server_auth]}, machine: {eku: [client_auth]}, user: {eku: [client_auth]}}\n"
         "profiles: {x: {root: {name: r, key: {type: rsa, bits: 1024}}, leaf: {key: {type: ec}}}}",
         "profiles.x.root.key.bits"),
        ("roles: {gateway: {eku: [bogus_eku]}, machine: {eku: [client_auth]}, user: {eku: [client_auth]}}\n"
         "profiles: {x: {root: {name: r, key: {type: ec}}, leaf: {key: {type: ec}}}}", "roles.gateway.eku"),
        ("profiles: [1, 2]", "'profiles' mapping"),
        ("profiles: {x: [\n", "not valid YAML"),
    ],
)
def test_malformed_profiles_file_says_where(tmp_path, body, where):
    f = tmp_path / "certificates.yml"
    f.write_text(body)
    with pytest.raises(CertificateProfileError) as exc:
        load_profile("x", f)
    assert str(f) in str(exc.value) and where in str(exc.value)


# ---------------------------------------------------------------------------- small


def test_small_is_a_single_ecdsa_p256_ca(small):
    root = cert(small.ca)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp256r1"
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    # single CA: the intermediate files exist (stable names for playbooks) but are empty
    assert small.intermediates.exists() and small.intermediates.read_bytes() == b""
    assert small.chain.exists() and small.chain.read_bytes() == b""
    for ent in small.entities.values():
        leaf = cert(ent.cert)
        assert leaf.issuer == root.subject
        leaf.verify_directly_issued_by(root)  # raises if not signed by the root
        assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
        assert leaf.public_key().curve.name == "secp256r1"
        assert ent.fullchain.read_bytes() == ent.cert.read_bytes()


def test_small_gateway_certificate(small):
    gw = cert(small.entity(GW).cert)
    assert cn(gw) == GW
    assert gw.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [GW]
    assert ekus(gw) == [ExtendedKeyUsageOID.SERVER_AUTH, IKE_INTERMEDIATE]
    ku = gw.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_encipherment  # EC key: no keyEncipherment
    assert gw.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    for ext_cls in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess, x509.CertificatePolicies):
        with pytest.raises(x509.ExtensionNotFound):
            gw.extensions.get_extension_for_class(ext_cls)


def test_small_machine_and_user_certificates(small):
    m = cert(small.entity(MACHINE).cert)
    assert cn(m) == MACHINE
    assert m.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [MACHINE]
    assert ekus(m) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    u = cert(small.entity(USER).cert)
    assert cn(u) == USER
    assert ekus(u) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert small.by_role("user")[0].name == USER and small.gateways[0].name == GW and small.machines[0].name == MACHINE


# ---------------------------------------------------------------------------- large


def test_large_chain_root_int1_int2_leaves(large):
    root = cert(large.ca)
    int1, int2 = certs(large.intermediates)  # root side first
    assert certs(large.chain) == [int2, int1]  # sending order: leaf side first
    for c in (root, int1, int2):
        assert isinstance(c.public_key(), rsa.RSAPublicKey) and c.public_key().key_size == 4096
        assert c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    root.verify_directly_issued_by(root)
    int1.verify_directly_issued_by(root)
    int2.verify_directly_issued_by(int1)
    assert int1.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    assert int2.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    for ent in large.entities.values():
        leaf = cert(ent.cert)
        leaf.verify_directly_issued_by(int2)
        assert leaf.public_key().key_size == 4096
        assert certs(ent.fullchain) == [leaf, int2, int1]


def test_large_certificates_carry_cdp_aia_and_policies(large):
    int1, int2 = certs(large.intermediates)
    root = cert(large.ca)
    with pytest.raises(x509.ExtensionNotFound):
        root.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    for c in [int1, int2] + [cert(e.cert) for e in large.entities.values()]:
        cdp = c.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        urls = [n.value for p in cdp for n in p.full_name]
        assert urls and all(u.startswith("http://pki.example.net/") for u in urls)
        aia = c.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        methods = {a.access_method for a in aia}
        assert methods == {x509.AuthorityInformationAccessOID.OCSP, x509.AuthorityInformationAccessOID.CA_ISSUERS}
        assert all(".example.net/" in a.access_location.value for a in aia)
        assert c.extensions.get_extension_for_oid(ExtensionOID.CERTIFICATE_POLICIES).value
    # the leaf's CDP points at the CRL of its issuer (int2)
    gw = cert(large.entity(GW).cert)
    cdp_url = gw.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0].full_name[0].value
    assert "issuing-ca-2" in cdp_url


def test_large_gateway_and_user_details(large):
    gw = cert(large.entity(GW).cert)
    assert cn(gw) == GW
    assert ekus(gw) == [ExtendedKeyUsageOID.SERVER_AUTH, IKE_INTERMEDIATE]
    ku = gw.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment  # RSA: + keyEncipherment
    user = cert(large.entity(USER).cert)
    san = user.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["alice@corp.example.net"]
    upn = [v for v in san.get_values_for_type(x509.OtherName) if v.type_id == UPN]
    assert upn and upn[0].value == b"\x0c\x16alice@corp.example.net"


@pytest.mark.parametrize("profile", ["small", "large"])
def test_leaves_validate_to_the_root_with_a_path_builder(request, profile):
    pki: PkiFiles = request.getfixturevalue(profile)
    store = Store([cert(pki.ca)])
    inter = certs(pki.chain)
    chain = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(GW)).verify(cert(pki.entity(GW).cert), inter)
    assert chain[-1] == cert(pki.ca) and len(chain) == 2 + len(inter)
    for name in (MACHINE, USER):
        verified = PolicyBuilder().store(store).build_client_verifier().verify(cert(pki.entity(name).cert), inter)
        assert verified.chain[-1] == cert(pki.ca)


@pytest.mark.parametrize("profile", ["small", "large"])
def test_keys_are_unencrypted_pkcs8_mode_0600_and_match(request, profile):
    pki: PkiFiles = request.getfixturevalue(profile)
    for ent in pki.entities.values():
        data = ent.key.read_bytes()
        assert data.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, not "EC/RSA PRIVATE KEY"
        assert stat.S_IMODE(os.stat(ent.key).st_mode) == 0o600
        key = serialization.load_pem_private_key(data, password=None)
        assert key.public_key() == cert(ent.cert).public_key()


# ---------------------------------------------------------------------------- caching


def test_second_call_reuses_files(small, tmp_path_factory):
    before = {p.name: p.stat().st_mtime_ns for p in small.out_dir.iterdir()}
    t0 = time.monotonic()
    again = session_pki(tmp_path_factory, "small")
    assert again.generated is False
    assert time.monotonic() - t0 < 0.5
    assert {p.name: p.stat().st_mtime_ns for p in small.out_dir.iterdir()} == before


def test_cached_large_pki_comes_back_fast(large, tmp_path_factory):
    t0 = time.monotonic()
    again = session_pki(tmp_path_factory, "large")
    elapsed = time.monotonic() - t0
    assert again.generated is False and elapsed < 0.5, elapsed
    assert again.entity(GW).cert == large.entity(GW).cert


def test_changes_regenerate_and_remove_stale_files(tmp_path):
    first = issue_pki("small", tmp_path, [GW], [MACHINE])
    assert first.generated
    root_before = tmp_path.joinpath("ca.pem").read_bytes()
    # different names -> new PKI; the machine that is no longer wanted disappears
    second = issue_pki("small", tmp_path, [GW], ["other.example.net"], users=["bob"])
    assert second.generated
    assert not (tmp_path / f"{MACHINE}.cert.pem").exists() and not (tmp_path / f"{MACHINE}.key.pem").exists()
    assert (tmp_path / "other.example.net.key.pem").exists() and (tmp_path / "bob.cert.pem").exists()
    assert tmp_path.joinpath("ca.pem").read_bytes() != root_before
    # same request -> cached; different validity -> regenerated
    assert issue_pki("small", tmp_path, [GW], ["other.example.net"], users=["bob"]).generated is False
    assert issue_pki("small", tmp_path, [GW], ["other.example.net"], users=["bob"], validity_days=30).generated
    # force regenerates
    assert issue_pki("small", tmp_path, [GW], ["other.example.net"], users=["bob"], validity_days=30, force=True).generated
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["profile"] == "small" and manifest["validity_days"] == 30
    leaf = cert(tmp_path / f"{GW}.cert.pem")
    assert 29 <= (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 31


def test_damaged_set_is_regenerated(tmp_path):
    issue_pki("small", tmp_path, [GW], [])
    (tmp_path / f"{GW}.key.pem").unlink()
    again = issue_pki("small", tmp_path, [GW], [])
    assert again.generated and (tmp_path / f"{GW}.key.pem").exists()
    (tmp_path / "ca.pem").write_bytes(b"tampered")
    assert issue_pki("small", tmp_path, [GW], []).generated


def test_changed_profile_data_regenerates(tmp_path):
    src = default_profiles_file().read_text()
    f = tmp_path / "certificates.yml"
    f.write_text(src)
    out = tmp_path / "pki"
    assert issue_pki("small", out, [GW], [], profiles_file=f).generated
    assert not issue_pki("small", out, [GW], [], profiles_file=f).generated
    f.write_text(src.replace("name: aovpn-lab ECDSA Root CA", "name: aovpn-lab Other Root CA"))
    assert issue_pki("small", out, [GW], [], profiles_file=f).generated
    assert cn(cert(out / "ca.pem")) == "aovpn-lab Other Root CA"


@pytest.mark.parametrize(
    "gateways, machines, users",
    [([GW], [GW], []), (["../evil"], [], []), (["a/b"], [], []), ([""], [], []), ([GW], [], [GW])],
)
def test_unusable_names_are_rejected(tmp_path, gateways, machines, users):
    with pytest.raises(ValueError):
        issue_pki("small", tmp_path, gateways, machines, users)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_user_with_at_sign_gets_upn_from_its_name(tmp_path):
    files = issue_pki("small", tmp_path, [], [], users=["bob@example.org"])
    san = cert(files.entity("bob@example.org").cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["bob@example.org"]


# ---------------------------------------------------------------------------- module CLI


def test_cli_json_and_cached_summary(tmp_path, capsys):
    argv = ["--profile", "small", "--out", str(tmp_path), "--gateway", GW, "--machine", MACHINE, "--user", USER]
    assert main(argv + ["--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["generated"] is True and data["profile"] == "small"
    assert data["entities"][GW]["cert"] == str(tmp_path / f"{GW}.cert.pem")
    assert data["entities"][USER]["role"] == "user"
    assert "PRIVATE KEY" not in out
    assert main(argv) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "up to date" in line and "PRIVATE" not in line


def test_cli_unknown_profile_exits_2_with_one_line(tmp_path, capsys):
    assert main(["--profile", "huge", "--out", str(tmp_path), "--gateway", GW]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err and "certificates.yml" in err and "large" in err and "small" in err and "huge" in err
    assert not any(tmp_path.iterdir())


def test_python_dash_m_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "aovpn_lab.certs.pki", "--profile", "small", "--out", str(tmp_path),
         "--gateway", GW, "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no runpy warnings
    assert json.loads(proc.stdout)["entities"][GW]["key"].endswith(f"{GW}.key.pem")


def test_concurrent_runs_generate_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: issue_pki("small", tmp_path, [GW], [MACHINE]), range(4)))
    assert sum(r.generated for r in results) == 1
    leaf = cert(tmp_path / f"{GW}.cert.pem")
    leaf.verify_directly_issued_by(cert(tmp_path / "ca.pem"))  # a consistent set, not a mix
