"""testinfra over SSH, as against real machines: what `lab up` provisioned is really there."""
from __future__ import annotations

import pytest
import testinfra

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def hosts(lab):
    cfg = str(lab.spec.ssh_config)
    return {name: testinfra.get_host(f"ssh://root@{lab.inventory.host(name).address}", ssh_config=cfg)
            for name in lab.spec.hosts}


@pytest.mark.parametrize("name", ["client", "edge", "gw1", "probe", "rad"])
def test_every_lab_host_answers_ssh_on_its_management_address(hosts, lab, name):
    host = hosts[name]
    addr = lab.inventory.host(name).address
    assert host.socket(f"tcp://{addr}:22").is_listening
    # The session really runs inside the host's own namespace: it sees its own addresses only.
    assert addr in host.interface("mgmt0").addresses


@pytest.mark.parametrize("name", ["client", "gw1"])
def test_charon_runs_inside_the_host_and_its_vici_socket_exists(hosts, lab, name):
    host = hosts[name]
    sdir = lab.spec.host_dir(name) / "strongswan"
    pid = host.file(str(sdir / "charon.pid")).content_string.strip()
    assert pid.isdigit()
    # one PID namespace for all lab hosts: check the process's network namespace is this host's
    assert host.check_output(f"readlink /proc/{pid}/ns/net") == host.check_output("readlink /proc/self/ns/net")
    assert host.check_output(f"cat /proc/{pid}/comm") == "charon"
    assert host.file(str(sdir / "charon.vici")).is_socket


def test_the_gateway_has_its_connection_and_pool_loaded(hosts, lab):
    sdir = lab.spec.host_dir("gw1") / "strongswan"
    out = hosts["gw1"].check_output(f"swanctl --list-conns --uri unix://{sdir}/charon.vici")
    assert "machine-cert" in out and "IKEv2" in out
    pools = hosts["gw1"].check_output(f"swanctl --list-pools --uri unix://{sdir}/charon.vici")
    assert "198.19.1.0" in pools


def test_the_edge_forwards_and_has_its_ruleset_loaded(hosts):
    edge = hosts["edge"]
    assert edge.sysctl("net.ipv4.ip_forward") == 1
    ruleset = edge.check_output("nft list table inet aovpn_edge")
    assert "chain raw_prerouting" in ruleset and "priority -450" in ruleset
    assert "chain forward_filter" in ruleset and "counter fragments_dropped" in ruleset


def test_the_gateway_is_on_the_internet_side_and_the_client_behind_the_edge(hosts):
    assert "203.0.113.10" in hosts["gw1"].interface("wan0").addresses
    assert "192.0.2.10" in hosts["client"].interface("lan0").addresses
    assert hosts["client"].run("ping -c1 -W1 203.0.113.10").rc == 0
