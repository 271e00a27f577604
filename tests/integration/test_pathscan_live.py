"""Live path scans through a router namespace with nftables scenarios.

Lab of this module only: ``hxp-c`` (client, 192.0.2.220/28) -- ``hxp-r`` (router,
ip_forward=1, 192.0.2.221 / 203.0.113.221) -- ``hxp-s`` (gateway stand-in,
203.0.113.220/28, no IKE daemon). The far-end capture runs on ``hxp-s0`` in
``hxp-s``. One nftables ruleset at a time on the router; each scan is asserted to
report exactly what that ruleset blocks. Nothing is sent outside these namespaces.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from aovpn_lab.pathscan import scan_path

pytestmark = pytest.mark.lab

NS_C, NS_R, NS_S = "hxp-c", "hxp-r", "hxp-s"
C_IF, RC_IF, RS_IF, S_IF = "hxp-c0", "hxp-rc", "hxp-rs", "hxp-s0"
C_ADDR, RC_ADDR = "192.0.2.220", "192.0.2.221"
S_ADDR, RS_ADDR = "203.0.113.220", "203.0.113.221"
TIMEOUT = 0.4
SIZES = (1400, 1600, 3000, 6000)
FRAG_CHECKS = tuple(f"frag4500:{n}" for n in SIZES)
SEVERE = ("fail", "warn")

ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
"""


def sh(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=15, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {res.returncode} {res.stderr.strip()}")
    return res


def _exists(ns: str) -> bool:
    return os.path.exists(f"/run/netns/{ns}")


def _teardown(pids: list[int]) -> list[str]:
    problems = []
    for pid in pids:  # only processes this module started
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for ns, dev in ((NS_C, C_IF), (NS_R, RS_IF)):  # veths first: netns del is asynchronous
        if _exists(ns):
            sh("ip", "-n", ns, "link", "del", dev, check=False)
    for ns in (NS_C, NS_R, NS_S):
        if not _exists(ns):
            continue
        left = sh("ip", "netns", "pids", ns, check=False).stdout.split()
        if left:
            problems.append(f"{ns} still has processes {left}: not deleted")
            continue
        r = sh("ip", "netns", "del", ns, check=False)
        if r.returncode:
            problems.append(f"ip netns del {ns}: {r.stderr.strip()}")
    return problems


def _setup() -> None:
    for ns in (NS_C, NS_R, NS_S):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", NS_C, "link", "add", C_IF, "type", "veth", "peer", "name", RC_IF, "netns", NS_R)
    sh("ip", "-n", NS_R, "link", "add", RS_IF, "type", "veth", "peer", "name", S_IF, "netns", NS_S)
    for ns, dev, addr in ((NS_C, C_IF, C_ADDR), (NS_R, RC_IF, RC_ADDR), (NS_R, RS_IF, RS_ADDR),
                          (NS_S, S_IF, S_ADDR)):
        sh("ip", "-n", ns, "addr", "add", f"{addr}/28", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")
    sh("ip", "-n", NS_C, "route", "add", "default", "via", RC_ADDR)
    sh("ip", "-n", NS_S, "route", "add", "default", "via", RS_ADDR)
    sh("ip", "netns", "exec", NS_R, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    # deterministic ICMP answers from the gateway stand-in (default: 1/s per peer, burst 6)
    sh("ip", "netns", "exec", NS_S, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, raw sockets)")
    for tool in ("nft", "tcpdump"):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            pytest.skip(f"{tool} is not installed")
    pids: list[int] = []
    assert not _teardown(pids), "leftover hxp-* namespaces could not be removed"
    try:
        _setup()
        echo = subprocess.Popen(["ip", "netns", "exec", NS_S, sys.executable, "-c", ECHO, S_ADDR, "500"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        pids.append(echo.pid)
        assert echo.stdout.readline().strip() == "ready"
        yield {"echo_pid": echo.pid}
    finally:
        problems = _teardown(pids)
        assert not problems, problems
        assert not any(_exists(ns) for ns in (NS_C, NS_R, NS_S))


def router_rules(*forward: str, prerouting: str | None = None) -> None:
    """Replace the router's ruleset (only in hxp-r)."""
    text = "flush ruleset\ntable ip hxp {\n"
    if prerouting:
        text += f"  chain pre {{ type filter hook prerouting priority -450; {prerouting}; }}\n"
    text += "  chain fw { type filter hook forward priority 0; policy accept; "
    text += "".join(f"{r}; " for r in forward) + "}\n}\n"
    sh("ip", "netns", "exec", NS_R, "nft", "-f", "-", input=text)


def scan(**kw):
    kw.setdefault("far_end_netns", NS_S)
    kw.setdefault("far_end_interface", S_IF)
    return scan_path(NS_C, S_ADDR, timeout=TIMEOUT, **kw)


def arrived(report) -> dict[str, bool]:
    return {c.name: c.arrived for c in report.checks}


def test_open_path_everything_arrives(lab):
    router_rules()
    r = scan()
    assert r.source == C_ADDR and r.mtu == 1500
    assert all(arrived(r).values()), r.render_text()
    for c in r.checks:
        assert c.sent and c.fragments_arrived == c.fragments_sent, c
    assert [r.check(n).fragments_sent for n in FRAG_CHECKS] == [1, 2, 3, 5]
    # only UDP 1701 reaching an IKEv2 gateway is worth a warning
    assert r.codes_at(*SEVERE) == {"udp-1701-exposed"}, r.render_text()
    assert "tcp-443-open" in r.codes
    assert r.fragments_ok_up_to == 6000 and r.blocked == [] and r.exit_code == 0
    json.dumps(r.to_json())


def test_answers_are_recorded_alongside_arrival(lab):
    router_rules()
    r = scan(checks=("udp500", "udp4500", "tcp443", "esp"))
    # the echo responder (by PID in hxp-s) answers UDP 500 with our own datagram
    assert r.check("udp500").answered and r.check("udp500").answer == "udp-reply"
    assert r.check("udp500").answered_by == S_ADDR
    # nothing listens on 4500 / 443: the kernel answers (ICMP, RST); ESP stays unanswered
    assert r.check("udp4500").answer == "icmp-port-unreachable"
    assert r.check("udp4500").answered_by == S_ADDR
    assert r.check("tcp443").answer == "tcp-rst"
    assert r.check("esp").answered is None and r.check("esp").arrived
    assert all(c.arrived for c in r.checks)


def test_fragments_dropped_before_defrag(lab):
    router_rules("udp dport 1701 drop", prerouting="ip frag-off & 0x3fff != 0 drop")
    r = scan()
    a = arrived(r)
    assert a["udp500"] and a["udp4500"] and a["esp"] and a["frag4500:1400"]
    assert not any(a[n] for n in FRAG_CHECKS[1:]), r.render_text()
    assert all(r.check(n).fragments_arrived == 0 for n in FRAG_CHECKS[1:])
    assert r.codes_at(*SEVERE) == {"ip-fragments-dropped"}, r.render_text()
    assert r.fragments_ok_up_to == 1400 and r.exit_code == 1
    assert sorted(r.blocked) == sorted(FRAG_CHECKS[1:])


def test_udp_4500_dropped(lab):
    router_rules("udp dport 4500 drop", "udp dport 1701 drop")
    r = scan()
    a = arrived(r)
    assert a["udp500"] and a["esp"] and a["tcp443"] and not a["udp4500"] and not a["udp1701"]
    assert not any(a[n] for n in FRAG_CHECKS)
    assert r.codes_at(*SEVERE) == {"udp-4500-blocked"}, r.render_text()
    assert "fragments-untested" in r.codes
    # without defrag on the router only the first fragment (with the port) is dropped
    assert all(r.check(n).fragments_arrived == r.check(n).fragments_sent - 1 for n in FRAG_CHECKS)


def test_native_esp_dropped(lab):
    router_rules("ip protocol esp drop", "udp dport 1701 drop")
    r = scan()
    a = arrived(r)
    assert not a["esp"] and all(v for k, v in a.items() if k not in ("esp", "udp1701"))
    assert r.codes_at(*SEVERE) == {"esp-blocked"}
    assert r.exit_code == 0  # matters only without NAT: a warning, not a failure


def test_udp_1701_blocked_is_clean(lab):
    router_rules("udp dport 1701 drop")
    r = scan()
    assert arrived(r)["udp1701"] is False
    assert r.codes_at(*SEVERE) == set(), r.render_text()
    assert r.exit_code == 0


def test_answers_only_mode_cannot_decide_arrival(lab):
    router_rules("udp dport 1701 drop", prerouting="ip frag-off & 0x3fff != 0 drop")
    r = scan_path(NS_C, S_ADDR, timeout=TIMEOUT, checks=("udp500",) + FRAG_CHECKS)
    assert r.mode == "answers-only" and all(c.arrived is None for c in r.checks)
    assert r.check("udp500").answered and r.check("frag4500:1400").answered
    assert {c.name for c in r.checks if not c.answered} == set(FRAG_CHECKS[1:])
    assert r.codes_at("unknown") == {f"frag4500-{n}-unanswered" for n in SIZES[1:]}
    assert r.codes_at("fail") == set() and r.exit_code == 3


def test_cli_json(lab):
    router_rules("udp dport 4500 drop")
    res = subprocess.run(
        [sys.executable, "-m", "aovpn_lab.pathscan.command", "--gateway", S_ADDR,
         "--client-netns", NS_C, "--far-netns", NS_S, "--far-interface", S_IF, "--timeout", "0.3",
         "--checks", "udp500,udp4500", "--json"], capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 1, res.stderr
    out = json.loads(res.stdout)
    assert out["blocked"] == ["udp4500"]
    assert [f["code"] for f in out["findings"] if f["severity"] == "fail"] == ["udp-4500-blocked"]


def test_rejecting_hop_is_named(lab):
    router_rules("udp dport 4500 reject with icmp type admin-prohibited")
    r = scan(checks=("udp500", "udp4500"))
    c = r.check("udp4500")
    assert c.arrived is False and c.answered
    assert (c.answer, c.answered_by) == ("icmp-administratively-prohibited", RC_ADDR)
    assert r.codes_at("fail") == {"udp-4500-blocked"} and "rejected-by-hop" in r.codes
