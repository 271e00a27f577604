"""The reason model and the strategy model give the answers recorded before they became
tables (tests/data/expectations.json): every client profile (RFC 7383 on and off) x network
condition x gateway facts x MTU recorded there, predicted and required, and every
VpnStrategy x cause x fallback rule."""
from __future__ import annotations

import json
from functools import lru_cache
from itertools import product

import pytest

from aovpn_lab import fallback, matrix, paths, requirements, variants
from aovpn_lab.conditions.model import Condition
from aovpn_lab.errors import AovpnError
from aovpn_lab.expectations import VOCABULARY, GatewayFacts, expect, expect_fallback, load, predict_ikev2, require_ikev2
from aovpn_lab.ike import profiles
from aovpn_lab.verdict import Expectation

RECORDED = paths.ROOT / "tests" / "data" / "expectations.json"


@lru_cache(maxsize=1)
def recorded() -> dict:
    return json.loads(RECORDED.read_text())


def as_expectation(i: int) -> Expectation:
    return Expectation(*recorded()["expectations"][i])


def _cases():
    r = recorded()
    for name, f in r["facts"].items():
        yield pytest.param(name, f, id=name)


@pytest.mark.parametrize("facts_name,facts", list(_cases()))
def test_the_reason_model_gives_the_recorded_answers(facts_name, facts):
    r = recorded()
    gw = GatewayFacts(**{k: v for k, v in facts.items() if k != "mtus"})
    answers = r["ikev2"][facts_name].split()
    cells = list(product(r["profiles"], r["conditions"], facts["mtus"]))
    assert len(answers) == len(cells)
    wrong = []
    for ((name, frag), text, mtu), answer in zip(cells, answers):
        profile, condition = profiles.get(name).with_fragmentation(frag), Condition.parse(text)
        want_predicted, want_required = (as_expectation(int(i)) for i in answer.split(","))
        got = predict_ikev2(profile, condition, gw, mtu), require_ikev2(profile, condition, gw, mtu)
        if got != (want_predicted, want_required):
            wrong.append((profile.name, text, mtu, got, (want_predicted, want_required)))
    assert not wrong, wrong[:3]


def test_the_recording_covers_every_profile_condition_and_variant_the_matrices_use():
    r = recorded()
    m = matrix.get()
    used = {c.condition for c in m.ikev2} | set(m.sstp) | set(m.tlsvpn) | set(m.path) | {c for c, _ in m.fallback.cells}
    assert used <= set(r["conditions"])
    assert {name for name, _ in r["profiles"]} == set(profiles.load()[0])
    assert {f"lab {v} {auth}" for v in variants.catalogue() for auth in ("pubkey", "eap-tls")} <= set(r["facts"])


def test_the_strategy_model_gives_the_recorded_answers():
    r = recorded()
    wrong = []
    for (strategy, plist, ike, sstp, mode, answered, observed, decision, finding, after, skipped, fell_back,
         attempts) in r["strategy"]:
        o = fallback.predict(strategy, {"ikev2": ike, "sstp": sstp}, fallback_on=mode, protocol_list=plist,
                             ike_sa_init_answered=answered).to_json()
        got = (o["observed"], o["decision"], o["finding"], o["strategy_after"], o["skipped"], o["fell_back"],
               [[a["stage"], a["windows_error"]] for a in o["attempts"]])
        want = (observed, r["texts"][decision], r["texts"][finding], after, skipped, fell_back, attempts)
        if got != want:
            wrong.append(((strategy, plist, ike, sstp, mode, answered), got, want))
    assert len(r["strategy"]) > 300 and not wrong, wrong[:3]


@pytest.mark.parametrize("section", ["sstp", "tlsvpn", "path"])
def test_the_other_sections_give_the_recorded_expectations(section):
    for condition, i in recorded()[section].items():
        assert expect(section, condition, condition=condition) == as_expectation(i), condition


def test_the_fallback_cell_gives_the_recorded_expectation():
    for key, i in recorded()["fallback_cell"].items():
        predicted, cause = key.split()
        assert expect_fallback(predicted, cause, f"<finding of {predicted}>") == as_expectation(i), key


def test_every_row_names_a_known_requirement_and_every_section_ends_with_a_default():
    sections = load()
    assert set(sections) == set(VOCABULARY)
    for s in sections.values():
        assert all(r.requirement in requirements.catalogue() for r in s.rules + s.when_connected)
        assert not s.rules[-1].terms


@pytest.mark.parametrize("row, message", [
    ("{condition: block-udp-501, outcome: x, requirement: AOVPN-IKE-PORT-001, reason: r}",
     "sstp.rules[0].condition: unknown term 'block-udp-501'"),
    ("{facts: sunny, outcome: x, requirement: AOVPN-IKE-PORT-001, reason: r}", "sstp.rules[0].facts: unknown term 'sunny'"),
    ("{outcome: x, requirement: AOVPN-NOPE-001, reason: r}", "sstp.rules[0].requirement: AOVPN-NOPE-001 is not in"),
    ("{outcome: x, requirement: AOVPN-IKE-PORT-001, reason: '{weather}'}", "sstp.rules[0].reason: unknown value {weather}"),
    ("{outcome: x, requirement: AOVPN-IKE-PORT-001}", "sstp.rules[0].reason: missing"),
    ("{outcome: x, requirement: AOVPN-IKE-PORT-001, reason: r, colour: red}", "sstp.rules[0]: unknown column colour"),
    ("{condition: nat, outcome: x, requirement: AOVPN-IKE-PORT-001, reason: r}", "sstp.rules: the last row must match"),
])
def test_a_bad_row_is_named_in_one_line_with_its_fix(tmp_path, row, message):
    text = (paths.PROFILES / "expectations.yml").read_text()
    bad = tmp_path / "expectations.yml"
    start = text.index("\nsstp:\n")
    end = text.index("\n# The SSTP crypto binding")
    bad.write_text(text[:start] + f"\nsstp:\n  rules:\n    - {row}\n" + text[end:])
    with pytest.raises(AovpnError) as err:
        load(bad)
    assert message in str(err.value) and str(bad) in str(err.value) and "(fix: " in str(err.value)
    assert "\n" not in str(err.value)
