"""The ASA driver against recorded ASA sessions: exact commands, read-back, rejections."""
from __future__ import annotations

import pytest
from device_replay import Replay, connector

from aovpn_lab import inventory, paths
from aovpn_lab.conditions.base import edge_device
from aovpn_lab.conditions.cisco_asa import CiscoAsaDriver, parse_access_list
from aovpn_lab.conditions.model import Condition
from aovpn_lab.conditions.rules import FragmentPolicy, MtuSetting, PortRule, expected
from aovpn_lab.conditions.vendor import DeviceRejected
from aovpn_lab.inventory import Vault

EXAMPLE = paths.INVENTORIES / "examples" / "rras-behind-asa.yml"
VAULT = Vault((str(paths.ROOT / "tests" / "data" / "vault" / "example-vault-password"),))
PROMPT = r"^asa1(?:\(config[^)]*\))?[>#] ?|^Username: ?|^Password: ?"


def asa_on(*recordings: str) -> tuple[CiscoAsaDriver, Replay]:
    inv = inventory.load(EXAMPLE, vault=VAULT)
    replay = Replay.of("cisco_asa", "login", *recordings, prompt=PROMPT)
    driver = edge_device(inv, "asa")
    driver.connector = connector(replay)
    return driver, replay


def test_the_example_inventory_gets_the_asa_driver():
    assert isinstance(edge_device(inventory.load(EXAMPLE, vault=VAULT), "asa"), CiscoAsaDriver)


def test_a_port_block_with_fragment_dropping_sends_exactly_the_recorded_commands():
    asa, replay = asa_on("apply-block-udp-500-drop-fragments")
    with asa:
        asa.apply(Condition.parse("block-udp-500+drop-ip-fragments"))
    assert replay.unexpected == [] and replay.unplayed == []
    assert asa.changed[0] == "clear configure access-list AOVPN-COND"
    assert "access-group AOVPN-COND in interface inside" in asa.changed
    assert str(asa.current) == "block-udp-500+drop-ip-fragments"


def test_the_read_back_is_parsed_into_the_port_rule_model():
    asa, replay = asa_on("read-back")
    with asa:
        rules = asa.effective_rules()
    assert replay.unplayed == []
    assert rules.rules == (PortRule("deny", "udp", 500, "inside"), PortRule("allow", "any", None, "inside"))
    assert FragmentPolicy(True, "inside") in rules.fragments and FragmentPolicy(False, "outside") in rules.fragments
    assert rules.mtu_at("outside") == 1500 and MtuSetting(1500, "inside") in rules.mtus


def test_the_read_back_matches_what_the_condition_should_leave():
    asa, _ = asa_on("read-back")
    with asa:
        rules = asa.effective_rules()
    want = expected(Condition.parse("block-udp-500+drop-ip-fragments"), where="inside", rule_where="inside")
    assert want.denied == rules.denied and rules.drops_fragments


def test_a_rejected_command_names_host_step_and_what_was_already_changed():
    asa, replay = asa_on("reject-mtu")
    with asa, pytest.raises(DeviceRejected) as exc:
        asa.apply(Condition.parse("mtu:1280"))
    msg = str(exc.value)
    assert replay.unexpected == [] and replay.unplayed == []
    assert msg.startswith("ASA asa (192.0.2.254): the device rejected step 3 `mtu outside 1280`: "
                          "ERROR: % Invalid input detected at '^' marker.")
    assert "applied: ['clear configure access-list AOVPN-COND', 'fragment chain 24 inside']" in msg
    assert "left as is: []" in msg and "\n" not in msg
    assert asa.current is None


def test_a_missing_access_list_reads_back_as_no_rules():
    assert parse_access_list("ERROR: access-list <AOVPN-COND> does not exist\n", "AOVPN-COND") == ()
