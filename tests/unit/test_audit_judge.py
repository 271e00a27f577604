import datetime as dt
import shutil
from pathlib import Path

import pytest

from aovpn_lab.audit import collect, judge, report

DATA = Path(__file__).resolve().parents[1] / "data" / "rras"
GATEWAY = {"ikev2_gateway": {"identity": "vpn.corp.example.com"},
           "rras": {"RootCertificateNameToAccept": "CN=Corp Root CA, DC=corp, DC=example, DC=com"}}
NOW = dt.datetime(2026, 1, 15, tzinfo=dt.timezone.utc)


def audit(folder, host_vars=GATEWAY):
    return judge.judge(collect.recorded(folder), host="rras1", origin=str(folder), host_vars=host_vars, now=NOW)


@pytest.fixture(scope="module")
def weak():
    return {f.code: f for f in audit(DATA / "out-of-the-box").findings}


# Every weak default of an RRAS configured by its wizard: code -> (severity, requirement, text in the fix)
WEAK_DEFAULTS = {
    "ike-policy-default": ("fail", "AOVPN-IKE-CRYPTO-001", "Set-VpnServerConfiguration -CustomPolicy"),
    "esp-policy-default": ("fail", "AOVPN-ESP-CRYPTO-001", "-CipherTransformConstants AES128"),
    "ikev2-server-fragmentation": ("fail", "AOVPN-IKE-FRAG-001",
                                   "-Name EnableServerFragmentation -PropertyType DWord -Value 1"),
    "ikev2-crl-check": ("fail", "AOVPN-CERT-001", "-Name CertAuthFlags -PropertyType DWord -Value 4"),
    "certificate-server-missing": ("fail", "AOVPN-CERT-001", "Cert:\\LocalMachine\\My"),
    "schannel-tls-1.0-enabled": ("warn", "AOVPN-SSTP-TLS-001", "TLS 1.0\\Server' -Name Enabled -PropertyType DWord -Value 0"),
    "schannel-tls-1.1-enabled": ("warn", "AOVPN-SSTP-TLS-001", "TLS 1.1\\Server"),
    "protocol-l2tp-enabled": ("warn", "AOVPN-RRAS-PROTO-001", "Set-VpnServerConfiguration -L2tpPorts 0"),
    "protocol-pptp-enabled": ("warn", "AOVPN-RRAS-PROTO-001", "-Name EnableForRas -Value 0"),
    "firewall-udp-500-closed": ("fail", "AOVPN-IKE-PORT-001", "-Protocol UDP -LocalPort 500"),
    "firewall-udp-4500-closed": ("fail", "AOVPN-IKE-PORT-001", "-LocalPort 4500"),
    "auth-UserAuthProtocolAccepted": ("fail", "AOVPN-CERT-001", "Set-VpnAuthProtocol -UserAuthProtocolAccepted EAP"),
    "auth-CertificateEKUsToAccept": ("fail", "AOVPN-CERT-001", "-CertificateEKUsToAccept 1.3.6.1.5.5.7.3.2"),
    "nps-policy-missing-aovpn-user-tunnel": ("fail", "AOVPN-NPS-001", "netsh nps add np"),
}


@pytest.mark.parametrize("code", sorted(WEAK_DEFAULTS))
def test_the_out_of_the_box_server_shows_each_weak_default_with_its_requirement_and_fix(weak, code):
    severity, requirement, fix = WEAK_DEFAULTS[code]
    assert code in weak, sorted(weak)
    f = weak[code]
    assert (f.severity, f.requirement) == (severity, requirement)
    assert fix in f.fix
    assert f.found and f.expected


def test_the_default_policy_is_named_as_offering_3des_sha1_and_dh2(weak):
    assert "3DES, SHA-1 and DH group 2" in weak["ike-policy-default"].found


def test_the_policy_fix_carries_the_catalogues_standard_set(weak):
    fix = weak["ike-policy-default"].fix
    for part in ("-EncryptionMethod AES128", "-IntegrityCheckMethod SHA256", "-DHGroup Group14", "-PfsGroup PFS2048",
                 "-SALifeTimeSeconds 28800", "Restart-Service RemoteAccess"):
        assert part in fix


def test_the_out_of_the_box_server_fails_and_the_hardened_one_passes():
    assert audit(DATA / "out-of-the-box").result == "fail"
    hardened = audit(DATA / "hardened")
    assert hardened.failures == [] and hardened.warnings == []
    assert hardened.result == "pass"


def test_a_custom_policy_with_a_weak_value_fails_its_requirement(tmp_path):
    shutil.copytree(DATA / "hardened", tmp_path, dirs_exist_ok=True)
    cfg = tmp_path / "vpn-server-configuration.txt"
    cfg.write_text(cfg.read_text().replace("DHGroup                          : Group14",
                                           "DHGroup                          : Group2"))
    f = {f.code: f for f in audit(tmp_path).findings}["policy-DHGroup-weak"]
    assert (f.severity, f.requirement, f.found) == ("fail", "AOVPN-IKE-CRYPTO-001", "DHGroup Group2 (weak)")


def test_the_enhanced_set_is_accepted_as_well_as_the_standard_one(tmp_path):
    shutil.copytree(DATA / "hardened", tmp_path, dirs_exist_ok=True)
    cfg = tmp_path / "vpn-server-configuration.txt"
    cfg.write_text(cfg.read_text().replace(": PFS2048", ": ECP256"))
    assert audit(tmp_path).failures == []


def test_a_missing_output_is_a_not_read_finding_never_a_pass(tmp_path):
    shutil.copytree(DATA / "hardened", tmp_path, dirs_exist_ok=True)
    (tmp_path / "registry-remoteaccess-parameters-ikev2.txt").unlink()
    r = audit(tmp_path)
    codes = r.codes()
    assert "not-read-registry-remoteaccess-parameters-ikev2" in codes
    f = next(f for f in r.findings if f.code.startswith("not-read-"))
    assert f.severity == "info" and "missing" in f.found
    assert r.result == "incomplete"
    assert "Result: INCOMPLETE" in report.render_text(r)


def test_output_in_another_shape_is_not_read(tmp_path):
    shutil.copytree(DATA / "hardened", tmp_path, dirs_exist_ok=True)
    (tmp_path / "schannel.txt").write_text("Access is denied.\n")
    assert "not-read-schannel" in audit(tmp_path).codes()


def test_the_sstp_hash_must_be_the_certificate_clients_see(tmp_path):
    shutil.copytree(DATA / "hardened", tmp_path, dirs_exist_ok=True)
    shutil.copy(DATA / "out-of-the-box" / "registry-sstpsvc-parameters.txt", tmp_path)
    f = {f.code: f for f in audit(tmp_path).findings}["sstp-certificate-hash"]
    assert (f.severity, f.requirement) == ("fail", "AOVPN-SSTP-BIND-001")
    assert f.expected.startswith("9F86D081")


def test_a_load_balanced_gateway_is_judged_on_its_ikeext_value(tmp_path):
    shutil.copytree(DATA / "out-of-the-box", tmp_path, dirs_exist_ok=True)
    f = {f.code: f for f in audit(tmp_path, {**GATEWAY, "rras": {"load_balanced": True}}).findings}
    assert f["ikeext-sas-per-source"].severity == "warn"  # AOVPN-LB-NOSNAT-001 is a SHOULD
    assert "IkeNumEstablishedForInitialQuery -PropertyType DWord -Value 50000" in f["ikeext-sas-per-source"].fix


def test_the_json_view_carries_every_finding_with_its_fix():
    data = report.to_json(audit(DATA / "out-of-the-box"))
    assert data["result"] == "fail"
    assert all({"code", "severity", "requirement", "found", "expected", "fix"} <= set(f) for f in data["findings"])
