"""The conformance matrix as data (profiles/matrix.yml): its cells, and a malformed file
named in one line with the key and the fix."""
from __future__ import annotations

import pytest
import yaml

from aovpn_lab import matrix, paths
from aovpn_lab.errors import AovpnError
from aovpn_lab.expectations import expect


def test_every_protocol_has_its_cells_in_the_order_the_report_shows():
    m = matrix.get()
    # two blocks: pubkey 9 conditions x 3 profiles x RFC 7383 on/off, EAP-TLS 4 x 1 x 2
    assert len(m.ikev2) == 9 * 3 * 2 + 4 * 2
    first = m.ikev2[:2]
    assert [(c.profile.name, c.profile.fragmentation, c.condition) for c in first] == [
        ("aovpn-recommended", True, "open"), ("aovpn-recommended-nofrag", False, "open")]
    assert {c.auth for c in m.ikev2} == {"pubkey", "eap-tls"}
    assert "block-tcp-443" in m.sstp and m.tlsvpn and m.path[0] == "open"
    assert set(m.sstp_binding.values()) == {"gateway", "ca"}
    assert {mode for _, mode in m.fallback.cells} == set(m.fallback.clients)


def test_a_tls_vpn_connects_unless_tcp_443_is_blocked_and_the_path_scan_names_each_block():
    m = matrix.get()
    for section in ("sstp", "tlsvpn"):
        assert {c: expect(section, c, condition=c).outcome for c in getattr(m, section) if c != "open"} == {
            c: "tcp-443-blocked" if c == "block-tcp-443" and section == "sstp" else "connected"
            for c in getattr(m, section) if c != "open"}
    scan = {c: expect("path", c, condition=c) for c in m.path}
    assert scan["open"].outcome == "all needed paths open"
    assert {c: e.outcome for c, e in scan.items() if c != "open"} == {
        "drop-ip-fragments": "ip-fragments-dropped", "block-udp-500": "udp-500-blocked",
        "block-udp-4500": "udp-4500-blocked"}
    assert all(f"'{c}'" in e.reason for c, e in scan.items())


def _broken(tmp_path, edit):
    data = yaml.safe_load((paths.PROFILES / "matrix.yml").read_text())
    edit(data)
    bad = tmp_path / "matrix.yml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(AovpnError) as err:
        matrix.load(bad)
    text = str(err.value)
    assert str(bad) in text and "(fix: " in text and "\n" not in text
    return text


def test_an_unknown_condition_is_named_with_its_key(tmp_path):
    text = _broken(tmp_path, lambda d: d["sstp"]["conditions"].append("block-udp-501"))
    assert "sstp.conditions[8]: unknown network condition 'block-udp-501'" in text


def test_an_unknown_profile_or_auth_is_named_with_its_key(tmp_path):
    assert "ikev2[1].profiles[0]: unknown client profile 'windows95'" in _broken(
        tmp_path, lambda d: d["ikev2"][1].update(profiles=["windows95"]))
    assert "ikev2[0].auth: 'psk' is not one of pubkey, eap-tls" in _broken(
        tmp_path, lambda d: d["ikev2"][0].update(auth="psk"))


def test_a_missing_or_unknown_section_is_named(tmp_path):
    assert "path: missing" in _broken(tmp_path, lambda d: d.pop("path"))
    assert "l2tp: unknown section" in _broken(tmp_path, lambda d: d.update(l2tp={"conditions": ["open"]}))


def test_a_fallback_cell_needs_a_known_rule_and_strategy(tmp_path):
    assert "fallback.cells[0].fallback_on: 'sometimes' is not one of" in _broken(
        tmp_path, lambda d: d["fallback"]["cells"][0].update(fallback_on="sometimes"))
    assert "fallback.strategy: unknown VpnStrategy 'Ikev3'" in _broken(
        tmp_path, lambda d: d["fallback"].update(strategy="Ikev3"))
