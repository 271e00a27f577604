"""The reason model and the strategy model give the answers recorded before they became
tables (tests/data/expectations.json): every client profile (RFC 7383 on and off) x network
condition x gateway facts x MTU recorded there, predicted and required, and every
VpnStrategy x cause x fallback rule."""
from __future__ import annotations

import json
from functools import lru_cache
from itertools import product

import pytest
import yaml

from aovpn_lab import fallback, paths, variants
from aovpn_lab.conditions.model import Condition
from aovpn_lab.expectations import GatewayFacts, predict_ikev2, require_ikev2
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
    matrix = yaml.safe_load((paths.PROFILES / "matrix.yml").read_text())
    used = {c for block in matrix["ikev2"] for c in block["conditions"]}
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
