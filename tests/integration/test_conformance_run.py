"""`aovpn-lab run` against the lab: every default cell holds, and the report carries
verdicts and evidence (test_gateway_variants shows the same suite failing broken gateways)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from labcli import aovpn

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def run(lab, tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports")
    r = aovpn("run", "--reports", str(reports), timeout=900)
    return r, reports / "latest"


def test_every_default_cell_holds_against_the_default_lab(run):
    r, latest = run
    assert r.returncode == 0, r.stdout[-3000:]
    results = json.loads((latest / "results.json").read_text())
    assert results["summary"]["failed"] == 0 and results["summary"]["passed"] >= 15
    assert results["finished"] and results["exit_status"] == 0
    assert all(c["verdict"]["holds"] for c in results["cells"])
    outcomes = {c["verdict"]["observed"] for c in results["cells"]}
    assert {"connected", "no-proposal-chosen", "udp-500-blocked", "udp-4500-blocked"} <= outcomes


def test_the_first_cell_carries_its_evidence(run):
    _, latest = run
    cells = json.loads((latest / "results.json").read_text())["cells"]
    first = next(c for c in cells if c["id"].endswith("[aovpn-recommended-via-open-to-gw1]"))
    ev = first["verdict"]["evidence"]
    assert first["verdict"]["requirement"] == "AOVPN-IKE-CONN-001"
    assert ev["ping through tunnel"] == "ok" and ev["elapsed_ms"] < 1000
    init_req, init_resp = (int(x) for x in ev["IKE_SA_INIT request / response (B)"].split(" / "))
    auth_req, auth_resp = (int(x) for x in ev["IKE_AUTH request / response (B)"].split(" / "))
    assert 300 < init_req < 700 and 300 < init_resp < 700 and 500 < auth_req < 1500 and 500 < auth_resp < 1500
    assert "MODP_2048" in ev["IKE proposal"]


def test_the_html_report_and_junit_carry_the_verdicts(run):
    _, latest = run
    html = (latest / "report.html").read_text()
    assert "aovpn-lab conformance report" in html
    for needle in ("Expected", "Observed", "Reason", "AOVPN-IKE-CRYPTO-001", "13868", "udp-500-blocked"):
        assert needle in html
    suite = ET.parse(latest / "junit.xml").getroot().find("testsuite")
    assert int(suite.get("failures")) == 0 and int(suite.get("tests")) >= 15
    props = {p.get("name") for p in suite.iter("property")}
    assert {"requirement", "expected", "observed", "reason"} <= props
