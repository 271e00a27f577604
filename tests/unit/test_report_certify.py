"""The certification report: every requirement with its level and status, certified only when every MUST
holds on a complete run, the target as the inventory declares it, and a manifest that checks the folder."""
from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from aovpn_lab import inventory, paths
from aovpn_lab.errors import InventoryError
from aovpn_lab.report import browser, certify, certify_command, manifest, runfile
from aovpn_lab.report.declaration import NOT_DECLARED, declaration
from aovpn_lab.requirements import Requirement, catalogue

needs_chromium = pytest.mark.skipif(not browser.CHROMIUM.exists(), reason=f"no Chromium at {browser.CHROMIUM}")
GATEWAY = {"protocol": "ikev2", "profile": "aovpn-recommended", "condition": "open", "gateway": "gw1"}
NA_REASON = "no load balancer in front of this gateway: affinity is checked where one is"


def cell(rid: str, state: str, n: int = 0, reason: str = "", fix: str = "") -> dict:
    cid = f"test_{rid.lower().replace('-', '_')}[{state}-{n}]"
    return {"id": cid, "nodeid": f"tests/conformance/test_x.py::{cid}", "state": state, "requirements": [rid],
            "place": GATEWAY, "captures": [f"captures/{rid}-{n}.pcap"],
            "verdict": {"requirement": rid, "expected": "connected", "observed": state, "state": state,
                        "reason": reason or f"{rid} {state}", "fix": fix}}


def results(cells: list[dict], **top) -> dict:
    data = {"tool": "aovpn-lab", "schema": 2, "run_id": "20261202T101500Z-1a2b3c",
            "started": "2026-12-02T10:15:00Z", "finished": "2026-12-02T10:45:00Z", "interrupted": None,
            "selection": None, "environment": {"aovpn_lab": "0.1.0", "commit": "c325a1b", "variant": "default",
                                               "packages": {"strongSwan": "6.0.1-6", "SoftEther": "4.44"}},
            "matrix": {"planned": [c["nodeid"] for c in cells]}, "cells": cells}
    data.update(top)
    return data


def every_must_passes(**overrides: str) -> list[dict]:
    """A cell per requirement: MUSTs pass, SHOULDs pass; overrides give a requirement another state."""
    cells = []
    for rid in catalogue():
        state = overrides.get(rid, "pass")
        if state != "not-tested":
            cells.append(cell(rid, state, reason=NA_REASON if state == "not-applicable" else "",
                              fix="enable it" if state == "fail" else ""))
    return cells


def run_folder(tmp_path: Path, data: dict) -> Path:
    run_dir = tmp_path / "reports" / data["run_id"]
    runfile.write(run_dir / "results.json", data)
    for c in data["cells"]:
        for cap in c["captures"]:
            (run_dir / cap).parent.mkdir(parents=True, exist_ok=True)
            (run_dir / cap).write_bytes(cap.encode())
    return run_dir


INVENTORY = """\
all:
  vars:
    certification:
{block}
  hosts:
    vpn:
      ansible_host: 203.0.113.10
"""


def inventory_file(tmp_path: Path, block: str, files: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "vendor"
    folder.mkdir(exist_ok=True)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    path = folder / "inventory.yml"
    path.write_text(INVENTORY.format(block="\n".join("      " + line for line in block.splitlines())))
    return path


VENDOR = """vendor: Example Networks
model: EX-4000
software_version: "12.10"
configuration: [running.txt, policy.txt]"""
FILES = {"running.txt": "crypto ikev2 proposal aes256\n", "policy.txt": "fragmentation on\n"}


@pytest.fixture
def vendor(tmp_path: Path):
    return inventory.load(inventory_file(tmp_path, VENDOR, FILES))


def assess(data: dict) -> certify.Assessment:
    return certify.assess(runfile.RunResults.from_data(data, "results.json"))


# -- statuses and the verdict ----------------------------------------------------------------------------------

def test_every_must_passing_on_a_complete_run_is_certified():
    a = assess(results(every_must_passes()))
    assert a.certified and not a.blockers
    assert a.verdict.startswith("certified: meets all MUST requirements")


def test_a_failed_must_is_not_certified_and_names_the_requirement():
    a = assess(results(every_must_passes(**{"AOVPN-IKE-FRAG-001": "fail"})))
    assert not a.certified
    assert a.verdict == "not certified: 1 MUST requirement(s) not met: AOVPN-IKE-FRAG-001 (fail)"


def test_an_inconclusive_or_untested_must_is_not_certified():
    a = assess(results(every_must_passes(**{"AOVPN-CERT-001": "inconclusive", "AOVPN-SSTP-CONN-001": "not-tested"})))
    assert not a.certified
    assert "AOVPN-SSTP-CONN-001 (not-tested)" in a.verdict and "AOVPN-CERT-001 (inconclusive)" in a.verdict


def test_a_cell_that_ended_without_a_verdict_keeps_its_requirement_from_being_certified():
    status = certify.status_of([runfile.CellRecord({"id": "a", "state": "pass"}),
                                runfile.CellRecord({"id": "b", "state": "error"})])
    assert status == "error" and status in certify.BLOCKING


def test_a_requirement_with_one_pass_among_not_applicable_cells_passes():
    cells = [runfile.CellRecord(cell("R", "pass")), runfile.CellRecord(cell("R", "not-applicable", 1))]
    assert certify.status_of(cells) == "pass"


def test_a_not_applicable_must_does_not_block_and_keeps_its_reason():
    a = assess(results(every_must_passes(**{"AOVPN-LB-AFFINITY-001": "not-applicable"})))
    assert a.certified and "1 not applicable" in a.verdict
    row = next(s for s in a.rows if s.requirement.id == "AOVPN-LB-AFFINITY-001")
    assert row.status == "not-applicable" and row.reasons == [(NA_REASON, 1)]


def test_a_failed_should_is_a_recommendation_not_a_refusal():
    a = assess(results(every_must_passes(**{"AOVPN-FALLBACK-001": "fail"})))
    assert a.certified
    assert [s.requirement.id for s in a.recommendations] == ["AOVPN-FALLBACK-001"]


def test_an_interrupted_run_is_never_certified_and_says_why():
    a = assess(results(every_must_passes(), interrupted="SIGINT"))
    assert not a.certified and "the run was interrupted (SIGINT)" in a.blockers


def test_a_run_whose_planned_cells_did_not_all_end_is_never_certified():
    data = results(every_must_passes())
    data["matrix"]["planned"] += ["tests/conformance/test_x.py::test_never_ran[a]"]
    a = assess(data)
    assert not a.certified
    assert a.blockers == (f"the run is incomplete: 1 of {len(data['cells']) + 1} planned cells did not end",)


def test_a_run_without_a_finish_time_is_never_certified():
    assert not assess(results(every_must_passes(), finished=None)).certified


def test_a_selected_part_of_the_matrix_is_never_certified():
    a = assess(results(every_must_passes(), selection="ikev2"))
    assert not a.certified and "needs the full matrix" in a.verdict


def test_an_inventory_changed_since_the_run_is_never_certified():
    data = results(every_must_passes())
    data["environment"]["inventory_sha256"] = "a" * 64
    a = certify.assess(runfile.RunResults.from_data(data, "results.json"), inventory_sha256="b" * 64)
    assert not a.certified and a.blockers[0].startswith("the inventory is not the one the run used")
    assert certify.assess(runfile.RunResults.from_data(data, "results.json"), inventory_sha256="a" * 64).certified


# -- the target, as the inventory declares it -------------------------------------------------------------------

def test_the_declared_target_and_its_configuration_digest_match_sha256sum(vendor, tmp_path: Path):
    d = declaration(vendor)
    assert (d.vendor.text, d.model.text, d.software_version.text) == ("Example Networks", "EX-4000", "12.10")
    assert d.software_version.how == "declared" and d.origin == "vendor/inventory.yml"
    if shutil.which("sha256sum"):
        listing = subprocess.run(["sha256sum", "running.txt", "policy.txt"], cwd=tmp_path / "vendor",
                                 capture_output=True, check=True).stdout
        assert d.configuration_digest.text == hashlib.sha256(listing).hexdigest()


def test_values_left_out_are_not_declared_never_guessed(tmp_path: Path):
    d = declaration(inventory.load(inventory_file(tmp_path, "vendor: Example Networks")))
    assert d.model.text == d.software_version.text == d.configuration_digest.text == NOT_DECLARED
    assert not d.model.known and not d.configuration_digest.known


def test_a_measured_software_version_comes_from_the_run_and_is_labelled_measured(tmp_path: Path):
    d = declaration(inventory.load(inventory_file(tmp_path, "software_version: {measured: [strongSwan, ocserv]}")))
    v = d.software({"packages": {"strongSwan": "6.0.1-6", "ocserv": "not installed"}})
    assert (v.text, v.how) == ("strongSwan 6.0.1-6, ocserv not recorded", "measured")
    assert not d.software({"packages": {}}).known


def test_the_embedded_lab_declares_its_target_and_measures_its_version():
    d = declaration(inventory.load(paths.INVENTORIES / "lab"))
    assert d.vendor.known and d.model.known and d.configuration_digest.known
    assert d.software({"packages": {"strongSwan": "6.0.1-6"}}).text.startswith("strongSwan 6.0.1-6")


@pytest.mark.parametrize("block, says", [
    ("software_version: 12.10", "certification.software_version: expected a string, got float 12.1"),
    ("configuration: [absent.txt]", "certification.configuration: absent.txt is not a file"),
    ("vendro: Example", "certification: unknown key(s) vendro"),
    ("software_version: {measured: strongSwan}", "certification.software_version: expected a string"),
], ids=["an unquoted version number", "a missing configuration file", "a misspelt key", "a measured non-list"])
def test_a_wrong_certification_block_is_one_line_naming_the_file_and_key(tmp_path: Path, block: str, says: str):
    with pytest.raises(InventoryError) as exc:
        declaration(inventory.load(inventory_file(tmp_path, block)))
    assert str(exc.value).startswith("vendor/inventory.yml: " + says)
    assert "\n" not in str(exc.value)


# -- the page --------------------------------------------------------------------------------------------------

def page(tmp_path: Path, vendor, data: dict) -> tuple[str, Path]:
    run_dir = run_folder(tmp_path, data)
    manifest.write(run_dir)
    r = runfile.load(run_dir)
    return certify.render(r, declaration(vendor), certify.assess(r), manifest.read(run_dir),
                          manifest.digest(run_dir)), run_dir


def test_the_page_lists_every_requirement_with_level_and_status(tmp_path: Path, vendor):
    text, _ = page(tmp_path, vendor, results(every_must_passes(**{"AOVPN-LB-SSTP-001": "not-tested"})))
    for rid, req in catalogue().items():
        row = text.split(f"<b>{rid}</b>", 1)[1].split("</tr>", 1)[0]
        assert f"<td>{req.level}</td>" in row
        assert (">not-tested<" if rid == "AOVPN-LB-SSTP-001" else ">pass<") in row


def test_the_page_says_not_certified_with_the_failed_must(tmp_path: Path, vendor):
    text, _ = page(tmp_path, vendor, results(every_must_passes(**{"AOVPN-IKE-CONN-001": "fail"})))
    summary = text.split("<section id='summary'>", 1)[1].split("</section>", 1)[0]
    assert "not certified" in summary and "AOVPN-IKE-CONN-001 (fail)" in summary


def test_the_page_shows_a_not_applicable_reason(tmp_path: Path, vendor):
    text, _ = page(tmp_path, vendor, results(every_must_passes(**{"AOVPN-LB-REKEY-001": "not-applicable"})))
    assert NA_REASON in text.split("<b>AOVPN-LB-REKEY-001</b>", 1)[1].split("</tr>", 1)[0]


def test_the_page_prints_the_manifest_digest_and_every_listed_file(tmp_path: Path, vendor):
    text, run_dir = page(tmp_path, vendor, results(every_must_passes()))
    assert f"<code>{hashlib.sha256((run_dir / manifest.MANIFEST).read_bytes()).hexdigest()}</code>" in text
    for name, digest in manifest.read(run_dir):
        assert name in text and digest in text
    assert "sha256sum -c manifest.sha256" in text and "aovpn-lab certify --verify" in text


def test_the_page_links_each_cell_to_its_evidence(tmp_path: Path, vendor):
    text, run_dir = page(tmp_path, vendor, results(every_must_passes()))
    for c in runfile.load(run_dir).cells:
        assert f"href='report.html#{c.anchor}'" in text


def test_the_page_names_the_target_and_the_tool_versions(tmp_path: Path, vendor):
    text, _ = page(tmp_path, vendor, results(every_must_passes()))
    assert "Example Networks" in text and "EX-4000" in text and "12.10 <span class='muted small'>(declared)" in text
    assert "aovpn-lab 0.1.0 (commit c325a1b) ran the suite" in text


# -- writing and verifying --------------------------------------------------------------------------------------

@needs_chromium
def test_writing_a_certification_leaves_manifest_html_and_pdf_that_verify(tmp_path: Path, vendor):
    run_dir = run_folder(tmp_path, results(every_must_passes(**{"AOVPN-IKE-FRAG-001": "fail"})))
    (run_dir.parent / "latest").symlink_to(run_dir.name)
    paths = certify.write_certification(run_dir.parent / "latest", vendor)
    assert (paths.html, paths.pdf, paths.manifest) == (run_dir / "certification.html", run_dir / "certification.pdf",
                                                      run_dir / "manifest.sha256")
    assert paths.pdf.read_bytes().startswith(b"%PDF")
    assert not paths.certified and "AOVPN-IKE-FRAG-001" in paths.verdict
    out = io.StringIO()
    assert certify.verify(run_dir, out) == 0
    assert f"all {len(manifest.read(run_dir))} files match" in out.getvalue()


def test_verify_prints_each_changed_file_and_exits_1(tmp_path: Path):
    run_dir = run_folder(tmp_path, results(every_must_passes()))
    manifest.write(run_dir)
    changed = run_dir / "captures" / "AOVPN-CERT-001-0.pcap"
    changed.write_bytes(b"edited")
    out = io.StringIO()
    assert certify.verify(run_dir, out) == 1
    assert "MISMATCH  captures/AOVPN-CERT-001-0.pcap" in out.getvalue()


def test_verify_without_a_manifest_exits_2(tmp_path: Path):
    run_dir = run_folder(tmp_path, results(every_must_passes()))
    out = io.StringIO()
    assert certify.verify(run_dir, out) == 2
    assert "no manifest" in out.getvalue()


# -- the command -------------------------------------------------------------------------------------------------

def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="aovpn-lab")
    p.add_argument("--inventory")
    certify_command.register(p.add_subparsers(dest="command"))
    return p.parse_args(list(argv))


def test_certify_verify_dir_is_the_verify_exit_status(tmp_path: Path, capsys):
    run_dir = run_folder(tmp_path, results(every_must_passes()))
    args = parse("certify", "--verify", str(run_dir))
    assert args.func(args) == 2
    manifest.write(run_dir)
    assert args.func(args) == 0


@needs_chromium
def test_certify_runs_the_suite_then_certifies_reports_latest(tmp_path: Path, monkeypatch, capsys):
    inv = inventory_file(tmp_path, VENDOR, FILES)
    calls = []

    def run_suite(**kwargs):  # what the suite leaves behind, without a lab
        calls.append(kwargs)
        run_dir = run_folder(tmp_path, results(every_must_passes()))
        (kwargs["reports_dir"] / "latest").symlink_to(run_dir.name)
        return 0

    from aovpn_lab.report import run as report_run
    monkeypatch.setattr(report_run, "run_suite", run_suite)
    args = parse("--inventory", str(inv), "certify", "--reports", str(tmp_path / "reports"))
    assert args.func(args) == 0
    assert calls[0]["inventory"] == str(inv) and calls[0]["select"] is None
    assert capsys.readouterr().out.startswith("certified: meets all MUST requirements")
    assert (tmp_path / "reports" / "latest" / "certification.pdf").is_file()


def test_certify_refuses_a_wrong_certification_block_before_running_anything(tmp_path: Path, monkeypatch):
    from aovpn_lab.report import run as report_run
    monkeypatch.setattr(report_run, "run_suite", lambda **kw: pytest.fail("the suite ran"))
    args = parse("--inventory", str(inventory_file(tmp_path, "model: [a, b]")), "certify")
    with pytest.raises(InventoryError):
        args.func(args)


def test_a_must_only_the_audit_can_check_is_listed_and_does_not_block_a_run_certification():
    suite_must, audit_must = Requirement("R1", "t", "s", "MUST"), Requirement("R9", "t", "s", "MUST", "audit")
    run = runfile.RunResults.from_data(results([cell("R1", "pass")]), "results.json")
    a = certify.assess(run, {"R1": suite_must, "R9": audit_must})
    assert a.certified and "1 more checked on the deployment by aovpn-lab audit" in a.verdict
    assert [(s.requirement.id, s.status) for s in a.rows] == [("R1", "pass"), ("R9", "not-tested")]
    # a MUST the suite checks and no cell cited still blocks
    assert not certify.assess(run, {"R1": suite_must, "R2": Requirement("R2", "t", "s", "MUST")}).certified
