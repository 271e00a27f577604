"""IKEv2 conformance: for each client profile and network condition, does the client get
a working tunnel to each gateway, and if not, is the cause the one the reason model
predicts? The matrix is data (profiles/matrix.yml); so are profiles and conditions.
"""
from __future__ import annotations

import pytest
import yaml

from aovpn_lab import paths
from aovpn_lab.conditions.model import Condition
from aovpn_lab.expectations import expect_ikev2
from aovpn_lab.ike import probe, profiles
from aovpn_lab.verdict import Verdict

MATRIX = yaml.safe_load((paths.PROFILES / "matrix.yml").read_text())["ikev2"]
CELLS = [(p, c) for c in MATRIX["conditions"] for p in MATRIX["profiles"]]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ikev2_cell" in metafunc.fixturenames:
        from aovpn_lab import inventory
        from aovpn_lab.target import Target
        target = Target.from_inventory(inventory.load(metafunc.config.getoption("--inventory"),
                                                      prefix=metafunc.config.getoption("--lab-prefix")))
        params = [(p, c, gw.name) for gw in target.gateways for p, c in CELLS]
        metafunc.parametrize("ikev2_cell", params, ids=[f"{p}-via-{c}-to-{g}" for p, c, g in params])


def test_ikev2_connection_matches_expectation(ikev2_cell, target, edge, cell):
    profile_name, condition_text, gateway_name = ikev2_cell
    gateway = next(g for g in target.gateways if g.name == gateway_name)
    profile = profiles.get(profile_name)
    condition = Condition.parse(condition_text)
    expected = expect_ikev2(profile, condition, gateway.facts())

    edge.apply(condition)
    ike_target = probe.IkeTarget(
        gateway=gateway.address, remote_id=gateway.identity, ca_pem=gateway.ca_file.read_bytes(),
        cert_pem=gateway.client_cert_file.read_bytes(), key_pem=gateway.client_key_file.read_bytes(),
        local_id=target.client.identity,
        remote_ts=gateway.protected_subnets[0] if gateway.protected_subnets else "0.0.0.0/0")
    result = probe.run_probe(target.client.vici, ike_target, profile, netns=target.client.netns,
                             ping=gateway.ping_target, timeout=10.0)
    observed = "connected" if result.connected else result.cause

    data = result.to_json()
    evidence = {
        "condition": f"{condition} ({condition.description})",
        "elapsed_ms": result.elapsed_ms,
        "IKE_SA_INIT request / response (B)": f"{data['sizes']['IKE_SA_INIT_request']} / "
                                              f"{data['sizes']['IKE_SA_INIT_response']}",
        "IKE_AUTH request / response (B)": f"{data['sizes']['IKE_AUTH_request']} / "
                                           f"{data['sizes']['IKE_AUTH_response']}",
        "predicted IKE_AUTH request / response (B)": f"{expected_sizes(gateway)}",
        "IKE proposal": result.proposal or "-",
        "ESP proposal": result.child_proposal or "-",
        "virtual IP": result.virtual_ip or "-",
        "ping through tunnel": "-" if result.ping_ok is None else ("ok" if result.ping_ok else "failed"),
        "edge drop counters": edge.counters(),
        "messages": [m.to_json() for m in result.messages],
    }
    if result.detail:
        evidence["detail"] = result.detail
    if result.reachability:
        evidence["differential test"] = result.reachability
    verdict = cell.record(Verdict.compare(expected, observed, evidence, detail=result.detail))
    assert verdict.holds, verdict.reason
    if observed == "connected":
        # A tunnel that "connects" must have really negotiated and carried traffic.
        assert result.child_sa and result.proposal and (gateway.ping_target is None or result.ping_ok)


def expected_sizes(gateway) -> str:
    f = gateway.facts()
    return f"{f.ike_auth_request} / {f.ike_auth_response}"
