"""PAN-OS and Junos drivers against recorded sessions: exact commands, commit, read-back, rejections."""
from __future__ import annotations

import pytest
from device_replay import Replay, connector

from aovpn_lab import inventory, paths
from aovpn_lab.conditions.base import edge_device
from aovpn_lab.conditions.juniper_junos import JuniperJunosDriver
from aovpn_lab.conditions.model import Condition
from aovpn_lab.conditions.paloalto_panos import PaloAltoPanosDriver
from aovpn_lab.conditions.rules import expected
from aovpn_lab.conditions.vendor import DeviceRejected
from aovpn_lab.inventory import Vault

VAULT = Vault((str(paths.ROOT / "tests" / "data" / "vault" / "example-vault-password"),))
DEVICES = {  # vendor: (example inventory, host, prompt)
    "paloalto_panos": ("panos-edge", "pa1", r"^aovpn-test@PA-VM[>#] ?"),
    "juniper_junos": ("junos-edge", "srx1", r"^aovpn-test@srx1[>#] ?"),
}


def device_on(vendor: str, *recordings: str):
    inv_name, host, prompt = DEVICES[vendor]
    inv = inventory.load(paths.INVENTORIES / "examples" / f"{inv_name}.yml", vault=VAULT)
    replay = Replay.of(vendor, "login", *recordings, prompt=prompt)
    driver = edge_device(inv, host)
    driver.connector = connector(replay)
    return driver, replay


def test_the_example_inventories_get_their_vendor_drivers():
    assert isinstance(device_on("paloalto_panos")[0], PaloAltoPanosDriver)
    assert isinstance(device_on("juniper_junos")[0], JuniperJunosDriver)


@pytest.mark.parametrize("vendor, recording, condition", [
    ("paloalto_panos", "apply-block-udp-4500-esp-drop-fragments", "block-udp-4500+block-esp+drop-ip-fragments"),
    ("juniper_junos", "apply-block-udp-500-drop-fragments-mtu", "block-udp-500+drop-ip-fragments+mtu:1280"),
])
def test_a_condition_sends_exactly_the_recorded_commands_and_commits(vendor, recording, condition):
    driver, replay = device_on(vendor, recording)
    with driver:
        driver.apply(Condition.parse(condition))
    assert replay.unexpected == [] and replay.unplayed == []
    assert "commit" in replay.sent and replay.sent.index("commit") > replay.sent.index(driver.changed[-1])
    assert str(driver.current) == condition


@pytest.mark.parametrize("vendor, condition, zone, iface, mtu", [
    ("paloalto_panos", "block-udp-4500+block-esp+drop-ip-fragments", "trust", "ethernet1/1", 1500),
    ("juniper_junos", "block-udp-500+drop-ip-fragments+mtu:1280", "trust", "ge-0/0/0", 1280),
])
def test_the_read_back_gives_the_port_rule_model(vendor, condition, zone, iface, mtu):
    driver, replay = device_on(vendor, "read-back")
    with driver:
        rules = driver.effective_rules()
    assert replay.unplayed == []
    assert rules.denied == expected(Condition.parse(condition)).denied
    assert rules.drops_fragments and {f.where for f in rules.fragments if f.drop_fragments} == {zone}
    assert rules.mtu_at(iface) == mtu
    # the permit-all rule behind ours is not a deny
    assert all(r.action == "deny" for r in rules.rules)


@pytest.mark.parametrize("vendor, recording, condition, step, said", [
    ("paloalto_panos", "reject-mtu", "mtu:1280", "step 5 `set network interface ethernet ethernet1/1 layer3 mtu 1280`",
     "Validation Error: network -> interface -> ethernet -> ethernet1/1 is not a valid reference"),
    ("juniper_junos", "reject-screen", "drop-ip-fragments", "step 4 `set security screen ids-option AOVPN ip "
     "block-frag`", "syntax error."),
])
def test_a_rejection_discards_the_candidate_and_says_so_in_one_line(vendor, recording, condition, step, said):
    driver, replay = device_on(vendor, recording)
    with driver, pytest.raises(DeviceRejected) as exc:
        driver.apply(Condition.parse(condition))
    msg = str(exc.value)
    assert replay.unexpected == [] and replay.unplayed == []      # includes the revert / rollback
    assert f"rejected {step}: {said};" in msg and "\n" not in msg
    assert "applied: none (the uncommitted changes were discarded" in msg and "fix:" in msg
    assert driver.changed == [] and driver.current is None


def test_a_junos_rejection_lists_what_was_not_sent():
    driver, _ = device_on("juniper_junos", "reject-screen")
    with driver, pytest.raises(DeviceRejected) as exc:
        driver.apply(Condition.parse("drop-ip-fragments"))
    assert "left as is: ['set security zones security-zone trust screen AOVPN'" in str(exc.value)


def test_junos_puts_the_policy_before_a_named_one_when_asked(tmp_path):
    from device_replay import edge_inventory
    inv = inventory.load(edge_inventory(tmp_path, "juniper_junos", "ge-0/0/1", "ge-0/0/0",
                                        condition_policy_before="allow-out"))
    cmds = edge_device(inv, "fw").commands(Condition.parse("block-esp"))
    assert cmds[-1] == "insert security policies from-zone trust to-zone untrust policy AOVPN-COND before policy allow-out"
    assert "set applications application AOVPN-esp protocol esp" in cmds


def test_panos_open_clears_fragment_dropping_and_its_rules():
    driver, _ = device_on("paloalto_panos")
    cmds = driver.commands(Condition.parse("open"))
    assert "set network profiles zone-protection-profile AOVPN discard-ip-frag no" in cmds
    assert not any(c.startswith("set rulebase") for c in cmds)
