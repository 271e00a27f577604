"""`aovpn-lab report merge`: one report over several sites' runs, with a site column."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from aovpn_lab.errors import AovpnError
from aovpn_lab.report import runfile
from aovpn_lab.report.merge import merge, parse_named


def a_run(folder: Path, site: str | None, states: dict[str, str]) -> Path:
    cells = [{"id": f"test_ikev2_connection_matches_expectation[{name}]",
              "nodeid": f"tests/conformance/test_ikev2.py::test_ikev2_connection_matches_expectation[{name}]",
              "state": state, "requirements": ["AOVPN-IKE-CONN-001"],
              "place": {"protocol": "ikev2", "profile": "aovpn-recommended", "condition": name, "gateway": "gw1"},
              "captures": [f"captures/{name}/client.pcap"],
              "verdict": {"state": state, "requirement": "AOVPN-IKE-CONN-001", "reason": f"{name} {state}"}}
             for name, state in states.items()]
    data = {"tool": "aovpn-lab", "schema": 2, "run_id": folder.name, "cells": cells,
            "matrix": {"planned": [c["nodeid"] for c in cells]}, **({"site": site} if site else {})}
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(data))
    (folder / "captures" / "open").mkdir(parents=True)
    (folder / "captures" / "open" / "client.pcap").write_bytes(b"pcap")
    return folder


def test_two_sites_become_one_report_with_a_site_in_every_cell(tmp_path):
    a = a_run(tmp_path / "a" / "r1", "paris", {"open": "pass", "block-udp-4500": "pass"})
    b = a_run(tmp_path / "b" / "r2", "lyon", {"open": "pass", "block-udp-4500": "fail"})
    merged = merge([a, b], tmp_path / "out")
    assert [s.name for s in merged.sites] == ["paris", "lyon"] and merged.exit_status == 1
    results = runfile.load(tmp_path / "out")
    ids = [c.id for c in results.cells]
    assert "paris: test_ikev2_connection_matches_expectation[open]" in ids and len(ids) == 4
    assert {c.data["site"] for c in results.cells} == {"paris", "lyon"}
    assert {c.place["gateway"] for c in results.cells} == {"paris / gw1", "lyon / gw1"}
    # evidence stays reachable: the runs are copied beside the report, captures point there
    lyon_open = next(c for c in results.cells if c.id.startswith("lyon: ") and c.id.endswith("[open]"))
    assert lyon_open.captures == ["sites/lyon/captures/open/client.pcap"]
    assert (tmp_path / "out" / lyon_open.captures[0]).read_bytes() == b"pcap"
    assert results.data["merged"]["sites"][1] == {"site": "lyon", "run_id": "r2", "folder": "sites/lyon",
                                                   "inventory": None, "variant": "-",
                                                   "counts": {"pass": 1, "fail": 1, "inconclusive": 0,
                                                              "not-applicable": 0, "error": 0},
                                                   "exit_status": 1}
    assert len(results.planned) == 4 and results.complete


def test_the_page_shows_each_sites_requirement_status_side_by_side(tmp_path):
    a = a_run(tmp_path / "a" / "r1", "paris", {"open": "pass"})
    b = a_run(tmp_path / "b" / "r2", "lyon", {"open": "inconclusive"})
    merge([a, b], tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h2 id='section-1'>Sites</h2>" in html and "Requirements at each site" in html
    row = html[html.index("<td>AOVPN-IKE-CONN-001</td>", html.index("Requirements at each site")):]
    row = row[:row.index("</tr>")]
    assert row.index("pass") < row.index("inconclusive")   # paris's column, then lyon's
    assert "href='sites/paris/report.html'" in html


def test_a_site_without_a_name_takes_the_one_given_or_its_folder(tmp_path):
    a = a_run(tmp_path / "x" / "berlin", None, {"open": "pass"})
    b = a_run(tmp_path / "y" / "r2", None, {"open": "pass"})
    merged = merge([a, b], tmp_path / "out", parse_named([f"rome={b}"]))
    assert [s.name for s in merged.sites] == ["berlin", "rome"] and merged.exit_status == 0


def test_two_runs_of_one_site_are_refused_naming_both(tmp_path):
    a = a_run(tmp_path / "a" / "r1", "paris", {"open": "pass"})
    b = a_run(tmp_path / "b" / "r2", "paris", {"open": "pass"})
    with pytest.raises(AovpnError, match="are both site 'paris'"):
        merge([a, b], tmp_path / "out")


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AovpnError, match="empty/results.json: no such file"):
        merge([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(AovpnError, match="expected NAME=DIR"):
        parse_named(["rome"])
