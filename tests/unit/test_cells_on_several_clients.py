"""Cells on several clients at once: which client a run tests from, its own counters,
captures and half-open ledger entries, and how many workers a run gets."""
from __future__ import annotations

import json
import multiprocessing

import pytest

from aovpn_lab import inventory, paths
from aovpn_lab.errors import AovpnError, InventoryError
from aovpn_lab.ike.halfopen import Ledger
from aovpn_lab.report.run import workers_for
from aovpn_lab.target import Target

LAB = paths.INVENTORIES / "lab"
INV = inventory.load(LAB)


def test_a_run_tests_from_the_first_client_unless_told_otherwise():
    assert Target.from_inventory(INV).client.name == "client"
    assert Target.from_inventory(INV).client.scope is None
    chosen = Target.from_inventory(INV, "client3", scoped=True).client
    assert chosen.name == "client3" and chosen.netns == "aovpn-client3" and chosen.identity == "client3.example.net"
    assert chosen.scope.address == "198.18.2.10" and chosen.scope.nat_address == "203.0.113.23"


def test_an_unknown_client_is_refused_with_the_clients_there_are():
    with pytest.raises(InventoryError, match="'client9' is not a host of group ikev2_clients") as exc:
        Target.from_inventory(INV, "client9")
    assert "client, client2, client3, client4" in exc.value.hint


def test_a_scoped_clients_captures_keep_its_own_packets():
    bpf = "udp port 500 or udp port 4500"
    assert Target.from_inventory(INV).client.capture_filter(bpf) == bpf
    scoped = Target.from_inventory(INV, "client2", scoped=True).client
    assert scoped.capture_filter(bpf) == "(host 198.18.2.2 or host 203.0.113.22) and (udp port 500 or udp port 4500)"


def test_every_client_has_its_own_nat_address_and_routing_table():
    scopes = [Target.from_inventory(INV, c.name, scoped=True).client.scope for c in INV.group("ikev2_clients")]
    assert len({s.nat_address for s in scopes}) == len({s.route_table for s in scopes}) == len(scopes) == 4


def test_a_scoped_clients_gateway_counters_are_its_own(monkeypatch):
    from aovpn_lab import tool
    t = Target.from_inventory(INV, "client2", scoped=True)
    listed = {"nftables": [{"counter": {"name": "udp_4500_dropped", "packets": 7}},
                           {"counter": {"name": "client2_udp_4500_dropped", "packets": 2}}]}
    ran = []

    def fake(argv, **kw):
        ran.append(argv)
        return tool.ToolResult(tuple(argv), 0, json.dumps(listed), "")
    monkeypatch.setattr(tool, "run", fake)
    gw = t.gateways[0]
    assert gw.firewall_counters(t.client)["udp_4500_dropped"] == 2
    assert gw.firewall_counters()["udp_4500_dropped"] == 7
    gw.count_drops_of(t.client)
    assert all(argv[:3] == ["flock", tool.NFT_LOCK, "nft"] for argv in ran)  # one nft at a time
    script = ran[-1][-1]
    assert "add rule inet aovpn_gwfw drops_client2 udp dport 4500 counter name client2_udp_4500_dropped drop" in script
    assert "drops_by_source { 198.18.2.2 : jump drops_client2, 203.0.113.22 : jump drops_client2 }" in script


def test_auto_gives_one_worker_per_client_of_the_lab():
    assert workers_for(str(LAB), None, None, "auto", None) == 4
    assert workers_for(str(LAB), None, None, "auto", "client2") == 1
    assert workers_for(str(LAB), None, None, 2, None) == 2


@pytest.mark.parametrize("workers, client, says", [
    (5, None, r"has 4 host\(s\) in group ikev2_clients"),
    (2, "client2", "each worker tests from a client of its own"),
    (0, None, "expected 1 or more"),
    ("many", None, "expected a number or 'auto'"),
])
def test_a_worker_count_that_cannot_work_is_refused(workers, client, says):
    with pytest.raises(AovpnError, match=says):
        workers_for(str(LAB), None, None, workers, client)


def test_an_edge_that_cannot_scope_conditions_gets_one_worker():
    example = paths.INVENTORIES / "examples" / "rras-behind-asa.yml"
    from aovpn_lab.inventory.vault import Vault
    vault = Vault(("tests/data/vault/example-vault-password",))
    assert workers_for(str(example), None, vault, "auto", None) == 1


def _record(path, netns, n):
    ledger = Ledger(path, clock=lambda: 1000.0)
    for _ in range(n):
        ledger.record(netns, "203.0.113.10", when=999.0)


def test_the_half_open_ledger_keeps_every_processs_entries(tmp_path):
    path = tmp_path / "half-open.json"
    procs = [multiprocessing.Process(target=_record, args=(path, f"aovpn-client{i}", 3)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    data = json.loads(path.read_text())
    assert sorted(data) == [f"aovpn-client{i} 203.0.113.10" for i in range(4)]
    assert all(len(v) == 3 for v in data.values())
