"""The history of runs, from synthetic schema-2 results files written into a history folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from aovpn_lab.report import history
from aovpn_lab.report.runfile import matrix_digest, write

CELLS = ["a", "b", "c"]


def cell(cid: str, state: str = "pass", duration: float | None = 1.0, flaky: bool = False) -> dict:
    rec = {"id": cid, "nodeid": f"tests/conformance/test_x.py::test[{cid}]", "test": "test", "state": state,
           "place": {"protocol": "ikev2", "profile": "p", "condition": "-", "gateway": "gw1"},
           "verdict": {"requirement": "R-1", "state": state, "reason": f"{cid} is {state}"}, "flaky": flaky}
    if duration is not None:
        rec["duration_s"] = duration
    if flaky:
        rec["attempts"] = [{"state": "fail", "reason": "timed out", "duration_s": duration}]
    return rec


def run(folder: Path, n: int, cells: list[dict], **extra) -> Path:
    run_id = f"202612{n:02d}T101500Z-{n:06x}"
    data = {"tool": "aovpn-lab", "schema": 2, "run_id": run_id, "started": f"2026-12-{n:02d}T10:15:00Z",
            "finished": f"2026-12-{n:02d}T11:00:00Z", "interrupted": None, "reruns": 0,
            "environment": {"variant": "default"},
            "matrix": {"planned": [c["nodeid"] for c in cells], "digest": matrix_digest([c["nodeid"] for c in cells])},
            "cells": cells, **extra}
    write(folder / run_id / "results.json", data)
    return folder / run_id


def times(folder: Path, cid: str, durations: list[float], start: int = 1) -> None:
    for i, d in enumerate(durations):
        run(folder, start + i, [cell(cid, duration=d)])


def test_scan_orders_runs_by_start_and_ignores_folders_without_results(tmp_path):
    run(tmp_path, 2, [cell("a")])
    run(tmp_path, 1, [cell("a")])
    (tmp_path / "compare-x").mkdir()
    (tmp_path / "latest").symlink_to(sorted(p.name for p in tmp_path.iterdir())[0])
    h = history.scan(tmp_path)
    assert [r.started[:10] for r in h.runs] == ["2026-12-01", "2026-12-02"]
    assert h.problems == []


def test_a_new_failure_and_a_fix_are_detected_against_the_previous_run(tmp_path):
    run(tmp_path, 1, [cell("a"), cell("b", "fail"), cell("c", "not-applicable")])
    run(tmp_path, 2, [cell("a", "fail"), cell("b"), cell("c", "inconclusive")])
    h = history.scan(tmp_path)
    ch = history.changes(h.previous(h.runs[-1]), h.runs[-1], h)
    assert [c.id for c in ch.new_failures] == ["a", "c"]
    assert [(c.id, c.before, c.after) for c in ch.fixed] == [("b", "fail", "pass")]
    assert ch.new_failures[0].reason == "a is fail"


def test_cells_of_another_matrix_appear_and_disappear(tmp_path):
    run(tmp_path, 1, [cell("a"), cell("b")])
    run(tmp_path, 2, [cell("a"), cell("c")])
    h = history.scan(tmp_path)
    ch = history.changes(h.runs[0], h.runs[1], h)
    assert [c.id for c in ch.appeared] == ["c"] and [c.id for c in ch.disappeared] == ["b"]
    assert "another matrix" in history.section(h, h.runs[1])


def test_last_green_skips_red_and_incomplete_runs(tmp_path):
    run(tmp_path, 1, [cell("a"), cell("b")])
    run(tmp_path, 2, [cell("a"), cell("b")], interrupted="SIGINT")
    run(tmp_path, 3, [cell("a", "fail"), cell("b")])
    run(tmp_path, 4, [cell("a"), cell("b")])
    h = history.scan(tmp_path)
    assert [history.is_green(r) for r in h.runs] == [True, False, False, True]
    assert h.last_green(h.runs[-1]).run_id == h.runs[0].run_id
    assert h.previous(h.runs[-1]).run_id == h.runs[2].run_id


def test_a_run_of_only_not_applicable_cells_is_not_green(tmp_path):
    run(tmp_path, 1, [cell("a", "not-applicable")])
    assert not history.is_green(history.scan(tmp_path).runs[0])


def test_a_quiet_cell_is_slower_beyond_its_spread(tmp_path):
    times(tmp_path, "a", [1.0, 1.01, 0.99, 1.0, 1.02, 1.0, 1.3])
    h = history.scan(tmp_path)
    ch = history.changes(h.runs[-2], h.runs[-1], h)
    assert [c.id for c, _ in ch.slower] == ["a"]
    assert "median of 1.000 s over 6 runs" in ch.slower[0][1].note


def test_a_quiet_cell_within_its_spread_is_not_slower(tmp_path):
    times(tmp_path, "a", [1.0, 1.01, 0.99, 1.0, 1.02, 1.0, 1.02])
    h = history.scan(tmp_path)
    assert history.changes(h.runs[-2], h.runs[-1], h).slower == []


def test_a_noisy_cell_is_not_flagged_for_the_growth_that_flags_a_quiet_one(tmp_path):
    times(tmp_path, "a", [1.0, 1.4, 0.7, 1.2, 0.8, 1.0, 1.3])
    h = history.scan(tmp_path)
    ch = history.changes(h.runs[-2], h.runs[-1], h)
    assert ch.slower == [] and ch.unjudged == {}


def test_constant_times_use_the_millisecond_resolution_as_spread():
    assert history.judge([0.5] * 6, 0.503).slower is False
    assert history.judge([0.5] * 6, 0.504).slower is True


def test_too_little_history_says_so_instead_of_judging(tmp_path):
    times(tmp_path, "a", [1.0, 1.0, 1.0, 9.0])
    h = history.scan(tmp_path)
    ch = history.changes(h.runs[-2], h.runs[-1], h)
    assert ch.slower == [] and ch.unjudged == {h.runs[-1].cells[0].nodeid: 3}
    assert "not enough history to judge (3 runs" in ch.timing_note


def test_times_of_another_state_are_not_samples(tmp_path):
    for n in range(1, 7):
        run(tmp_path, n, [cell("a", "fail", duration=30.0)])
    run(tmp_path, 7, [cell("a", duration=1.0)])
    run(tmp_path, 8, [cell("a", duration=1.0)])
    h = history.scan(tmp_path)
    assert history.changes(h.runs[-2], h.runs[-1], h).unjudged != {}


def test_a_corrupt_results_file_and_another_tools_file_are_one_line_each(tmp_path):
    run(tmp_path, 1, [cell("a")])
    run(tmp_path, 3, [cell("a", "fail")])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text('{"tool": "aovpn-lab", "schema": 2, "cells": [')
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text(json.dumps({"tool": "pytest-json", "tests": []}))
    h = history.scan(tmp_path)
    assert len(h.runs) == 2
    assert len(h.problems) == 2 and all("\n" not in p for p in h.problems)
    assert any("broken/results.json: not JSON" in p for p in h.problems)
    assert any("other/results.json: not an aovpn-lab results file" in p for p in h.problems)
    page = history.write_index(tmp_path).read_text()
    assert "broken/results.json" in page and h.runs[1].run_id in page


@pytest.mark.parametrize("text, says", [
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    (json.dumps({"tool": "aovpn-lab", "schema": 1, "cells": []}).encode(), "results schema 1"),
    (json.dumps({"tool": "aovpn-lab", "schema": 2, "cells": [{"id": "a", "duration_s": "slow"}]}).encode(),
     "cell a: \"duration_s\" is 'slow', not a number"),
    (json.dumps({"tool": "aovpn-lab", "schema": 2, "started": 5, "cells": []}).encode(), "\"started\" is 5"),
], ids=["binary", "old-schema", "bad-duration", "bad-start"])
def test_each_unreadable_run_names_its_file_and_what_differs(tmp_path, text, says):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_bytes(text)
    h = history.scan(tmp_path)
    assert h.runs == [] and len(h.problems) == 1
    assert h.problems[0].startswith(str(tmp_path / "r" / "results.json")) and says in h.problems[0]


def test_a_missing_history_folder_is_a_problem_not_an_exception(tmp_path):
    h = history.scan(tmp_path / "nope")
    assert h.runs == [] and "no such folder" in h.problems[0]


def test_a_flaky_cell_is_counted_flaky_never_as_a_plain_pass_or_fix(tmp_path):
    run(tmp_path, 1, [cell("a", "fail"), cell("b")])
    run(tmp_path, 2, [cell("a", flaky=True), cell("b", flaky=True)])
    h = history.scan(tmp_path)
    ch = history.changes(h.runs[0], h.runs[1], h)
    assert ch.fixed == [] and [c.id for c in ch.flaky] == ["a", "b"]
    assert ch.flaky[0].reason == "failed attempt: timed out"
    rows = {r.id: r for r in history.cell_table(h.runs)}
    assert (rows["b"].passes, rows["b"].flaky, rows["b"].since_fail) == (1, 1, 0)
    history.write_index(tmp_path)
    assert json.loads((tmp_path / "history.json").read_text())["runs"][1]["flaky"] == 2


def test_runs_since_last_pass_and_last_fail_count_the_cells_own_runs(tmp_path):
    states = ["pass", "fail", "pass", "pass", "inconclusive", "error"]
    for n, s in enumerate(states, 1):
        run(tmp_path, n, [cell("a", s)] + ([cell("b", "pass")] if n == 1 else []))
    rows = {r.id: r for r in history.cell_table(history.scan(tmp_path).runs)}
    a, b = rows["a"], rows["b"]
    assert (a.runs, a.passes, a.fails, a.since_pass, a.since_fail, a.last_state) == (6, 3, 3, 2, 0, "error")
    assert (b.runs, b.since_pass, b.since_fail) == (1, 0, None)


def test_the_per_cell_table_puts_the_worst_cell_first(tmp_path):
    run(tmp_path, 1, [cell("ok"), cell("bad", "fail"), cell("na", "not-applicable"), cell("wobbly")])
    run(tmp_path, 2, [cell("ok"), cell("bad", "fail"), cell("na", "not-applicable"), cell("wobbly", flaky=True)])
    order = [r.id for r in history.cell_table(history.scan(tmp_path).runs)]
    assert order[:2] == ["bad", "wobbly"]


def test_the_section_has_the_trend_pictures_links_and_the_flaky_table(tmp_path):
    run(tmp_path, 1, [cell("a"), cell("b")])
    run(tmp_path, 2, [cell("a", "fail", 2.0), cell("b")])
    run(tmp_path, 3, [cell("a", "fail", 3.0), cell("b", flaky=True)])
    h = history.scan(tmp_path)
    html = history.section(h, h.runs[-1])
    assert "id='trend'" in html
    assert html.count("<svg") == 2
    assert f"../{h.runs[1].run_id}/report.html" in html and f"../{h.runs[0].run_id}/report.html" in html
    assert "Since the last green run" in html and "runs since last pass" in html
    assert h.runs[-1].cells[0].anchor in html


def test_the_section_of_a_first_run_says_there_is_nothing_to_compare(tmp_path):
    run(tmp_path, 1, [cell("a")])
    h = history.scan(tmp_path)
    html = history.section(h, h.runs[0])
    assert "nothing to compare with" in html and "<svg" in html


def test_the_index_lists_every_run_with_its_counts_and_links(tmp_path):
    run(tmp_path, 1, [cell("a"), cell("b", "not-applicable")])
    run(tmp_path, 2, [cell("a", "fail"), cell("b", "not-applicable")])
    out = history.write_index(tmp_path)
    index = json.loads((tmp_path / "history.json").read_text())
    first = index["runs"][0]
    assert out == tmp_path / "history.html"
    assert [e["green"] for e in index["runs"]] == [True, False]
    assert first["verdicts"]["pass"] == 1 and first["verdicts"]["not-applicable"] == 1
    assert first["path"] == first["run_id"] and first["complete"] is True and len(first["matrix_digest"]) == 64
    page = out.read_text()
    assert f"{first['run_id']}/report.html" in page and "id='trend'" in page
    assert not list(tmp_path.glob(".*.tmp"))


def test_slower_cells_are_listed_once_not_again_since_the_last_green_run(tmp_path):
    times(tmp_path, "a", [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    run(tmp_path, 7, [cell("a", "fail", 1.0)])
    run(tmp_path, 8, [cell("a", duration=5.0)])
    h = history.scan(tmp_path)
    html = history.section(h, h.runs[-1])
    assert "Since the last green run" in html and html.count("Slower beyond noise") == 1


def test_a_run_like_the_previous_one_says_nothing_changed(tmp_path):
    run(tmp_path, 1, [cell("a")])
    run(tmp_path, 2, [cell("a")])
    h = history.scan(tmp_path)
    assert "No cell changed state, none is slower" in history.section(h, h.runs[-1])


def test_two_files_with_the_same_test_id_keep_their_own_times(tmp_path):
    twin = {**cell("a", duration=9.0), "nodeid": "tests/conformance/test_y.py::test[a]"}
    run(tmp_path, 1, [cell("a", duration=1.0), twin])
    run(tmp_path, 2, [cell("a", duration=2.0), {**twin, "duration_s": 9.5}])
    h = history.scan(tmp_path)
    html = history.section(h, h.runs[-1])
    assert "tests/conformance/test_y.py::test[a]" in html and ">a<" in html
