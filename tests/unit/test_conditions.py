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
    # raw_box is reached from the prerouting chain at priority -450 (edge.nft.j2)
    cmds = " ".join(edge_device(INV).commands(Condition.parse("drop-ip-fragments")))
    assert "add rule inet aovpn_edge raw_box ip frag-off & 0x3fff != 0 counter name fragments_dropped drop" in cmds
    assert "conntrack -F" in cmds


def test_every_condition_starts_from_empty_chains():
    for text in ("open", "block-udp-500", "mtu:1280"):
        cmds = edge_device(INV).commands(Condition.parse(text))
        assert "flush chain inet aovpn_edge raw_box" in cmds[0]
        assert "flush chain inet aovpn_edge forward_box" in cmds[0]
        assert "flush chain ip aovpn_edge_nat nat_box" in cmds[0]


def test_mtu_locks_the_route_mtu_on_every_client_and_internet_facing_link():
    cmds = edge_device(INV).commands(Condition.parse("mtu:1280"))
    routes = [c for c in cmds if c.startswith("ip route replace")]
    assert {r.split()[3] for r in routes} == {"192.0.2.0/25", "192.0.2.128/25", "198.18.2.0/29", "198.18.2.8/29",
                                              "198.18.2.16/29", "203.0.113.0/24"}
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


# -- conditions scoped to one client ------------------------------------------------

def scoped(client: str) -> LinuxNftDriver:
    device = edge_device(INV, client=INV.host(client))
    assert device.scope is not None and device.scope.name == client
    return device


def test_a_scoped_condition_goes_into_the_clients_own_chains_and_counters():
    cmds = " ".join(scoped("client2").commands(Condition.parse("drop-ip-fragments+block-udp-4500")))
    assert "flush chain inet aovpn_edge raw_client2" in cmds and "flush chain inet aovpn_edge forward_client2" in cmds
    assert "add rule inet aovpn_edge raw_client2 ip frag-off & 0x3fff != 0 counter name client2_fragments_dropped drop" in cmds
    assert "add rule inet aovpn_edge forward_client2 udp dport 4500 counter name client2_udp_4500_dropped drop" in cmds
    assert "reset counter inet aovpn_edge client2_udp_4500_dropped" in cmds
    # nothing of the whole box, and nothing of another client
    assert "_box" not in cmds and "raw_client3" not in cmds and "reset counters table" not in cmds
    assert "conntrack -F" not in cmds and "conntrack -D -s 198.18.2.2" in cmds


def test_a_scoped_client_is_reached_by_its_addresses_and_its_own_nat_address():
    setup = " ".join(scoped("client2").scope_setup())
    assert "add element inet aovpn_edge raw_by_source { 198.18.2.0/29 : jump raw_client2 }" in setup
    assert "raw_by_destination { 198.18.2.0/29 : jump raw_client2, 203.0.113.22 : jump raw_client2 }" in setup
    assert "add element ip aovpn_edge_nat nat_by_source { 198.18.2.0/29 : jump nat_client2 }" in setup
    assert "ip addr replace 203.0.113.22/32 dev lo" in setup
    assert "ip rule add from 198.18.2.0/29 lookup 102 pref 1102" in setup
    nat = " ".join(scoped("client2").commands(Condition.parse("nat")))
    assert 'add rule ip aovpn_edge_nat nat_client2 oifname "wan0" snat to 203.0.113.22' in nat


def test_a_scoped_mtu_locks_only_the_clients_link_and_its_own_routing_table():
    cmds = scoped("client3").commands(Condition.parse("mtu:1200"))
    routes = [c for c in cmds if c.startswith("ip route replace")]
    assert routes == ["ip route replace 198.18.2.8/29 dev lan3 proto kernel scope link src 198.18.2.9 mtu lock 1200",
                      "ip route replace 203.0.113.0/24 dev wan0 proto kernel scope link src 203.0.113.1 table 103 "
                      "mtu lock 1200"]


def test_scoped_counters_are_read_under_the_names_the_suite_knows():
    device = scoped("client4")
    device.send = lambda cmds: ('{"nftables": [{"counter": {"name": "client4_udp_500_dropped", "packets": 3}}, '
                                '{"counter": {"name": "udp_500_dropped", "packets": 9}}]}')
    counters = device.counters()
    assert counters["udp_500_dropped"] == 3 and counters["fragments_dropped"] == 0


def test_vendor_edges_do_not_scope_conditions_to_a_client():
    from aovpn_lab.conditions.base import driver_class as cls_of
    assert cls_of("cisco_asa").scopes_clients is False and cls_of("linux_nft").scopes_clients is True


def test_every_nft_a_session_runs_on_the_edge_holds_the_edges_lock():
    """Several sessions (one per worker) change one table: an nft listing or counter reset
    another session's commit interrupts fails with EINTR, so each nft waits its turn."""
    from aovpn_lab.tool import NFT_LOCK
    device = scoped("client2")
    sent: list[str] = []
    device.send = lambda cmds: sent.extend(cmds) or '{"nftables": []}'
    device.counters()
    device.effective_rules()
    cmds = device.scope_setup() + device.commands(Condition.parse("drop-ip-fragments+nat")) + sent
    nfts = [c for c in cmds if "nft " in c]
    assert len(nfts) == 4 and all(c.startswith(f"flock {NFT_LOCK} nft ") for c in nfts)
