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


def test_every_default_cell_holds_against_the_default_lab(run, lab):
    r, latest = run
    assert r.returncode == 0, r.stdout[-3000:]
    results = json.loads((latest / "results.json").read_text())
    assert results["summary"]["failed"] == 0 and results["summary"]["passed"] >= 15
    assert results["finished"] and results["exit_status"] == 0
    assert {c["state"] for c in results["cells"]} == {"pass", "not-applicable"}
    assert results["verdicts"]["pass"] >= 15 and results["verdicts"]["inconclusive"] == 0
    assert results["verdicts"]["error"] == 0 and results["verdicts"]["fail"] == 0
    # block-esp cannot change anything on this lab's data path: not applicable, with the reason
    na = [c for c in results["cells"] if c["state"] == "not-applicable"]
    assert na and all(c["verdict"]["reason"] for c in na if "verdict" in c)
    assert all("-via-block-esp-" in c["id"] for c in na if c["id"].startswith("test_ikev2"))
    assert f"{len(results['cells'])} cells: {results['verdicts']['pass']} pass, 0 fail, 0 inconclusive" in r.stderr
    outcomes = {c["verdict"]["observed"] for c in results["cells"] if "verdict" in c}
    # the gateway runs with strongSwan's default DoS thresholds, and no cell read its protection as silence
    conf = (lab.spec.state_dir / "hosts" / "gw1" / "strongswan" / "strongswan.conf").read_text()
    assert "block_threshold = 5" in conf and "cookie_threshold = 10" in conf
    assert "no-response" not in outcomes
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
    report = (latest / "report.html").read_text()
    for needle in ("id='summary'", "<svg", "id='requirements'", "AOVPN-IKE-CRYPTO-001", "13868", "udp-500-blocked",
                   "not-applicable", "IPsec data path (strongSwan kernel-libipsec) always encapsulates ESP"):
        assert needle in report
    html = (latest / "pytest-html.html").read_text()  # pytest-html's own page, with the same verdict columns
    assert "aovpn-lab conformance report" in html
    for needle in ("Verdict", "Expected", "Observed", "Reason", "AOVPN-IKE-CRYPTO-001", "udp-500-blocked"):
        assert needle in html
    suite = ET.parse(latest / "junit.xml").getroot().find("testsuite")
    assert int(suite.get("failures")) == 0 and int(suite.get("tests")) >= 15
    props = {p.get("name") for p in suite.iter("property")}
    assert {"verdict", "requirement", "expected", "observed", "reason"} <= props


def test_a_stopped_sstp_server_behind_a_443_block_is_inconclusive_never_a_pass(lab, tmp_path):
    """The client of a blocked path and of a server that is down sees the same silence."""
    import subprocess
    import sys
    from aovpn_lab import paths
    state = lab.spec.state_dir / "hosts" / "gw1" / "softether"
    down = subprocess.run([sys.executable, "-m", "aovpn_lab.sstp.softether", "down", "--state", str(state)],
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    try:
        # pytest straight on the suite: `aovpn-lab run` itself refuses a lab that is partly up
        r = subprocess.run([sys.executable, "-m", "pytest", str(paths.ROOT / "tests" / "conformance" / "test_sstp.py"),
                            "-p", "aovpn_lab.pytest_plugin", "--run-dir", str(tmp_path), "-q", "-p", "no:cacheprovider",
                            "-k", "mschapv2-via-block-tcp-443-to-gw1"], capture_output=True, text=True, timeout=300,
                           cwd=paths.ROOT)
        (c,) = json.loads((tmp_path / "results.json").read_text())["cells"]
        assert c["state"] == "inconclusive", c
        assert "does not accept TCP even on an open path" in c["verdict"]["reason"]
        assert r.returncode == 1, r.stdout[-2000:]
    finally:
        up = aovpn("lab", "up", "--quiet")
        assert up.returncode == 0, up.stderr[-2000:]


def test_the_full_default_run_is_certified_with_a_pdf_and_digests_that_verify(run, tmp_path):
    import shutil
    _, latest = run
    folder = tmp_path / "certified"
    shutil.copytree(latest.resolve(), folder)
    r = aovpn("certify", "--run", str(folder), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("certified"), r.stdout
    assert (folder / "certification.pdf").read_bytes()[:5] == b"%PDF-"
    page = (folder / "certification.html").read_text()
    manifest = (folder / "manifest.sha256").read_text()
    assert manifest.splitlines()[0].split("  ")[0] in page  # the digests are printed in the report
    assert aovpn("certify", "--verify", str(folder)).returncode == 0
    capture = next(folder.glob("captures/*/*.pcap"))
    capture.write_bytes(capture.read_bytes() + b"\0")  # evidence changed after certification
    tampered = aovpn("certify", "--verify", str(folder))
    assert tampered.returncode == 1 and capture.name in tampered.stdout + tampered.stderr
