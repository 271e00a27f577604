"""TLS endpoints: the SSTP gateway's TLS posture (what a strict client or auditor sees),
and another TLS-based VPN (ocserv + openconnect) through the same hostile networks."""
from __future__ import annotations

import pytest

from aovpn_lab import matrix
from aovpn_lab.conditions.model import Condition
from aovpn_lab.expectations import expect
from aovpn_lab.pytest_plugin import target_of
from aovpn_lab.verdict import Verdict

TLSVPN_CONDITIONS = matrix.get().tlsvpn   # expectations: profiles/expectations.yml, sections tls_posture, tlsvpn


def _target(metafunc):
    return target_of(metafunc.config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sstp_endpoint" in metafunc.fixturenames:
        names = [g.name for g in _target(metafunc).sstp_gateways]
        metafunc.parametrize("sstp_endpoint", names, ids=[f"of-sstp-on-{n}" for n in names])
    if "tlsvpn_cell" in metafunc.fixturenames:
        params = [(c, g.name) for g in _target(metafunc).tlsvpn_gateways for c in TLSVPN_CONDITIONS]
        metafunc.parametrize("tlsvpn_cell", params, ids=[f"openconnect-via-{c}-to-{g}" for c, g in params])


def test_tls_posture(sstp_endpoint, target, edge, cell):
    from aovpn_lab.conditions.model import OPEN
    from aovpn_lab.tls.posture import UNOBSERVED, scan_tls
    gw = next(g for g in target.sstp_gateways if g.name == sstp_endpoint)
    cell.place(protocol="sstp", profile="TLS posture", gateway=sstp_endpoint)
    edge.apply(OPEN)
    posture = scan_tls(gw.address, gw.port, server_name=gw.identity, ca_file=str(gw.ca_file) if gw.ca_file else None,
                       netns=target.client.netns, health=True)
    fails = sorted(posture.codes("fail"))
    observed = ("fails " + ", ".join(fails)) if fails else "no failed finding"
    expected = expect("tls_posture")
    data = posture.to_json()
    evidence = {"findings": [f"{f.severity}: {f.code}: {f.message}" for f in posture.findings],
                "health check": data.get("health"), "posture": data}
    unobserved = [f for f in posture.findings if f.code in UNOBSERVED]
    if unobserved and not fails:
        cell.conclude(Verdict.inconclusive(expected, "not fully observed", "; ".join(
            f"{f.code}: {f.message}" for f in unobserved), evidence))
    cell.conclude(Verdict.compare(expected, observed, evidence))


def test_tlsvpn_connection_matches_expectation(tlsvpn_cell, target, edge, cell):
    from aovpn_lab.tlsvpn.probe import probe_openconnect
    condition, gateway_name = tlsvpn_cell
    cell.place(protocol="tls-vpn", profile="openconnect", condition=condition, gateway=gateway_name)
    gw = next(g for g in target.tlsvpn_gateways if g.name == gateway_name)
    edge.apply(Condition.parse(condition))
    result = probe_openconnect(gw.address, gw.port, user=gw.user, password=gw.password,
                               ca_file=str(gw.ca_file) if gw.ca_file else None, servername=gw.identity,
                               ping=gw.ping_target, timeout=10.0, netns=target.client.netns)
    data = result.to_json()
    observed = "connected" if result.connected else result.cause
    expected = expect("tlsvpn", condition, condition=condition)
    evidence = {k: data.get(k) for k in ("elapsed_ms", "ip", "ping_ok", "cause", "detail") if k in data}
    evidence["edge drop counters"] = edge.counters()
    cell.conclude(Verdict.compare(expected, observed, evidence, detail=data.get("detail") or ""))
