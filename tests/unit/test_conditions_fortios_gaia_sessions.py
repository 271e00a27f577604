"""FortiOS and Gaia drivers against recorded sessions: netmiko's login, exact commands, read-back, rejections."""
from __future__ import annotations

import pytest
from device_replay import Replay, connector, edge_inventory, forbid_connections

from aovpn_lab import inventory
from aovpn_lab.conditions.base import edge_device
from aovpn_lab.conditions.model import Condition
from aovpn_lab.conditions.rules import PortRule, expected
from aovpn_lab.conditions.vendor import DeviceRejected
from aovpn_lab.errors import AovpnError

PROMPTS = {"fortinet": r"^FGT-edge (?:\([^)]*\) )?# ?", "checkpoint_gaia": r"^gw-edge> ?"}
# netmiko puts FortiOS console output back to 'more' when it disconnects; Gaia needs nothing recorded.
CLOSING = {"fortinet": ("logout",), "checkpoint_gaia": ()}
EVERY_BLOCK = "block-udp-500+block-udp-4500+block-esp+block-tcp-443+mtu:1280"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    forbid_connections(monkeypatch)


def device_on(tmp_path, vendor: str, *recordings: str, inside: str = "", outside: str = ""):
    names = {"fortinet": ("port2", "port1"), "checkpoint_gaia": ("eth2", "eth1")}[vendor]
    inv = inventory.load(edge_inventory(tmp_path, vendor, inside or names[0], outside or names[1]))
    replay = Replay.of(vendor, "login", *recordings, *CLOSING[vendor], prompt=PROMPTS[vendor])
    driver = edge_device(inv, "fw")
    driver.connector = connector(replay)
    return driver, replay


def played_exactly(replay: Replay) -> bool:
    return replay.unexpected == [] and replay.unplayed == []


@pytest.mark.parametrize("vendor", ["fortinet", "checkpoint_gaia"])
def test_the_login_is_netmikos_session_preparation_and_nothing_else(tmp_path, vendor):
    driver, replay = device_on(tmp_path, vendor)
    with driver:
        pass
    assert played_exactly(replay)


def test_fortios_login_turns_paging_off_and_the_logout_puts_it_back(tmp_path):
    driver, replay = device_on(tmp_path, "fortinet")
    with driver:
        assert replay.sent[:3] == ["get system status | grep Virtual", "get system status | grep Version",
                                   "get system console"]
    assert replay.sent.count("set output standard") == 1 and replay.sent[-2] == "set output more"


@pytest.mark.parametrize("vendor, recording, condition", [
    ("fortinet", "apply-every-block-mtu", EVERY_BLOCK),
    ("fortinet", "remove-open", "open"),
    ("checkpoint_gaia", "apply-mtu", "mtu:1280"),
    ("checkpoint_gaia", "remove-open", "open"),
])
def test_a_condition_sends_exactly_the_recorded_commands(tmp_path, vendor, recording, condition):
    driver, replay = device_on(tmp_path, vendor, recording)
    with driver:
        driver.apply(Condition.parse(condition))
    assert played_exactly(replay)
    assert str(driver.current) == condition and driver.changed[-1] in replay.sent


@pytest.mark.parametrize("vendor", ["fortinet", "checkpoint_gaia"])
def test_remove_puts_the_device_back_to_open(tmp_path, vendor):
    driver, replay = device_on(tmp_path, vendor, "remove-open")
    with driver:
        driver.remove()
    assert played_exactly(replay) and str(driver.current) == "open"


def test_fortios_read_back_gives_the_port_rule_model_with_policy_defaults(tmp_path):
    # `show` leaves out `set action deny` and `set status enable`: they are the defaults.
    driver, replay = device_on(tmp_path, "fortinet", "read-back")
    with driver:
        rules = driver.effective_rules()
    assert played_exactly(replay)
    assert rules.denied == expected(Condition.parse(EVERY_BLOCK)).denied
    assert PortRule("deny", "esp", None, "port2") in rules.rules
    assert rules.mtu_at("port1") == 1280 and not rules.drops_fragments


def test_gaia_read_back_gives_the_outside_mtu(tmp_path):
    driver, replay = device_on(tmp_path, "checkpoint_gaia", "read-back")
    with driver:
        rules = driver.effective_rules()
    assert played_exactly(replay)
    assert rules.mtu_at("eth1") == 1280 and rules.rules == () and rules.fragments == ()


def test_a_fortios_refusal_aborts_the_open_entry_and_names_what_was_saved(tmp_path):
    driver, replay = device_on(tmp_path, "fortinet", "reject-srcintf", inside="port9")
    with driver, pytest.raises(DeviceRejected) as exc:
        driver.apply(Condition.parse("block-udp-500"))
    msg = str(exc.value)
    assert played_exactly(replay)
    assert replay.sent[replay.sent.index('set srcintf "port9"') + 1] == "abort"
    assert "FortiOS fw (192.0.2.254): the device rejected step 9 `set srcintf \"port9\"`: entry not found in " \
           "datasource value parse error before 'port9' Command fail. Return code -3;" in msg
    saved = ['config firewall service custom', 'edit "AOVPN-udp-500"', 'set udp-portrange 500', 'next', 'end']
    assert f"applied: {saved};" in msg and "left as is: ['set dstintf \"port1\"'" in msg and "\n" not in msg
    assert "fix: set condition_interfaces to the FortiGate's interface names" in msg
    assert driver.changed == saved and driver.current is None


@pytest.mark.parametrize("recording, outside, said, fix", [
    ("reject-config-lock", "eth1", "CLINFR0771 Config lock is owned by admin.", "'lock database override'"),
    ("reject-interface", "eth9", "CLINFR0329 Invalid command:'set interface eth9 mtu 1280'.",
     "set condition_interfaces to the gateway's interface names"),
])
def test_a_gaia_refusal_is_one_line_with_the_devices_words_and_a_fix(tmp_path, recording, outside, said, fix):
    driver, replay = device_on(tmp_path, "checkpoint_gaia", recording, outside=outside)
    with driver, pytest.raises(DeviceRejected) as exc:
        driver.apply(Condition.parse("mtu:1280"))
    msg = str(exc.value)
    assert played_exactly(replay)
    assert f"Gaia fw (192.0.2.254): the device rejected step 1 `set interface {outside} mtu 1280`: {said}" in msg
    assert "applied: [];" in msg and fix in msg and "\n" not in msg
    assert driver.current is None


@pytest.mark.parametrize("vendor, condition, says", [
    ("fortinet", "drop-ip-fragments", "FortiOS has no setting that drops IP fragments"),
    ("fortinet", "nat", "cannot apply condition 'nat'"),
    ("checkpoint_gaia", "drop-ip-fragments", "IPS > IP Fragments"),
    ("checkpoint_gaia", "block-esp+mtu:1280", "Access Control policy lives on the Management Server"),
    ("checkpoint_gaia", "nat", "SmartConsole > NAT"),
])
def test_an_unsupported_condition_is_refused_before_any_command_is_sent(tmp_path, vendor, condition, says):
    driver, replay = device_on(tmp_path, vendor)
    with driver, pytest.raises(AovpnError) as exc:
        driver.apply(Condition.parse(condition))
    assert says in str(exc.value) and "\n" not in str(exc.value)
    assert played_exactly(replay) and driver.current is None


def test_a_fortigate_with_vdoms_refuses_the_first_command_and_the_fix_says_why(tmp_path):
    inv = inventory.load(edge_inventory(tmp_path, "fortinet", "port2", "port1"))
    replay = Replay.of("fortinet", "login-vdoms", "reject-vdoms", "logout-vdoms", prompt=PROMPTS["fortinet"])
    driver = edge_device(inv, "fw")
    driver.connector = connector(replay)
    with driver, pytest.raises(DeviceRejected) as exc:
        driver.apply(Condition.parse("block-udp-500"))
    msg = str(exc.value)
    assert played_exactly(replay) and "abort" not in replay.sent        # nothing was open to abort
    assert "rejected step 1 `config firewall service custom`: command parse error before 'firewall' " \
           "Command fail. Return code -61; applied: [];" in msg
    assert "fix: this FortiGate has VDOMs enabled" in msg


def test_a_driver_without_a_replay_cannot_reach_a_real_device(tmp_path):
    driver = edge_device(inventory.load(edge_inventory(tmp_path, "fortinet", "port2", "port1")), "fw")
    with pytest.raises(AovpnError, match="a test tried a real SSH connection"):
        driver.open()
