"""Check Point Gaia and FortiOS: what they can apply, and one clear line for what they cannot."""
from __future__ import annotations

import pytest
from device_replay import edge_inventory

from aovpn_lab import inventory
from aovpn_lab.conditions.base import edge_device
from aovpn_lab.conditions.checkpoint_gaia import CheckpointGaiaDriver
from aovpn_lab.conditions.fortinet import FortinetDriver, blocks
from aovpn_lab.conditions.model import Condition
from aovpn_lab.errors import AovpnError


def driver(tmp_path, name, inside, outside):
    return edge_device(inventory.load(edge_inventory(tmp_path, name, inside, outside)), "fw")


@pytest.mark.parametrize("condition, where", [("drop-ip-fragments", "IPS > IP Fragments"),
                                              ("block-udp-500", "SmartConsole")])
def test_gaia_refuses_what_only_the_management_server_can_do(tmp_path, condition, where):
    gw = driver(tmp_path, "checkpoint_gaia", "eth2", "eth1")
    assert isinstance(gw, CheckpointGaiaDriver)
    with pytest.raises(AovpnError) as exc:
        gw.apply(Condition.parse(condition))
    assert f"unsupported condition '{condition}'" in str(exc.value) and where in str(exc.value)


def test_gaia_sets_the_outside_mtu_in_clish(tmp_path):
    gw = driver(tmp_path, "checkpoint_gaia", "eth2", "eth1")
    assert gw.commands(Condition.parse("mtu:1280")) == ["set interface eth1 mtu 1280"]
    assert gw.commands(Condition.parse("open")) == ["set interface eth1 mtu 1500"]


def test_fortios_says_it_has_no_fragment_switch(tmp_path):
    fgt = driver(tmp_path, "fortinet", "port2", "port1")
    assert isinstance(fgt, FortinetDriver)
    with pytest.raises(AovpnError, match="unsupported condition 'drop-ip-fragments': FortiOS has no setting"):
        fgt.apply(Condition.parse("drop-ip-fragments"))


def test_fortios_blocks_ports_with_one_deny_policy_and_custom_services(tmp_path):
    cmds = driver(tmp_path, "fortinet", "port2", "port1").commands(Condition.parse("block-udp-500+block-esp+mtu:1280"))
    assert cmds[:4] == ["config firewall service custom", 'edit "AOVPN-udp-500"', "set udp-portrange 500", "next"]
    assert "set protocol-number 50" in cmds
    assert 'set service "AOVPN-udp-500" "AOVPN-esp"' in cmds and "set status enable" in cmds
    assert cmds[-5:] == ['edit "port1"', "set mtu-override enable", "set mtu 1280", "next", "end"]


def test_fortios_open_disables_the_policy_instead_of_deleting_it(tmp_path):
    cmds = driver(tmp_path, "fortinet", "port2", "port1").commands(Condition.parse("open"))
    assert "set status disable" in cmds and "set mtu-override disable" in cmds and not any("delete" in c for c in cmds)


def test_fortios_listings_are_read_as_edit_blocks():
    text = ('config firewall service custom\n    edit "AOVPN-esp"\n        set protocol IP\n'
            '        set protocol-number 50\n    next\nend\n')
    assert blocks(text) == {"AOVPN-esp": {"protocol": ["IP"], "protocol-number": ["50"]}}
