"""The run modes against the lab, as a user runs them: two nightly runs into one history
with the gateway variant switched between them (the report shows the change, the trend and
a flaky cell), the pre-change comparison of the same two runs, and a run stopped by SIGTERM
(what a CI time-out sends) that still leaves the whole report."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from aovpn_lab.report import history, runfile
from labcli import CLI, aovpn

pytestmark = pytest.mark.lab

HERE = Path(__file__).parent
# Cells the rras-defaults variant breaks (weak IKE accepted; IKE_AUTH lost to dropped
# fragments without RFC 7383) beside cells it leaves passing.
CELLS = ("(test_ikev2_connection and not nofrag and not user and aovpn-recommended and "
         "(via-open- or via-drop-ip-fragments-)) or test_gateway_refuses_weak_ike_proposals")
FLAKY = "aovpn-recommended-via-open-to-gw1"
BROKEN = {"test_ikev2_connection_matches_expectation[aovpn-recommended-via-drop-ip-fragments-to-gw1]",
          "test_gateway_refuses_weak_ike_proposals[of-gw1]"}


@pytest.fixture(scope="module")
def nightly(lab, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nightly")
    try:
        first = aovpn("run", "--variant", "default", "--history", str(folder), "-k", CELLS, timeout=600)
        assert first.returncode == 0, first.stderr[-3000:]
        env = {**os.environ, "AOVPN_FLAKY_ONCE": FLAKY,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
        second = aovpn("run", "--variant", "rras-defaults", "--history", str(folder), "-k", CELLS,
                       "--rerun-failures", "1", "--", "-p", "flaky_once", timeout=600, env=env)
    finally:
        back = aovpn("lab", "up", "--quiet", "--variant", "default")
        assert back.returncode == 0, back.stderr[-2000:]
    runs = sorted((p for p in folder.iterdir() if (p / "results.json").is_file() and not p.is_symlink()),
                  key=lambda p: p.name)
    return folder, second, [runfile.load(p) for p in runs]


def test_the_second_nightly_run_shows_what_the_variant_broke_and_a_flaky_cell(nightly):
    folder, second, (before, after) = nightly
    assert second.returncode == 1, second.stderr[-3000:]
    assert before.variant == "default" and after.variant == "rras-defaults"
    ch = history.changes(before, after, history.scan(folder))
    assert {c.nodeid.split("::")[-1] for c in ch.new_failures} == BROKEN
    (flaky,) = [c for c in after.cells if c.flaky]
    assert FLAKY in flaky.id and flaky.state == "pass"
    assert flaky.data["attempts"][0]["state"] == "error"  # the injected failure, before the cell ran
    page = (after.run_dir / "report.html").read_text()
    assert "id='trend'" in page and "Since the previous run" in page and "flaky" in page
    for cell in BROKEN:
        assert cell in page
    index = (folder / "history.json").read_text()
    assert before.run_id in index and after.run_id in index
    assert (after.run_dir / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sigterm_mid_run_leaves_the_whole_report_of_the_cells_done(lab, tmp_path):
    proc = subprocess.Popen([CLI, "run", "--reports", str(tmp_path), "-k", "test_ikev2_connection and via-open-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = tmp_path / "latest" / "results.json"
    deadline = time.monotonic() + 120
    while True:  # the first cell recorded: stop the run mid-matrix
        assert proc.poll() is None and time.monotonic() < deadline, "no cell finished"
        try:
            if runfile.load(results).cells:
                break
        except runfile.ResultsFormatError:
            pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err[-2000:]
    run = runfile.load(results)
    assert run.data["interrupted"] == "SIGTERM" and not run.complete
    page = (tmp_path / "latest" / "report.html").read_text()
    assert "SIGTERM" in page and all(c.anchor in page for c in run.cells)
    assert (tmp_path / "history.html").is_file() and (tmp_path / "latest" / "summary.png").is_file()


def test_the_nightly_runs_compared_show_the_same_breaks_side_by_side(nightly, tmp_path):
    _, _, (before, after) = nightly
    r = aovpn("compare", str(before.run_dir), str(after.run_dir), "--out", str(tmp_path))
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    page = (tmp_path / "compare.html").read_text()
    assert "id='breaks'" in page or 'id="breaks"' in page
    for cell in BROKEN:
        assert cell in r.stdout and cell in page


def test_compare_of_the_default_and_rras_defaults_variants_run_now_exits_1_and_lists_exactly_the_broken_cells(
        lab, tmp_path):
    try:
        r = aovpn("compare", "default", "rras-defaults", "-k", CELLS, "--reports", str(tmp_path / "runs"),
                  "--out", str(tmp_path / "cmp"), "--json", timeout=900)
    finally:
        back = aovpn("lab", "up", "--quiet", "--variant", "default")
        assert back.returncode == 0, back.stderr[-2000:]
    assert r.returncode == 1, r.stderr[-3000:]
    data = json.loads(r.stdout)
    assert data["baseline"]["variant"] == "default" and data["candidate"]["variant"] == "rras-defaults"
    assert {c["id"] for c in data["cells"] if c["change"] == "breaks"} == BROKEN
    # both sides ran the same matrix, and nothing else changed class
    assert data["counts"]["breaks"] == len(BROKEN) and data["counts"]["fixes"] == 0
