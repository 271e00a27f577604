import argparse
import json
from pathlib import Path

import pytest

from aovpn_lab.errors import AovpnError
from aovpn_lab.report import compare as cmp_mod
from aovpn_lab.report import compare_command
from aovpn_lab.report.runfile import ResultsFormatError, RunResults

DATA = Path(__file__).resolve().parents[1] / "data" / "report"
FRAG_FIX = "enable RFC 7383 IKEv2 fragmentation on the gateway"
CRYPTO_FIX = "remove 3DES, SHA-1 and DH group 2 from the gateway's IKE proposals"


def cell(name, state, condition="open", fix="", duration=1.0, requirement="AOVPN-IKE-CONN-001", observed=None):
    verdict = {"requirement": requirement, "expected": "connected", "state": state,
               "observed": observed or {"pass": "connected", "not-applicable": state}.get(state, "fragments-dropped"),
               "reason": f"{name} was {state}", "fix": fix, "evidence": {"condition": condition}}
    return {"id": name, "nodeid": f"tests/conformance/test_ikev2.py::test_x[{name}]", "state": state,
            "place": {"protocol": "ikev2", "profile": "aovpn-recommended", "condition": condition, "gateway": "gw1"},
            "requirements": [requirement], "verdict": verdict if state != "error" else {},
            "message": "boom" if state == "error" else "", "duration_s": duration}


def results(run_id, cells, variant="default", planned=None, interrupted=None, path=None):
    nodeids = planned if planned is not None else [c["nodeid"] for c in cells]
    data = {"tool": "aovpn-lab", "schema": 2, "run_id": run_id, "started": "2026-12-02T10:15:00Z",
            "interrupted": interrupted, "inventory": "inventories/lab", "environment": {"variant": variant},
            "matrix": {"planned": nodeids}, "cells": cells}
    return RunResults.from_data(data, path or f"reports/{run_id}/results.json")


def nid(name):
    return f"tests/conformance/test_ikev2.py::test_x[{name}]"


@pytest.fixture
def pair():
    base = results("base1", [
        cell("frag-a", "pass", "drop-ip-fragments"), cell("frag-b", "pass", "drop-ip-fragments"),
        cell("weak", "pass", "-", requirement="AOVPN-IKE-CRYPTO-001"), cell("open", "pass"),
        cell("was-broken", "fail", fix="something"), cell("moved", "pass", "block-esp"),
        cell("appears", "not-applicable"), cell("known", "fail"), cell("errs", "pass")])
    cand = results("cand1", [
        cell("frag-a", "fail", "drop-ip-fragments", fix=FRAG_FIX),
        cell("frag-b", "inconclusive", "drop-ip-fragments", fix=FRAG_FIX),
        cell("weak", "fail", "-", fix=CRYPTO_FIX, requirement="AOVPN-IKE-CRYPTO-001"), cell("open", "pass"),
        cell("was-broken", "pass"), cell("moved", "not-applicable", "block-esp"),
        cell("appears", "pass"), cell("known", "inconclusive"), cell("errs", "error")],
        variant="rras-defaults")
    return base, cand


def kinds(cmp):
    return {c.id: c.kind for c in cmp.cells}


def test_each_cell_is_classified_by_what_the_change_does_to_it(pair):
    assert kinds(cmp_mod.compare(*pair)) == {
        "frag-a": "breaks", "frag-b": "breaks", "weak": "breaks", "errs": "breaks", "open": "unchanged",
        "was-broken": "fixes", "moved": "no-longer-tested", "appears": "newly-applicable", "known": "still-failing"}


def test_a_candidate_that_breaks_a_passing_cell_exits_1_and_one_that_only_fixes_exits_0(pair):
    base, cand = pair
    assert cmp_mod.exit_code(cmp_mod.compare(base, cand)) == 1
    assert cmp_mod.exit_code(cmp_mod.compare(cand, cand)) == 0
    fixes_only = results("c2", [cell("a", "pass"), cell("b", "pass")])
    assert cmp_mod.exit_code(cmp_mod.compare(results("b2", [cell("a", "fail"), cell("b", "pass")]), fixes_only)) == 0


def test_a_cell_that_becomes_not_applicable_is_listed_but_is_not_a_break():
    cmp = cmp_mod.compare(results("b", [cell("a", "pass")]), results("c", [cell("a", "not-applicable")]))
    assert [c.id for c in cmp.of("no-longer-tested")] == ["a"] and cmp_mod.exit_code(cmp) == 0
    assert "It no longer tests 1 cell." in cmp.headline()


def test_timing_differences_never_break_or_change_a_cell():
    base = results("b", [cell("a", "pass", duration=0.5), cell("b", "fail", duration=2.0)])
    cand = results("c", [cell("a", "pass", duration=55.0), cell("b", "fail", duration=0.01)])
    cmp = cmp_mod.compare(base, cand)
    assert kinds(cmp) == {"a": "unchanged", "b": "still-failing"} and cmp_mod.exit_code(cmp) == 0


def test_a_cell_the_candidate_did_not_get_to_is_not_run_and_never_a_break():
    planned = [nid("a"), nid("b")]
    base = results("b", [cell("a", "pass"), cell("b", "pass")], planned=planned)
    cand = results("c", [cell("a", "pass")], planned=planned, interrupted="SIGINT")
    cmp = cmp_mod.compare(base, cand)
    assert kinds(cmp) == {"a": "unchanged", "b": "not-run"} and cmp_mod.exit_code(cmp) == 0
    assert "candidate run is incomplete (interrupted by SIGINT): 1 planned cell not run" in cmp.headline()


def test_runs_of_different_matrices_are_refused_in_one_line_naming_both_files():
    base = results("b", [cell("a", "pass"), cell("only-base", "pass")], path="one/results.json")
    cand = results("c", [cell("a", "pass"), cell("x1", "pass"), cell("x2", "pass"), cell("x3", "pass"),
                         cell("x4", "pass")], path="two/results.json")
    with pytest.raises(ResultsFormatError) as err:
        cmp_mod.compare(base, cand)
    text = str(err.value)
    assert "\n" not in text and "one/results.json" in text and "two/results.json" in text
    assert "1 cell only in the baseline" in text and "4 only in the candidate" in text
    assert nid("x1") in text and nid("x4") not in text  # at most three examples
    assert err.value.exit_code == 2


def test_another_tools_results_file_is_refused_with_the_files_name(tmp_path):
    other = tmp_path / "results.json"
    other.write_text(json.dumps({"tool": "pytest-json-report", "tests": []}))
    with pytest.raises(ResultsFormatError, match=f"{other}: not an aovpn-lab results file"):
        cmp_mod.resolve(str(other), run_now=lambda kind, value: pytest.fail("nothing to run"))


def test_an_incompatible_schema_is_refused_naming_the_version(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"tool": "aovpn-lab", "schema": 1, "cells": []}))
    with pytest.raises(ResultsFormatError, match="results schema 1, this aovpn-lab reads schema 2"):
        cmp_mod.resolve(str(old), run_now=lambda kind, value: pytest.fail("nothing to run"))


def test_the_headline_groups_broken_cells_by_fix_and_names_their_conditions(pair):
    head = cmp_mod.compare(*pair).headline()
    assert head.startswith("candidate (variant rras-defaults) breaks 4 cells: ")
    assert f"2 behind drop-ip-fragments (1 inconclusive), fix: {FRAG_FIX}" in head
    assert f"1 without a network condition, fix: {CRYPTO_FIX}" in head
    assert "1 on the open network (1 error), ended without a verdict" in head
    assert head.endswith(". It fixes 1 cell, no longer tests 1 cell, newly tests 1 cell.")


def test_broken_cells_with_one_fix_form_one_group_whatever_their_conditions():
    base = results("b", [cell(n, "pass", cond) for n, cond in
                         (("a", "drop-ip-fragments"), ("b", "drop-ip-fragments"), ("c", "mtu:1200+drop-ip-fragments"),
                          ("d", "open"))])
    cand = results("c", [cell(n, "fail", cond, fix=FRAG_FIX if cond != "open" else CRYPTO_FIX) for n, cond in
                         (("a", "drop-ip-fragments"), ("b", "drop-ip-fragments"), ("c", "mtu:1200+drop-ip-fragments"),
                          ("d", "open"))])
    groups = cmp_mod.compare(base, cand).break_groups()
    assert [(g.fix, g.n) for g in groups] == [(FRAG_FIX, 3), (CRYPTO_FIX, 1)]
    assert groups[0].conditions == {"drop-ip-fragments": 2, "mtu:1200+drop-ip-fragments": 1}
    assert cmp_mod.compare(base, cand).headline().count(FRAG_FIX) == 1


def test_sides_are_labelled_by_run_id_when_nothing_else_differs():
    base, cand = results("b9", [cell("a", "pass")]), results("c9", [cell("a", "fail")])
    assert cmp_mod.compare(base, cand).headline().startswith("candidate (run c9) breaks 1 cell")


def test_each_requirement_shows_both_sides_standing_and_what_its_cells_did(pair):
    reqs = {r.id: r for r in cmp_mod.compare(*pair).requirements()}
    crypto, conn = reqs["AOVPN-IKE-CRYPTO-001"], reqs["AOVPN-IKE-CONN-001"]
    assert (crypto.base_state, crypto.cand_state, crypto.counts["breaks"]) == ("pass", "fail", 1)
    assert crypto.level == "MUST"
    assert conn.counts["breaks"] == 3 and conn.counts["fixes"] == 1 and conn.counts["unchanged"] == 1
    assert (conn.base_state, conn.cand_state) == ("fail", "fail")


def test_the_terminal_rendering_puts_each_break_on_one_line_with_both_verdicts(pair):
    text = cmp_mod.render_terminal(cmp_mod.compare(*pair))
    line = next(x for x in text.splitlines() if x.strip().startswith("frag-a:"))
    assert "pass (connected) -> fail (fragments-dropped)" in line
    assert "BROKEN (4)" in text and "FIXED (1)" in text and "AOVPN-IKE-CRYPTO-001" in text
    assert text.rstrip().endswith("exit 1: the candidate breaks cells that passed in the baseline")


def test_the_page_lists_broken_cells_as_break_rows_with_the_evidence_of_both_sides(pair):
    page = cmp_mod.render_html(cmp_mod.compare(*pair))
    breaks = page.split("id='breaks'")[1].split("</section>")[0]
    assert breaks.count("<tr class='break'>") == 4
    assert "frag-a was pass" in breaks and "frag-a was fail" in breaks  # baseline | candidate evidence
    assert breaks.count("aovpn-evidence") >= 6  # the errored cell has no verdict on the candidate side
    assert "<b>Fix:</b> " + FRAG_FIX in breaks


def test_the_page_collapses_unchanged_cells_into_a_count(pair):
    page = cmp_mod.render_html(cmp_mod.compare(*pair))
    unchanged = page.split("id='unchanged'")[1].split("</section>")[0]
    assert "<details><summary>1 cell</summary>" in unchanged and "open: pass" in unchanged


def test_the_page_links_each_sides_report_relative_to_the_comparison(tmp_path):
    for rid in ("b", "c"):
        (tmp_path / "reports" / rid).mkdir(parents=True)
        (tmp_path / "reports" / rid / "report.html").write_text("<html></html>")
    base = results("b", [cell("a", "pass")], path=tmp_path / "reports/b/results.json")
    cand = results("c", [cell("a", "fail")], path=tmp_path / "reports/c/results.json")
    cmp = cmp_mod.compare(base, cand)
    page = cmp_mod.render_html(cmp, out_dir=tmp_path / "reports" / "compare-b-vs-c")
    assert "href='../b/report.html'" in page and f"href='../c/report.html#{cmp.cells[0].cand.anchor}'" in page


def test_a_page_for_a_candidate_that_breaks_nothing_says_so():
    base = results("b", [cell("a", "pass")])
    page = cmp_mod.render_html(cmp_mod.compare(base, base))
    assert "id='breaks'" in page and "Nothing that passed in the baseline fails in the candidate" in page


class Runner:
    """Stands in for the command's way of running the suite: records what it was asked."""

    def __init__(self, run_dir):
        self.run_dir, self.calls = run_dir, []

    def __call__(self, kind, value):
        self.calls.append((kind, value))
        return self.run_dir


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "reports" / "r-now"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results("r-now", [cell("a", "pass")]).data))
    return folder


def test_a_variant_name_runs_the_suite_now_and_uses_the_run_it_wrote(run_dir):
    runner = Runner(run_dir)
    assert cmp_mod.resolve("rras-defaults", run_now=runner).run_id == "r-now"
    assert cmp_mod.resolve("variant:default", run_now=runner).run_id == "r-now"
    assert runner.calls == [("variant", "rras-defaults"), ("variant", "default")]


def test_an_unknown_variant_names_the_known_ones(run_dir):
    with pytest.raises(AovpnError, match="unknown gateway variant 'nope'") as err:
        cmp_mod.resolve("variant:nope", run_now=Runner(run_dir))
    assert "rras-defaults" in err.value.hint


def test_an_inventory_folder_or_yaml_file_runs_the_suite_against_it(tmp_path, run_dir):
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all: {}\n")
    single = tmp_path / "gateway.yml"
    single.write_text("all: {}\n")
    runner = Runner(run_dir)
    cmp_mod.resolve(str(inv), run_now=runner)
    cmp_mod.resolve(str(single), run_now=runner)
    assert runner.calls == [("inventory", str(inv)), ("inventory", str(single))]


def test_a_run_folder_and_its_results_file_are_read_without_running_anything(run_dir):
    runner = Runner(run_dir)
    assert cmp_mod.resolve(str(run_dir), run_now=runner).run_id == "r-now"
    assert cmp_mod.resolve(str(run_dir / "results.json"), run_now=runner).run_id == "r-now"
    assert runner.calls == []


def test_nonsense_is_refused_naming_the_argument_and_the_accepted_forms(run_dir):
    with pytest.raises(AovpnError) as err:
        cmp_mod.resolve("no-such-thing", run_now=Runner(run_dir))
    assert "'no-such-thing' is not a results.json, a run folder, an inventory or a gateway variant" in str(err.value)


def test_a_folder_that_is_neither_a_run_nor_an_inventory_is_refused_rather_than_run(tmp_path, run_dir):
    (tmp_path / "half-run").mkdir()
    (tmp_path / "half-run" / "report.html").write_text("")
    runner = Runner(run_dir)
    with pytest.raises(AovpnError, match="half-run: neither a run folder"):
        cmp_mod.resolve(str(tmp_path / "half-run"), run_now=runner)
    assert runner.calls == []


def parse(argv, run_now=None):
    parser = argparse.ArgumentParser(prog="aovpn-lab")
    compare_command.register(parser.add_subparsers(dest="command"), run_now=run_now)
    return parser.parse_args(argv)


def save(folder, run):
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(run.data))
    return folder


def test_the_command_writes_page_and_json_prints_the_summary_and_exits_1_on_a_break(tmp_path, pair, capsys):
    base, cand = (save(tmp_path / r.run_id, r) for r in pair)
    out = tmp_path / "cmp"
    args = parse(["compare", str(base), str(cand), "--out", str(out)])
    assert args.func(args) == 1
    assert "id='breaks'" in (out / "compare.html").read_text()
    written = json.loads((out / "compare.json").read_text())
    assert written["exit_code"] == 1 and written["counts"]["breaks"] == 4
    assert "breaks 4 cells" in capsys.readouterr().out


def test_the_command_prints_json_when_asked_and_exits_0_without_breaks(tmp_path, pair, capsys):
    base = save(tmp_path / "b", pair[0])
    args = parse(["compare", str(base), str(base / "results.json"), "--out", str(tmp_path / "o"), "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["breaks"] == 0


def test_the_command_hands_variant_sides_to_the_clis_runner_with_its_arguments(tmp_path, run_dir):
    seen = []

    def run_now(args, kind, value):
        seen.append((args.command, kind, value))
        return run_dir
    args = parse(["compare", "default", "rras-defaults", "--out", str(tmp_path / "o")], run_now=run_now)
    assert args.func(args) == 0
    assert seen == [("compare", "variant", "default"), ("compare", "variant", "rras-defaults")]


def test_without_a_runner_the_command_refuses_to_run_a_side_in_one_line(tmp_path):
    args = parse(["compare", "default", "rras-defaults", "--out", str(tmp_path / "o")])
    with pytest.raises(AovpnError, match="cannot run the suite for variant 'default'") as err:
        args.func(args)
    assert err.value.exit_code == 2


def test_the_default_output_folder_names_both_runs():
    assert compare_command.default_out("b1", "c1").name == "compare-b1-vs-c1"


# tests/data/report holds results.json files of real lab runs (make conformance, and `aovpn-lab run
# --variant rras-defaults`), trimmed below 300 KB: every cell and verdict kept, evidence cut short.
def recorded(name):
    return cmp_mod.resolve(str(DATA / f"{name}.json"), run_now=lambda kind, value: pytest.fail("nothing to run"))


def test_a_recorded_lab_run_compared_with_itself_breaks_nothing_and_leaves_every_cell():
    run = recorded("default")
    cmp = cmp_mod.compare(run, run)
    assert cmp_mod.exit_code(cmp) == 0 and cmp.counts()["unchanged"] == len(run.planned) > 100
    assert all(r.base_state == r.cand_state for r in cmp.requirements())


def test_a_recorded_run_whose_fragment_cells_fail_breaks_just_those_and_names_the_fix():
    run = recorded("default")
    data = json.loads(json.dumps(run.data))
    flipped = set()
    for c in data["cells"]:
        if c["state"] == "pass" and c["place"].get("condition") == "drop-ip-fragments":
            c["state"] = c["verdict"]["state"] = "fail"
            c["verdict"]["fix"] = FRAG_FIX
            flipped.add(c["nodeid"])
    cmp = cmp_mod.compare(run, RunResults.from_data(data, "cand/results.json"))
    assert {c.nodeid for c in cmp.of("breaks")} == flipped and flipped
    assert f"breaks {len(flipped)} cells: {len(flipped)} behind drop-ip-fragments, fix: {FRAG_FIX}." in cmp.headline()
    assert cmp_mod.render_html(cmp).count("<tr class='break'>") == len(flipped)


@pytest.mark.skipif(not (DATA / "rras-defaults.json").exists(), reason="no recorded rras-defaults run")
def test_recorded_lab_runs_break_exactly_the_cells_that_passed_and_now_fail():
    base, cand = recorded("default"), recorded("rras-defaults")
    cmp = cmp_mod.compare(base, cand)
    before, after = base.by_nodeid(), cand.by_nodeid()
    expected = {n for n, c in after.items()
                if c.state in ("fail", "inconclusive", "error") and n in before and before[n].state == "pass"}
    assert {c.nodeid for c in cmp.of("breaks")} == expected and expected
    assert cmp_mod.exit_code(cmp) == 1
