"""The path between client and gateway: which rules it enforces, decided by what arrives
at the gateway (a capture there), not by what answers. Under each network condition
the scan must name exactly the rule that condition imposes - and, on an open path,
report that everything IKEv2 needs gets through."""
from __future__ import annotations

import pytest

from aovpn_lab import matrix
from aovpn_lab.conditions.model import Condition
from aovpn_lab.expectations import expect
from aovpn_lab.pytest_plugin import target_of
from aovpn_lab.verdict import Verdict

# the failing findings a correct scan reports under each: profiles/expectations.yml, section path
CONDITIONS = matrix.get().path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "path_cell" in metafunc.fixturenames:
        target = target_of(metafunc.config)
        params = [(c, gw.name) for gw in target.gateways for c in CONDITIONS]
        metafunc.parametrize("path_cell", params, ids=[f"via-{c}-to-{g}" for c, g in params])


def test_path_scan_names_the_rules_the_network_enforces(path_cell, target, edge, cell):
    from aovpn_lab.pathscan.scan import scan_path
    condition_text, gateway_name = path_cell
    cell.place(protocol="path", profile="port and fragment scan", condition=condition_text, gateway=gateway_name)
    gateway = next(g for g in target.gateways if g.name == gateway_name)
    if gateway.outside_interface is None:
        pytest.skip(f"{gateway.name}: no capture point on the gateway side (external target): only answers "
                    "could be reported, which cannot decide what the path drops")
    edge.apply(Condition.parse(condition_text))
    report = scan_path(target.client.netns, gateway.address, far_end_netns=gateway.netns,
                       far_end_interface=gateway.outside_interface, timeout=0.5,
                       narrow=target.client.capture_filter)
    needed_failures = {f.code for f in report.findings if f.severity == "fail"}
    expected = expect("path", condition_text, condition=condition_text)
    observed = ", ".join(sorted(needed_failures)) or "all needed paths open"
    evidence = {
        "condition": condition_text,
        "findings": [f"{f.severity}: {f.code}: {f.message}" for f in report.findings],
        "checks": {c.name: {"arrived": c.arrived, "fragments": f"{c.fragments_arrived}/{c.fragments_sent}",
                            "answer": c.answer} for c in report.checks},
        "fragments pass up to (B)": report.fragments_ok_up_to,
        "edge drop counters": edge.counters(),
        "scan seconds": round(report.elapsed_s, 2),
    }
    cell.conclude(Verdict.compare(expected, observed, evidence))
