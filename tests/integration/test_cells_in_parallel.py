"""Cells on several clients at once: a condition scoped to one client leaves the others'
paths alone, a parallel run gives the verdicts of a serial one, and a second lab runs
beside the first."""
from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aovpn_lab import inventory
from aovpn_lab.conditions.base import edge_device
from aovpn_lab.conditions.model import Condition
from aovpn_lab.ike import probe, profiles
from aovpn_lab.target import Target

from labcli import LAB_INVENTORY, aovpn, namespaces

pytestmark = pytest.mark.lab


def attempt(target: Target):
    gw = target.gateways[0]
    return probe.run_probe(target.client.vici, gw.probe_target(target.client), profiles.get(),
                           netns=target.client.netns, ping=gw.ping_target, timeout=10.0,
                           rule=target.give_up)


@pytest.mark.parametrize("blocked, open_", [("client", "client2"), ("client2", "client")])
def test_two_clients_under_opposite_conditions_at_the_same_time_each_get_their_own(lab, blocked, open_):
    targets = {name: Target.from_inventory(lab.inventory, name, scoped=True) for name in (blocked, open_)}
    edges = {name: edge_device(lab.inventory, client=lab.inventory.host(name)) for name in targets}
    try:
        for e in edges.values():
            e.open()
        for gw in targets[blocked].gateways:
            for t in targets.values():
                gw.count_drops_of(t.client)
        for t in targets.values():
            t.reset_path_state()
        edges[blocked].apply(Condition.parse("block-udp-4500"))
        edges[open_].apply(Condition.parse("open"))
        with ThreadPoolExecutor(2) as pool:
            results = dict(zip(targets, pool.map(attempt, targets.values())))
        assert results[open_].connected, results[open_].detail
        assert not results[blocked].connected and results[blocked].cause == "udp-4500-blocked", results[blocked].detail
        # each client's drop counters, at the edge and at the gateway, count its own packets alone
        assert edges[blocked].counters()["udp_4500_dropped"] > 0
        assert edges[open_].counters()["udp_4500_dropped"] == 0
        gw = targets[blocked].gateways[0]
        assert gw.firewall_counters(targets[open_].client)["udp_4500_dropped"] == 0
    finally:
        for e in edges.values():
            e.apply(Condition.parse("open"))
            e.close()


def test_a_fragment_drop_scoped_to_one_client_drops_its_fragments_alone(lab):
    def ping(client: str) -> int:
        ns = lab.spec.namespace(client)
        return subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-c1", "-W1", "-s", "3000", "203.0.113.10"],
                              capture_output=True, timeout=10).returncode
    with edge_device(lab.inventory, client=lab.inventory.host("client3")) as e3, \
            edge_device(lab.inventory, client=lab.inventory.host("client4")) as e4:
        e3.apply(Condition.parse("drop-ip-fragments"))
        e4.apply(Condition.parse("open"))
        try:
            assert ping("client3") != 0 and ping("client4") == 0
            assert e3.counters()["fragments_dropped"] >= 2 and e4.counters()["fragments_dropped"] == 0
            # the other way round, without touching client3's condition first
            e4.apply(Condition.parse("drop-ip-fragments"))
            e3.apply(Condition.parse("open"))
            assert ping("client3") == 0 and ping("client4") != 0
        finally:
            e3.apply(Condition.parse("open"))
            e4.apply(Condition.parse("open"))


# Cells of every kind that runs on a client (IKEv2 under every condition, SSTP, the path,
# the fallback, the crypto binding's grouped cells), not the load balancer's long group.
SELECTION = ("(test_ikev2 and aovpn-recommended and not eap) or test_sstp_connection or test_path "
             "or test_fallback or crypto_binding")


def states(run_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    cells = json.loads((run_dir / "results.json").read_text())["cells"]
    return {c["id"]: c["state"] for c in cells}, {c["id"]: c.get("client") for c in cells}


def test_a_parallel_run_gives_the_verdicts_of_a_serial_run(lab, tmp_path):
    serial = aovpn("run", "--reports", str(tmp_path / "serial"), "--workers", "1", "-k", SELECTION, timeout=900)
    parallel = aovpn("run", "--reports", str(tmp_path / "parallel"), "--workers", "4", "-k", SELECTION, timeout=900)
    assert serial.returncode == parallel.returncode == 0, (serial.stderr[-1500:], parallel.stderr[-1500:])
    s_states, s_clients = states((tmp_path / "serial" / "latest").resolve())
    p_states, p_clients = states((tmp_path / "parallel" / "latest").resolve())
    assert len(s_states) >= 25 and p_states == s_states
    assert set(s_clients.values()) == {"client"}
    assert len(set(p_clients.values())) >= 3, p_clients  # really spread over the clients
    # a group (one reference SSTP server port) stays on one worker
    assert len({c for i, c in p_clients.items() if "crypto_binding" in i}) == 1
    # compare agrees: same matrix, nothing broken or fixed
    cmp = aovpn("compare", str(tmp_path / "serial" / "latest"), str(tmp_path / "parallel" / "latest"),
                "--out", str(tmp_path / "cmp"))
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr


def test_a_second_lab_comes_up_beside_the_first_with_its_own_management_network(lab):
    up = aovpn("--prefix", "side", "lab", "up", "--quiet", "--json", timeout=600)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        assert "management network 198.18.0.0/24 is in use, using 198.18.8.0/24" in up.stderr
        side = inventory.load(LAB_INVENTORY, prefix="side")
        assert str(side.lab.management_network) == "198.18.8.0/24" and side.host("gw1").address == "198.18.8.13"
        status = aovpn("--prefix", "side", "lab", "status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["up"] is True
        # and the first lab is still up and its own
        first = aovpn("lab", "status", "--json")
        assert json.loads(first.stdout)["up"] is True
    finally:
        down = aovpn("--prefix", "side", "lab", "down", "--quiet", timeout=300)
    assert down.returncode == 0, down.stderr
    assert not {n for n in namespaces() if n.startswith("side-")}
