"""Repeatability report: every cell whose verdict or cause changed between runs, and time spreads."""
import io

from aovpn_lab import soak


def run(*cells):
    return {"cells": [{"id": i, "state": s, "verdict": {"observed": o}, "duration_s": t} for i, s, o, t in cells]}


def test_a_changed_cause_is_a_change_even_when_the_state_is_the_same():
    a = run(("c1", "pass", "udp-500-blocked", 0.5), ("c2", "pass", "connected", 0.1))
    b = run(("c1", "pass", "no-response", 0.6), ("c2", "pass", "connected", 0.1))
    (c,) = soak.changes([a, b])
    assert c.cell == "c1" and c.per_run == ("pass (udp-500-blocked)", "pass (no-response)")


def test_a_cell_missing_from_one_run_is_a_change():
    a = run(("c1", "pass", "connected", 0.1))
    b = run()
    assert [c.per_run for c in soak.changes([a, b])] == [("pass (connected)", "-")]


def test_the_report_prints_the_spread_and_exits_1_on_any_change():
    a = run(("c1", "pass", "connected", 0.1), ("c2", "pass", "connected", 0.2))
    b = run(("c1", "pass", "connected", 0.3), ("c2", "fail", "no-response", 3.2))
    out = io.StringIO()
    assert soak.report([a, b], out) == 1
    text = out.getvalue()
    assert "2 runs, 2 cells, 1 cell(s) changed" in text and "changed  c2: pass (connected) | fail (no-response)" in text
    assert text.index("c2", text.index("widest")) < text.index("c1", text.index("widest"))   # widest first
    assert soak.report([a, a], io.StringIO()) == 0


def test_earlier_runs_are_compared_from_their_folders(tmp_path):
    import json
    for name, cells in (("r1", run(("c1", "pass", "connected", 0.1))), ("r2", run(("c1", "pass", "connected", 0.2)))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(cells))
    assert soak.main(["--compare", str(tmp_path / "r1"), str(tmp_path / "r2")]) == 0
    assert soak.main(["--compare", str(tmp_path / "missing")]) == 2
