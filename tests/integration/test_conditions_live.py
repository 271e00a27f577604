"""Network conditions really do what they say, measured from a lab host behind the edge."""
from __future__ import annotations

import subprocess

import pytest

from aovpn_lab.conditions.base import edge_device
from aovpn_lab.conditions.model import Condition

pytestmark = pytest.mark.lab
GATEWAY = "203.0.113.10"


def ping_from_probe(lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", lab.spec.namespace("probe"), "ping", "-n", "-c1", "-W1", *args,
                           GATEWAY], capture_output=True, text=True, timeout=10)


@pytest.fixture(scope="module")
def edge(lab):
    with edge_device(lab.inventory) as device:
        yield device
        device.apply(Condition.parse("open"))


def test_drop_ip_fragments_drops_fragments_and_nothing_else(lab, edge):
    edge.apply(Condition.parse("drop-ip-fragments"))
    assert ping_from_probe(lab, "-s", "3000").returncode != 0        # 3 fragments: dropped
    assert edge.counters()["fragments_dropped"] >= 2
    assert ping_from_probe(lab, "-s", "1000").returncode == 0        # unfragmented: passes
    edge.apply(Condition.parse("open"))
    assert ping_from_probe(lab, "-s", "3000").returncode == 0
    assert edge.counters()["fragments_dropped"] == 0                 # counters restart per condition


def test_mtu_limits_the_path_without_black_holing_it(lab, edge):
    edge.apply(Condition.parse("mtu:1280"))
    too_big = ping_from_probe(lab, "-M", "do", "-s", "1300")
    assert too_big.returncode != 0
    assert "mtu = 1280" in too_big.stdout + too_big.stderr or "Frag needed" in too_big.stdout + too_big.stderr
    assert ping_from_probe(lab, "-M", "do", "-s", "1200").returncode == 0
    assert ping_from_probe(lab, "-s", "1400").returncode == 0        # without DF the edge fragments it


def test_udp_blocks_hit_only_their_port(lab, edge):
    edge.apply(Condition.parse("block-udp-4500"))
    send = ("import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"[s.sendto(b'x', ('{GATEWAY}', p)) for p in (4500, 4500, 500)]")
    subprocess.run(["ip", "netns", "exec", lab.spec.namespace("probe"), "python3", "-c", send], check=True, timeout=10)
    counters = edge.counters()
    assert counters["udp_4500_dropped"] == 2 and counters["udp_500_dropped"] == 0
