"""What the conformance plugin records in results.json while pytest runs: a cell's place,
timings and captures, a flaky cell under pytest-rerunfailures, and an interrupted run.
Each case runs a real pytest in a subprocess with the plugin, on small test files."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aovpn_lab.report import runfile
from aovpn_lab.report.history import cell_table, scan
from aovpn_lab.report.page import render

CELLS = '''
from pathlib import Path
import time
from aovpn_lab.verdict import Verdict

COUNTER = Path(__file__).with_name("attempts")


def test_a_placed_cell_with_a_capture(cell):
    cell.place(protocol="ikev2", profile="p", condition="drop-ip-fragments", gateway="gw1")
    cell.artifacts.mkdir(parents=True)
    (cell.artifacts / "client.pcap").write_bytes(b"x")
    cell.conclude(Verdict("AOVPN-IKE-FRAG-001", "connected", "connected", "pass", "fits"))


def test_a_cell_that_fails_once_then_passes(cell):
    n = int(COUNTER.read_text()) if COUNTER.exists() else 0
    COUNTER.write_text(str(n + 1))
    state = "pass" if n else "fail"
    cell.conclude(Verdict("AOVPN-IKE-CONN-001", "connected", "connected" if n else "no-response", state,
                          "attempt %d" % (n + 1)))


def test_a_cell_that_always_fails(cell):
    cell.conclude(Verdict("AOVPN-IKE-CONN-001", "connected", "no-response", "fail", "never answers"))


def test_a_slow_cell(cell):
    Path(__file__).with_name("slow-started").write_text("1")
    time.sleep(60)
'''


def _pytest(tmp_path: Path, *args: str) -> subprocess.Popen:
    (tmp_path / "test_cells.py").write_text(CELLS)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_cells.py"), "-p", "aovpn_lab.pytest_plugin",
         "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path), "-c", os.devnull,
         "--run-dir", str(tmp_path / "run"), *args],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_cell_that_fails_then_passes_under_reruns_is_recorded_flaky_with_its_failed_attempt(tmp_path: Path):
    proc = _pytest(tmp_path, "--reruns", "1", "-k", "not slow")
    out, _ = proc.communicate(timeout=120)
    results = runfile.load(tmp_path / "run")
    cells = {c.data["test"]: c for c in results.cells}
    flaky = cells["test_a_cell_that_fails_once_then_passes"]
    assert flaky.state == "pass" and flaky.flaky, out
    assert [a["state"] for a in flaky.data["attempts"]] == ["fail"]
    assert flaky.data["attempts"][0]["reason"] == "attempt 1"
    always = cells["test_a_cell_that_always_fails"]
    assert always.state == "fail" and not always.flaky and len(always.data["attempts"]) == 1
    assert results.data["reruns"] == 1
    # the report and the history show it as flaky, never as a plain pass
    assert "flaky" in render(results)
    (row,) = [r for r in cell_table(scan(tmp_path).runs) if "fails_once" in r.nodeid]
    assert row.flaky == 1


def test_a_cell_records_its_place_timings_captures_and_the_planned_matrix(tmp_path: Path):
    out, _ = _pytest(tmp_path, "-k", "placed").communicate(timeout=120)
    results = runfile.load(tmp_path / "run")
    (c,) = results.cells
    assert c.place == {"protocol": "ikev2", "profile": "p", "condition": "drop-ip-fragments", "gateway": "gw1"}, out
    assert set(c.data["timings"]) == {"call", "teardown"}
    assert c.captures == ["captures/test_a_placed_cell_with_a_capture/client.pcap"]
    assert c.requirements == ["AOVPN-IKE-FRAG-001"]
    assert results.planned == [c.nodeid] and results.complete
    assert results.environment["inventory_sha256"] and results.environment["python"]


def test_sigterm_ends_the_run_with_the_cells_done_recorded_and_the_run_marked_interrupted(tmp_path: Path):
    proc = _pytest(tmp_path, "-k", "placed or slow")
    deadline = time.monotonic() + 60
    while not (tmp_path / "slow-started").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the slow cell never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out  # pytest's 'interrupted'
    results = runfile.load(tmp_path / "run")
    assert results.data["interrupted"] == "SIGTERM"
    assert [c.data["test"] for c in results.cells] == ["test_a_placed_cell_with_a_capture"]
    assert not results.complete and len(results.planned) == 2
    assert "SIGTERM" in render(results)
