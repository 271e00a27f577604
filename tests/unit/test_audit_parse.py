from pathlib import Path

import pytest

from aovpn_lab.audit import parse

DATA = Path(__file__).resolve().parents[1] / "data" / "rras"


@pytest.fixture
def rras_data():
    return DATA


def test_format_list_splits_objects_at_blank_lines_and_keeps_empty_values():
    blocks = parse.format_list("A : 1\nB :\n\nA : 2\n")
    assert blocks == [{"A": "1", "B": ""}, {"A": "2"}]


def test_format_list_joins_a_wrapped_value():
    text = "EnhancedKeyUsageList : {Server Authentication (1.3.6.1.5.5.7.3.1), IP\n" \
           "                       security IKE intermediate (1.3.6.1.5.5.8.2.2)}\nDnsNameList : {vpn}\n"
    block = parse.one(text)
    assert parse.as_list(block["EnhancedKeyUsageList"])[1] == "IP security IKE intermediate (1.3.6.1.5.5.8.2.2)"
    assert block["DnsNameList"] == "{vpn}"


def test_a_blank_line_inside_a_certificate_value_does_not_end_the_object():
    text = ("Root : [Subject]\n         CN=Root\n\n       [Issuer]\n         CN=Root\nEKUs : {1.3.6.1.5.5.7.3.2}\n")
    block = parse.one(text)
    assert block["Root"] == "[Subject] CN=Root [Issuer] CN=Root"
    assert block["EKUs"] == "{1.3.6.1.5.5.7.3.2}"


def test_text_that_is_not_format_list_is_refused():
    with pytest.raises(parse.ParseError):
        parse.format_list("this is not a property list\n")


def test_registry_values_drop_the_providers_notes():
    text = "CertAuthFlags : 4\nPSPath : Microsoft.PowerShell.Core\\Registry::HKEY_LOCAL_MACHINE\\X\nPSDrive : HKLM\n"
    assert parse.registry_values(text) == {"CertAuthFlags": "4"}


def test_registry_keys_are_named_by_their_path():
    text = ("PSPath : Microsoft.PowerShell.Core\\Registry::HKEY_LOCAL_MACHINE\\S\\TLS 1.0\\Server\nEnabled : 0\n\n"
            "PSPath : Microsoft.PowerShell.Core\\Registry::HKEY_LOCAL_MACHINE\\S\\TLS 1.2\\Server\nEnabled : 1\n")
    keys = parse.registry_keys(text)
    assert keys["HKEY_LOCAL_MACHINE\\S\\TLS 1.0\\Server"] == {"Enabled": "0"}
    assert len(keys) == 2


def test_binary_values_read_as_bytes():
    assert parse.binary("{1, 171}") == b"\x01\xab"
    assert parse.binary("{}") is None


def test_view_labels_map_to_property_names():
    assert parse.field_name("IdleDisconnect(s)") == "IdleDisconnect"


def test_netsh_nps_policies_with_their_attributes(rras_data):
    policies = parse.nps_policies((rras_data / "hardened" / "nps-policies.txt").read_text())
    assert [p.name for p in policies] == ["AOVPN user tunnel", "AOVPN device tunnel",
                                          "Connections to Microsoft Routing and Remote Access server"]
    user = policies[0]
    assert user.state == "Enabled" and user.order == 1
    assert sorted(parse.eap_type(v) for v in user.profile_values("msNPAllowedEapType")) == ["EAP-TLS", "PEAP"]
    assert ("NAS-Port-Type", "0x3d", "0x5") in user.conditions


def test_netsh_text_in_another_shape_is_refused():
    with pytest.raises(parse.ParseError):
        parse.nps_policies("The following command was not found: nps show np.\n")


@pytest.mark.parametrize("folder", ["out-of-the-box", "hardened"])
def test_every_recorded_format_list_file_parses(rras_data, folder):
    for path in (rras_data / folder).glob("*.txt"):
        if path.name != "nps-policies.txt":
            assert parse.format_list(path.read_text()), path
