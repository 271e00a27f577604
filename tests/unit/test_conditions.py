"""Network conditions: parsing, and the commands each platform driver would run."""
from __future__ import annotations

import pytest

from aovpn_lab import inventory, paths
from aovpn_lab.conditions.base import driver_class, edge_device
from aovpn_lab.conditions.cisco_asa import CiscoAsaDriver
from aovpn_lab.conditions.linux_nft import LinuxNftDriver
from aovpn_lab.conditions.model import Condition
from aovpn_lab.errors import AovpnError, InventoryError

INV = inventory.load(paths.INVENTORIES / "lab")


@pytest.mark.parametrize("text", ["open", "drop-ip-fragments", "block-udp-500", "block-udp-4500", "block-esp",
                                  "mtu:1280", "mtu:1200"])
def test_every_condition_round_trips_through_its_name(text):
    assert str(Condition.parse(text)) == text


@pytest.mark.parametrize("text", ["mtu", "mtu:abc", "mtu:100", "drop-everything", ""])
def test_unknown_or_malformed_conditions_are_refused_with_the_list(text):
    with pytest.raises(AovpnError) as exc:
        Condition.parse(text)
    assert "mtu" in str(exc.value)


def test_the_lab_edge_gets_the_nftables_driver():
    device = edge_device(INV)
    assert isinstance(device, LinuxNftDriver)
    assert device.host.name == "edge"


def test_fragments_are_dropped_before_conntrack_defragments_them():
    cmds = " ".join(edge_device(INV).commands(Condition.parse("drop-ip-fragments")))
    assert "add rule inet aovpn_edge raw_prerouting ip frag-off & 0x3fff != 0" in cmds
    assert "drop" in cmds and "conntrack -F" in cmds


def test_every_condition_starts_from_empty_chains():
    for text in ("open", "block-udp-500", "mtu:1280"):
        cmds = edge_device(INV).commands(Condition.parse(text))
        assert "flush chain inet aovpn_edge raw_prerouting" in cmds[0]
        assert "flush chain inet aovpn_edge forward_filter" in cmds[0]


def test_mtu_locks_the_route_mtu_on_every_client_and_internet_facing_link():
    cmds = edge_device(INV).commands(Condition.parse("mtu:1280"))
    routes = [c for c in cmds if c.startswith("ip route replace")]
    assert {r.split()[3] for r in routes} == {"192.0.2.0/25", "192.0.2.128/25", "203.0.113.0/24"}
    assert all(r.endswith("mtu lock 1280") for r in routes)
    # and 'open' puts the plain routes back
    assert not any("mtu" in c for c in edge_device(INV).commands(Condition.parse("open")) if "route" in c)


def test_port_blocks_drop_only_their_port():
    cmds = " ".join(edge_device(INV).commands(Condition.parse("block-udp-4500")))
    assert "udp dport 4500" in cmds and "udp dport 500 " not in cmds


def test_asa_driver_generates_asa_commands_and_is_labelled_as_not_run_here():
    asa = CiscoAsaDriver(INV, INV.host("edge"))
    assert CiscoAsaDriver.exercised_in_lab is False
    assert "fragment chain 1 lan0" in asa.commands(Condition.parse("drop-ip-fragments"))
    assert "access-list AOVPN-COND extended deny udp any any eq isakmp" in asa.commands(Condition.parse("block-udp-500"))
    assert "mtu wan0 1280" in asa.commands(Condition.parse("mtu:1280"))
    opened = asa.commands(Condition.parse("open"))
    assert "fragment chain 24 lan0" in opened and "mtu wan0 1500" in opened


def test_unknown_driver_names_the_known_ones():
    with pytest.raises(InventoryError, match="linux_nft"):
        driver_class("juniper_magic")


def test_a_driver_refuses_conditions_it_does_not_support():
    class Limited(LinuxNftDriver):
        supports = frozenset({"open"})
    with pytest.raises(AovpnError, match="cannot apply condition 'block-esp'"):
        Limited(INV, INV.host("edge")).apply(Condition.parse("block-esp"))


def test_conditions_combine_into_one_ruleset():
    c = Condition.parse("mtu:1200+drop-ip-fragments")
    assert str(c) == "mtu:1200+drop-ip-fragments" and c.path_mtu == 1200 and c.has("drop-ip-fragments")
    cmds = edge_device(INV).commands(c)
    assert "ip frag-off & 0x3fff != 0" in cmds[0]
    assert any(x.endswith("mtu lock 1200") for x in cmds)


@pytest.mark.parametrize("text", ["open+nat", "nat+nat", "mtu:1200+bogus"])
def test_bad_combinations_are_refused(text):
    with pytest.raises(AovpnError):
        Condition.parse(text)
