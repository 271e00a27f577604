"""report.html: the matrix summary links every cell to its evidence, the requirement list
follows the status rules, and the page is self-contained and reproducible."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from aovpn_lab.report import matrixview, page, runfile
from aovpn_lab.report.html import COLOURS
from aovpn_lab.report.runfile import CellRecord, RunResults

DATA = Path(__file__).resolve().parents[1] / "data" / "report"
CONDITIONS = ("open", "drop-ip-fragments", "block-udp-500", "nat")
GATEWAYS = ("gw1", "gw2")


def cell(test: str, param: str, state: str = "pass", *, place: dict | None = None, requirement: str | None = None,
         **extra) -> dict:
    cid = f"{test}[{param}]"
    rec = {"id": cid, "nodeid": f"tests/conformance/t.py::{cid}", "test": test, "state": state,
           "outcome": "passed" if state == "pass" else "failed", "duration_s": 1.25, "captures": []}
    if place is not None:
        rec["place"] = place
    if requirement:
        rec["requirements"] = [requirement]
        rec["verdict"] = {"requirement": requirement, "expected": "connected",
                          "observed": "connected" if state == "pass" else "timeout", "state": state,
                          "reason": f"{state} because of {param}", "fix": "allow fragments", "evidence": {"k": 1},
                          "holds": state == "pass"}
    rec.update(extra)
    return rec


def ike(profile: str, condition: str, gateway: str, state: str = "pass", **extra) -> dict:
    return cell("test_ikev2_connection_matches_expectation", f"{profile}-via-{condition}-to-{gateway}", state,
                place={"protocol": "ikev2", "profile": profile, "condition": condition, "gateway": gateway},
                requirement="AOVPN-IKE-CONN-001", **extra)


def check(test: str, gateway: str, state: str = "pass", requirement: str = "AOVPN-CERT-001", **extra) -> dict:
    return cell(test, gateway, state, place={"protocol": "ikev2", "profile": "-", "condition": "-",
                                             "gateway": gateway}, requirement=requirement, **extra)


def run(cells: list[dict], **top) -> RunResults:
    data = {"tool": "aovpn-lab", "schema": 2, "run_id": "20261202T101500Z-1a2b3c",
            "started": "2026-12-02T10:15:00Z", "finished": "2026-12-02T10:45:00Z", "inventory": "inventories/lab",
            "environment": {"aovpn_lab": "0.1", "packages": {"strongSwan": "5.9.13"}, "variant": "default"},
            "cells": cells, **top}
    return RunResults.from_data(data, "/nowhere/20261202T101500Z-1a2b3c/results.json")


def full_run() -> RunResults:
    """About the size of a default run: 2 profiles x 4 conditions x 2 gateways of IKEv2, SSTP, checks."""
    cells = [ike(p, c, g) for p in ("aovpn-recommended", "rras-defaults") for c in CONDITIONS for g in GATEWAYS]
    cells += [cell("test_sstp_connection_matches_expectation", f"mschapv2-via-{c}-to-{g}", "pass",
                   place={"protocol": "sstp", "profile": "mschapv2", "condition": c, "gateway": g},
                   requirement="AOVPN-SSTP-CONN-001") for c in CONDITIONS for g in GATEWAYS]
    cells += [check("test_gateway_certificate_meets_the_requirements", g) for g in GATEWAYS]
    cells[1] = ike("aovpn-recommended", "open", "gw2", "fail")
    cells[2] = ike("aovpn-recommended", "drop-ip-fragments", "gw1", "pass", flaky=True,
                   attempts=[{"state": "fail", "reason": "timed out", "duration_s": 30}])
    cells[3]["state"] = cells[3]["verdict"]["state"] = "inconclusive"
    return run(cells)


def anchors_linked(svg: str) -> set[str]:
    return set(re.findall(r'<a xlink:href="#(cell-[0-9a-f]+)"', svg))


def test_every_cell_is_a_link_in_the_summary_and_has_its_details():
    r = full_run()
    text = page.render(r)
    summary = text[text.index("id='summary'"):text.index("id='requirements'")]
    wanted = {c.anchor for c in r.cells}
    assert anchors_linked(summary) == wanted
    assert all(f"<details id='{a}'>" in text for a in wanted)


def test_summary_links_stay_in_the_page():
    summary = page.render(full_run()).split("id='summary'")[1]
    assert "_blank" not in summary


def test_connectivity_grid_has_a_row_per_condition_in_the_order_first_seen():
    conn, checks = matrixview.layout(full_run().cells)
    assert conn.rows == list(CONDITIONS)
    assert conn.cols[0] == "ikev2 / aovpn-recommended / gw1"
    assert "sstp / mschapv2 / gw2" in conn.cols
    assert checks.rows == ["test_gateway_certificate_meets_the_requirements"] and checks.cols == list(GATEWAYS)


def test_checks_row_names_the_profile_only_when_it_adds_to_the_test_name():
    same = cell("test_failover_moves", "a", place={"protocol": "ikev2", "profile": "failover_moves",
                                                   "condition": "-", "gateway": "-"})
    other = cell("test_tls_posture", "gw1", place={"protocol": "sstp", "profile": "TLS posture", "condition": "-",
                                                 "gateway": "gw1"})
    _, checks = matrixview.layout(run([same, other]).cells)
    assert checks.rows == ["test_failover_moves", "test_tls_posture / TLS posture"]


def test_cells_sharing_a_place_split_the_square_and_both_stay_linked():
    a = ike("p", "open", "gw1", "pass")
    b = cell("test_ikev2_other", "x", "fail", place=a["place"])
    r = run([a, b])
    conn, _ = matrixview.layout(r.cells)
    assert [m.state for m in conn.marks[0, 0]] == ["pass", "fail"]
    assert anchors_linked(matrixview.draw(conn)) == {c.anchor for c in r.cells}


def square_colours(svg: str) -> dict[str, set[str]]:
    """anchor -> the fill colours drawn inside its link."""
    out: dict[str, set[str]] = {}
    for anchor, body in re.findall(r'<a xlink:href="#(cell-[0-9a-f]+)">(.*?)</a>', svg, flags=re.S):
        out.setdefault(anchor, set()).update(re.findall(r"fill: (#[0-9a-f]{6})", body))
    return out


def test_squares_are_coloured_by_state_and_flaky_is_never_green():
    r = full_run()
    conn, _ = matrixview.layout(r.cells)
    colours = square_colours(matrixview.draw(conn))
    by_id = {c.id: c for c in r.cells}
    fail = by_id["test_ikev2_connection_matches_expectation[aovpn-recommended-via-open-to-gw2]"]
    flaky = by_id["test_ikev2_connection_matches_expectation[aovpn-recommended-via-drop-ip-fragments-to-gw1]"]
    inconclusive = r.cells[3]
    assert COLOURS["fail"] in colours[fail.anchor]
    assert COLOURS["inconclusive"] in colours[inconclusive.anchor]
    assert COLOURS["pass"] in colours[r.cells[0].anchor]
    assert COLOURS["flaky"] in colours[flaky.anchor] and COLOURS["pass"] not in colours[flaky.anchor]


def test_planned_cells_that_did_not_run_are_drawn_not_tested_with_details():
    r = full_run()
    missing = "tests/conformance/t.py::test_ikev2_connection_matches_expectation[rras-defaults-via-nat-to-gw3]"
    r = run([c.data for c in r.cells], matrix={"planned": [c.nodeid for c in r.cells] + [missing]})
    ghost = CellRecord({"id": "x", "nodeid": missing})
    conn, _ = matrixview.layout(matrixview.every_cell(r))
    assert "ikev2 / rras-defaults / gw3" in conn.cols
    assert COLOURS["not-tested"] in square_colours(matrixview.draw(conn))[ghost.anchor]
    assert f"<details id='{ghost.anchor}'>" in page.render(r)


def test_interrupted_run_shows_how_many_planned_cells_ran():
    r = full_run()
    planned = [c.nodeid for c in r.cells] + ["t.py::test_late[a]", "t.py::test_late[b]"]
    r = run([c.data for c in r.cells], matrix={"planned": planned}, interrupted="SIGTERM")
    n = len(r.cells)
    assert f"incomplete: {n} of {n + 2} planned cells ran (interrupted by SIGTERM)" in page.render(r)


def test_complete_run_has_no_banner():
    assert "incomplete:" not in page.render(full_run())


def test_records_without_a_place_are_placed_by_their_id():
    odd = CellRecord({"id": "test_sstp_connection_matches_expectation[mschapv2-via-nat-to-gw2]"})
    plain = CellRecord({"id": "test_gateway_refuses_weak_ike_proposals[gw1]"})
    assert matrixview.place_of(odd) == {"protocol": "sstp", "profile": "mschapv2", "condition": "nat",
                                        "gateway": "gw2"}
    conn, checks = matrixview.layout([odd, plain])
    assert conn.rows == ["nat"] and checks.rows == ["test_gateway_refuses_weak_ike_proposals"]


@pytest.mark.parametrize("states, status", [
    (["pass", "fail", "inconclusive"], "fail"),
    (["pass", "inconclusive", "error"], "inconclusive"),
    (["pass", "error"], "error"),
    (["pass", "not-applicable"], "pass"),
    (["not-applicable", "not-applicable"], "not-applicable"),
    ([], "not-tested"),
])
def test_requirement_status_is_the_worst_state_of_its_cells(states, status):
    assert runfile.requirement_status(states) == status


def requirement_row(text: str, rid: str) -> str:
    part = text[text.index("id='requirements'"):text.index("id='detail'")]
    return next(row for row in part.split("<tr>") if f">{rid}<" in row)


def test_requirement_list_shows_uncited_requirements_as_not_tested():
    row = requirement_row(page.render(full_run()), "AOVPN-FALLBACK-001")
    assert ">not-tested<" in row and "SHOULD" in row


def test_requirement_that_only_has_not_applicable_cells_lists_the_reasons():
    cells = [check("test_gateway_certificate_meets_the_requirements", g, "not-applicable") for g in GATEWAYS]
    row = requirement_row(page.render(run(cells)), "AOVPN-CERT-001")
    assert ">not-applicable<" in row
    assert "not-applicable because of gw1" in row and "not-applicable because of gw2" in row


def test_requirement_links_to_its_first_cell_of_its_status():
    r = full_run()
    failing = next(c for c in r.cells if c.state == "fail")
    row = requirement_row(page.render(r), "AOVPN-IKE-CONN-001")
    assert ">fail<" in row and f"<a href='#{failing.anchor}'>AOVPN-IKE-CONN-001</a>" in row


def test_requirement_cited_but_not_catalogued_is_listed():
    cells = [check("test_x", "gw1", "pass", requirement="AOVPN-UNKNOWN-999")]
    assert "not in the requirement catalogue" in requirement_row(page.render(run(cells)), "AOVPN-UNKNOWN-999")


def test_sections_come_after_the_requirements_and_before_the_detail():
    text = page.render(full_run(), sections=[("Since the previous run", "<p id='marker'>2 changed</p>")])
    assert text.index("id='requirements'") < text.index(">Since the previous run</h2>") < text.index("id='marker'") \
        < text.index("id='detail'")


def test_detail_holds_flaky_attempts_captures_and_pytests_message():
    cells = [ike("p", "open", "gw1", "pass", flaky=True, captures=["captures/p-open.pcap"],
                 attempts=[{"state": "fail", "reason": "no IKE_AUTH answer", "duration_s": 30.0}]),
             cell("test_ikev2_x", "p-via-nat-to-gw1", "error", message="ConnectionError: charon not reachable")]
    text = page.render(run(cells))
    assert "no IKE_AUTH answer" in text and "<a href='captures/p-open.pcap'>" in text
    assert "ConnectionError: charon not reachable" in text


def test_error_row_gives_the_messages_first_line_and_the_evidence_all_of_it():
    message = "ConnectionError: charon not reachable\nTraceback line 1\nTraceback line 2"
    text = page.render(run([cell("test_ikev2_x", "p-via-nat-to-gw1", "error", message=message)]))
    row, folded = text.split("id='detail'")[1].split("<details", 1)
    assert "charon not reachable" in row and "Traceback line 2" not in row
    assert "Traceback line 2" in folded


def test_header_flattens_the_environment_packages():
    text = page.render(full_run())
    header = text[:text.index("id='summary'")]
    assert "<th>packages / strongSwan</th><td>5.9.13</td>" in header and "<th>variant</th><td>default</td>" in header


def test_header_counts_flaky_and_error_cells_only_when_there_are_some():
    assert "flaky</span>" not in page.render(run([ike("p", "open", "gw1")])).split("id='summary'")[0]
    header = page.render(full_run()).split("id='summary'")[0]
    assert ">1 flaky<" in header and ">1 fail<" in header and " error<" not in header


def test_followed_link_opens_its_details():
    text = page.render(full_run())
    assert "hashchange" in text and "d.open=true" in text


def network_references(text: str) -> list[str]:
    """What a browser would fetch from elsewhere."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//[^"' >]*""", text)
    found += re.findall(r"url\(\s*['\"]?(?:https?:)?//[^)]*", text)
    found += re.findall(r"<script\s+src|<link\b", text)
    return found


def test_page_references_nothing_on_the_network():
    assert network_references(page.render(full_run())) == []
    assert network_references("<img src='https://x/y.png'>") != []
    # Beyond the SVG namespace names, which nothing fetches, the page names no web address at all.
    assert set(re.findall(r"https?://[^\"' <]+", page.render(full_run()))) <= {
        "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def test_same_results_give_the_same_page():
    assert page.render(full_run()) == page.render(full_run())


def test_pytest_html_page_is_linked_when_the_run_folder_has_it(tmp_path):
    runfile.write(tmp_path / "results.json", full_run().data)
    assert page.PYTEST_HTML not in page.write(tmp_path).read_text()
    (tmp_path / page.PYTEST_HTML).write_text("<html></html>")
    assert f"href='{page.PYTEST_HTML}'" in page.write(tmp_path).read_text()


def test_write_replaces_report_html_and_leaves_no_temporary_file(tmp_path):
    runfile.write(tmp_path / "results.json", full_run().data)
    (tmp_path / "report.html").write_text("old")
    out = page.write(tmp_path)
    assert out == tmp_path / "report.html" and out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "results.json"]


def test_write_without_results_names_the_file(tmp_path):
    with pytest.raises(runfile.ResultsFormatError, match="results.json: no such file"):
        page.write(tmp_path)


# Lab runs' results.json, their evidence trimmed (long lists and strings cut) to keep them small.
@pytest.mark.parametrize("sample", sorted(DATA.glob("*.json")), ids=lambda p: p.stem)
def test_lab_run_sample_renders_every_cell_linked(sample, tmp_path):
    shutil.copy(sample, tmp_path / "results.json")
    r = runfile.load(tmp_path)
    text = page.write(tmp_path).read_text()
    anchors = {c.anchor for c in matrixview.every_cell(r)}
    assert anchors_linked(text) == anchors
    assert all(f"<details id='{a}'>" in text for a in anchors)
    assert network_references(text) == []
    header = text[:text.index("id='summary'")]
    assert all(f">{n} {state}<" in header for state, n in r.counts().items() if state != "error")
