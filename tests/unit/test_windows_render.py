"""The rras and nps roles rendered for the example inventories: every value equals the
catalogue (or the inventory's stated override), each check names its requirement, a
mutated value fails the requirement it breaks, and no secret reaches a rendering."""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from aovpn_lab import inventory, paths, requirements
from aovpn_lab.errors import AovpnError
from aovpn_lab.inventory import Vault
from aovpn_lab.windows import checks, render

EXAMPLES = paths.INVENTORIES / "examples"
ASA = EXAMPLES / "rras-behind-asa.yml"
F5 = EXAMPLES / "rras-nps-f5.yml"
PASSWORD_FILE = paths.ROOT / "tests" / "data" / "vault" / "example-vault-password"
VAULT = Vault((str(PASSWORD_FILE),))
SECRETS = {"rras1": "example-rras1-radius-S3cret", "rras2": "example-rras2-radius-S3cret"}


def vaulted(secret: str) -> str:
    from ansible.parsing.vault import VaultLib
    return VaultLib(VAULT.secrets()).encrypt(secret).decode()


@pytest.fixture(scope="module")
def f5_with_secrets(tmp_path_factory) -> Path:
    """The F5 example as its header says to deploy it: secrets vaulted in host_vars beside it."""
    folder = tmp_path_factory.mktemp("f5")
    shutil.copy(F5, folder / F5.name)
    (folder / "host_vars").mkdir()
    for gw, secret in SECRETS.items():
        block = "\n".join("  " + line for line in vaulted(secret).splitlines())
        (folder / "host_vars" / f"{gw}.yml").write_text(f"rras_radius_secret: !vault |\n{block}\n")
    return folder / F5.name


def deployments(f5_path: Path):
    asa = inventory.load(ASA, vault=VAULT)
    f5 = inventory.load(f5_path, vault=VAULT)
    return [(asa, "rras1", "rras"), (asa, "nps1", "nps"), (f5, "rras1", "rras"), (f5, "rras2", "rras"),
            (f5, "nps1", "nps")]


def judged(inv, host, role):
    return checks.judge(render(inv, host, role), inv, host)


def with_param(changes, script, **values):
    return [replace(c, args=MappingProxyType({**c.args, "parameters": {**c.parameters, **values}}))
            if c.script_name == script else c for c in changes]


def with_registry(changes, name, data, path_part=""):
    return [replace(c, args=MappingProxyType({**c.args, "data": data}))
            if c.module.endswith("win_regedit") and c.args["name"] == name and path_part in c.args["path"] else c
            for c in changes]


# ------------------------------------------------------------------------ the examples

def test_every_rendered_value_of_both_examples_equals_the_catalogue(f5_with_secrets):
    for inv, host, role in deployments(f5_with_secrets):
        found = judged(inv, host, role)
        assert len(found) > 5, (inv.path.name, host)
        assert checks.failed(found) == [], (inv.path.name, host)


def test_each_check_names_a_requirement_of_the_catalogue(f5_with_secrets):
    known = set(requirements.catalogue())
    for inv, host, role in deployments(f5_with_secrets):
        assert {c.requirement for c in judged(inv, host, role)} <= known


def test_the_rras_checks_cover_every_section_of_the_profile():
    inv = inventory.load(ASA, vault=VAULT)
    covered = {c.requirement for c in judged(inv, "rras1", "rras")}
    assert {"AOVPN-IKE-CRYPTO-001", "AOVPN-IKE-FRAG-001", "AOVPN-CERT-001", "AOVPN-SSTP-BIND-001",
            "AOVPN-SSTP-TLS-001", "AOVPN-RRAS-PROTO-001", "AOVPN-IKE-PORT-001", "AOVPN-LB-REKEY-001",
            "AOVPN-NPS-001", "AOVPN-IKE-CONN-001"} <= covered


def test_a_load_balanced_gateway_gets_the_per_source_sa_limit_and_a_single_one_does_not(f5_with_secrets):
    def names(inv, host):
        return {c.args["name"] for c in render(inv, host, "rras") if c.module.endswith("win_regedit")}
    assert "IkeNumEstablishedForInitialQuery" in names(inventory.load(f5_with_secrets, vault=VAULT), "rras1")
    assert "IkeNumEstablishedForInitialQuery" not in names(inventory.load(ASA, vault=VAULT), "rras1")


def test_tls_offload_renders_usehttps_0_with_the_balancers_certificate_hash(tmp_path):
    text = ASA.read_text().replace("tls_offload: false", "tls_offload: true")
    (tmp_path / ASA.name).write_text(text)
    inv = inventory.load(tmp_path / ASA.name, vault=VAULT)
    changes = render(inv, "rras1", "rras")
    use_https = [c for c in changes if c.args.get("name") == "UseHttps"]
    assert [c.args["data"] for c in use_https] == [0]
    assert checks.failed(checks.judge(changes, inv, "rras1")) == []


def test_nps_has_one_radius_client_per_gateway_of_the_inventory(f5_with_secrets):
    inv = inventory.load(f5_with_secrets, vault=VAULT)
    clients = [c.parameters for c in render(inv, "nps1", "nps") if c.script_name == "radius-client.ps1"]
    assert [(c["Name"], c["Address"]) for c in clients] == [("rras1", "198.51.100.11"), ("rras2", "198.51.100.12")]


def test_the_enhanced_set_stated_in_the_inventory_is_rendered_and_passes(tmp_path):
    text = ASA.read_text().replace("load_balanced: false", "load_balanced: false\n          ikev2_policy: {default_set: enhanced}")
    (tmp_path / ASA.name).write_text(text)
    inv = inventory.load(tmp_path / ASA.name, vault=VAULT)
    changes = render(inv, "rras1", "rras")
    conf = next(c.parameters for c in changes if c.script_name == "vpn-server-configuration.ps1")
    assert (conf["EncryptionMethod"], conf["PfsGroup"]) == ("GCMAES128", "ECP256")
    assert checks.failed(checks.judge(changes, inv, "rras1")) == []


def test_a_weak_group_stated_in_the_inventory_still_fails_the_crypto_requirement(tmp_path):
    text = ASA.read_text().replace(
        "load_balanced: false", "load_balanced: false\n          ikev2_policy: {sets: {standard: {DHGroup: Group2}}}")
    (tmp_path / ASA.name).write_text(text)
    inv = inventory.load(tmp_path / ASA.name, vault=VAULT)
    assert {c.requirement for c in checks.failed(judged(inv, "rras1", "rras"))} == {"AOVPN-IKE-CRYPTO-001"}


# ------------------------------------------------------------------------ mutations

MUTATIONS = {
    "fragmentation off": (lambda ch: with_registry(ch, "EnableServerFragmentation", 0), "AOVPN-IKE-FRAG-001"),
    "CRL check off": (lambda ch: with_registry(ch, "CertAuthFlags", 0), "AOVPN-CERT-001"),
    "DH group 2": (lambda ch: with_param(ch, "vpn-server-configuration.ps1", DHGroup="Group2"), "AOVPN-IKE-CRYPTO-001"),
    "3DES ESP": (lambda ch: with_param(ch, "vpn-server-configuration.ps1", CipherTransformConstants="DES3"),
                 "AOVPN-IKE-CRYPTO-001"),
    "idle time-out 60 s": (lambda ch: with_param(ch, "vpn-server-configuration.ps1", IdleDisconnectSeconds=60),
                           "AOVPN-LB-REKEY-001"),
    "L2TP ports left": (lambda ch: with_param(ch, "vpn-server-configuration.ps1", L2tpPorts=128), "AOVPN-RRAS-PROTO-001"),
    "PPTP ports left": (lambda ch: with_param(ch, "pptp-ports.ps1", WanEndpoints=128), "AOVPN-RRAS-PROTO-001"),
    "TLS 1.0 on": (lambda ch: with_registry(ch, "Enabled", 1, "TLS 1.0"), "AOVPN-SSTP-TLS-001"),
    "wrong SSTP hash": (lambda ch: with_registry(ch, "SHA256CertificateHash", "hex:00"), "AOVPN-SSTP-BIND-001"),
    "MS-CHAPv2 accepted": (lambda ch: with_param(ch, "vpn-auth-protocol.ps1", UserAuthProtocolAccepted=["MsChapv2"]),
                           "AOVPN-CERT-001"),
    "no UDP 4500 rule": (lambda ch: [c for c in ch if "4500" not in c.step], "AOVPN-IKE-PORT-001"),
    "RADIUS accounting on 1646": (lambda ch: [replace(c, args=MappingProxyType({**c.args, "parameters": {
        **c.parameters, "Port": 1646}})) if c.parameters.get("Purpose") == "Accounting" else c for c in ch],
        "AOVPN-NPS-001"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_mutated_rras_value_fails_the_requirement_it_breaks(mutation):
    inv = inventory.load(ASA, vault=VAULT)
    mutate, requirement = MUTATIONS[mutation]
    bad = checks.failed(checks.judge(mutate(render(inv, "rras1", "rras")), inv, "rras1"))
    assert bad and {c.requirement for c in bad} == {requirement}


def test_a_radius_client_at_another_address_fails_the_nps_requirement():
    inv = inventory.load(ASA, vault=VAULT)
    changes = with_param(render(inv, "nps1", "nps"), "radius-client.ps1", Address="192.0.2.99")
    assert [c.requirement for c in checks.failed(checks.judge(changes, inv, "nps1"))] == ["AOVPN-NPS-001"]


def test_a_policy_allowing_md5_fails_the_nps_requirement():
    inv = inventory.load(ASA, vault=VAULT)
    changes = [replace(c, args=MappingProxyType({**c.args, "parameters": {**c.parameters, "EapTypes": [4, 13]}}))
               if c.parameters.get("Name") == "AOVPN device tunnel" else c for c in render(inv, "nps1", "nps")]
    bad = checks.failed(checks.judge(changes, inv, "nps1"))
    assert [c.what for c in bad] == ["network policy AOVPN device tunnel EAP types (EAP-TLS)"]


# ------------------------------------------------------------------------ secrets and bad input

def test_no_secret_is_in_any_rendering(f5_with_secrets):
    for inv, host, role in deployments(f5_with_secrets):
        changes = render(inv, host, role)
        text = json.dumps([dict(c.args) for c in changes]) + repr(changes) + repr(judged(inv, host, role))
        assert not any(secret in text for secret in SECRETS.values()), (inv.path.name, host)
        assert all(c.args.get("sensitive_parameters", [{"value": "<vaulted>"}])[0]["value"] == "<vaulted>"
                   for c in changes)


def test_a_gateway_without_its_vaulted_secret_is_one_line_naming_it_and_the_fix():
    inv = inventory.load(F5)          # the example as shipped: secrets live beside it, not in it
    with pytest.raises(AovpnError) as exc:
        render(inv, "rras1", "rras")
    assert "\n" not in str(exc.value)
    assert str(exc.value).startswith("rras1: step 'inventory':") and "rras_radius_secret" in str(exc.value)
    assert "ansible-vault encrypt_string" in exc.value.hint
    with pytest.raises(AovpnError, match="^nps1: step 'inventory': a host of rras_gateways has no rras_radius_secret"):
        render(inv, "nps1", "nps")


def test_a_malformed_sstp_hash_is_named_before_anything_is_rendered(tmp_path):
    (tmp_path / ASA.name).write_text(ASA.read_text().replace("0123456789ABCDEF" * 4, "not-a-hash"))
    with pytest.raises(AovpnError, match="rras.sstp_certificate_sha256 must be the SHA-256"):
        render(inventory.load(tmp_path / ASA.name, vault=VAULT), "rras1", "rras")


def test_an_unknown_role_is_refused():
    with pytest.raises(AovpnError, match="no Windows role 'dhcp'"):
        render(inventory.load(ASA, vault=VAULT), "rras1", "dhcp")


# ------------------------------------------------------------------------ the scripts

def test_every_parameter_a_task_passes_is_declared_by_its_script(f5_with_secrets):
    for inv, host, role in deployments(f5_with_secrets):
        for c in render(inv, host, role):
            if c.script is None:
                continue
            declared = set(re.findall(r"\]\s*\$(\w+)", c.script.split("$ErrorActionPreference")[0]))
            passed = set(c.parameters) | {p["name"] for p in c.args.get("sensitive_parameters") or []}
            assert passed == declared, (c.script_name, passed ^ declared)


def test_every_script_supports_check_mode_and_reports_its_changes():
    for role in ("rras", "nps"):
        for script in sorted((paths.PLAYBOOKS / "roles" / role / "files").glob("*.ps1")):
            text = script.read_text()
            assert "[CmdletBinding(SupportsShouldProcess)]" in text, script.name
            assert "$Ansible.Changed" in text and "$Ansible.Result" in text, script.name
            sets = re.findall(r"^\s+(?:Set|Add|New|Install)-\w+", text, re.M)
            assert not sets or "ShouldProcess(" in text, script.name
