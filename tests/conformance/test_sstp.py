"""SSTP conformance: the protocol that keeps users connected when IKEv2 cannot. Under
every network condition it must connect (TLS, MS-CHAPv2, crypto binding, IPCP, a ping
through the tunnel) unless TCP 443 itself is blocked - and then say so."""
from __future__ import annotations

import pytest

from aovpn_lab.conditions.model import OPEN, Condition
from aovpn_lab.corroboration import corroborate
from aovpn_lab.ike.craft_netns import tcp_open
from aovpn_lab.pytest_plugin import target_of
from aovpn_lab.verdict import Expectation, Verdict

CONDITIONS = ["open", "nat", "drop-ip-fragments", "mtu:1280", "mtu:1200", "block-udp-500", "block-udp-4500",
              "block-tcp-443"]


def expectation(condition: str) -> Expectation:
    if condition == "block-tcp-443":
        return Expectation("tcp-443-blocked", "AOVPN-SSTP-CONN-001",
                           "the network drops TCP 443, so neither SSTP nor any other TLS VPN can connect",
                           fix="allow TCP 443 outbound (the one port SSTP needs)")
    return Expectation("connected", "AOVPN-SSTP-CONN-001",
                       f"SSTP needs only TCP 443, which '{condition}' leaves alone; TCP segments are sized "
                       "by MSS, so neither fragment filters nor a smaller MTU touch it")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sstp_cell" in metafunc.fixturenames:
        target = target_of(metafunc.config)
        params = [(c, gw.name) for gw in target.sstp_gateways for c in CONDITIONS]
        metafunc.parametrize("sstp_cell", params, ids=[f"mschapv2-via-{c}-to-{g}" for c, g in params])


def test_sstp_connection_matches_expectation(sstp_cell, target, edge, cell):
    from aovpn_lab.sstp.probe import probe_sstp
    condition, gateway_name = sstp_cell
    gw = next(g for g in target.sstp_gateways if g.name == gateway_name)
    expected = expectation(condition)
    if expected.outcome == "tcp-443-blocked":
        # A path that drops TCP 443 looks exactly like a server that is down: first show that
        # this server accepts TCP on an open path, or the cell cannot say anything.
        edge.apply(OPEN)
        if not tcp_open(target.client.netns, gw.address, gw.port, timeout=2.0):
            cell.conclude(Verdict.inconclusive(expected, "server not answering", (
                f"{gw.name} ({gw.address}:{gw.port}) does not accept TCP even on an open path: a blocked path "
                "cannot be told from a server that is down"), {"condition": condition, "control": "open path, "
                                                                 "TCP connect failed"}))
    edge.apply(Condition.parse(condition))
    result = probe_sstp(gw.address, gw.port, user=gw.user, password=gw.password,
                        ca_file=str(gw.ca_file) if gw.ca_file else None, sni=gw.identity, ping=gw.ping_target,
                        timeout=8.0, netns=target.client.netns)
    data = result.to_json()
    observed = "connected" if result.connected else result.cause
    evidence = {
        "condition": condition,
        "elapsed_ms": data.get("elapsed_ms"),
        "TLS": f"{data.get('tls_version')} {data.get('tls_cipher')}",
        "server certificate SHA-256": data.get("cert_sha256"),
        "authentication": data.get("auth"),
        "IPCP address": data.get("ip"),
        "ping through tunnel": data.get("ping_ok"),
        "phases (ms)": data.get("phases"),
        "edge drop counters": edge.counters(),
    }
    if not result.connected:
        evidence["detail"] = data.get("detail")
    cell.conclude(corroborate(Verdict.compare(expected, observed, evidence, detail=data.get("detail") or ""),
                              Condition.parse(condition), evidence["edge drop counters"]))
    if observed == "connected":
        assert result.ping_ok and result.ip
