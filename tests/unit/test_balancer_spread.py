"""aovpn_lab.balancer.spread: an exact binomial test of clients over backends."""
from __future__ import annotations

from math import comb

import pytest

from aovpn_lab.balancer import spread
from aovpn_lab.errors import AovpnError


def test_binomial_p_is_the_sum_of_outcomes_no_more_likely_than_the_one_seen():
    # 2 of 10 at 1/2: outcomes 0, 1, 2, 8, 9, 10
    expected = sum(comb(10, i) for i in (0, 1, 2, 8, 9, 10)) / 2 ** 10
    assert spread.binomial_p(2, 10, 2) == pytest.approx(expected, rel=1e-12)
    assert spread.binomial_p(8, 10, 2) == spread.binomial_p(2, 10, 2)


def test_binomial_p_with_three_backends_is_not_symmetric():
    # 0 of 6 at 1/3 is far likelier (64/729) than 6 of 6 (1/729)
    assert spread.binomial_p(6, 6, 3) == pytest.approx(1 / 729)
    assert spread.binomial_p(0, 6, 3) > 20 * spread.binomial_p(6, 6, 3)


def test_binomial_p_refuses_impossible_counts():
    with pytest.raises(ValueError):
        spread.binomial_p(11, 10, 2)


def test_a_fair_looking_spread_of_fifty_is_even_with_its_figures():
    r = spread.evaluate({"gw1": 27, "gw2": 23})
    assert r.even and r.reasons == []
    assert (r.n, r.expected, r.alpha) == (50, 25.0, 0.001)
    assert r.p_values["gw1"] == r.p_values["gw2"] == r.p_value and r.p_value > 0.5


def test_thirty_five_to_fifteen_is_still_chance_but_forty_to_ten_is_not():
    assert spread.evaluate({"gw1": 35, "gw2": 15}).even
    r = spread.evaluate({"gw1": 40, "gw2": 10})
    assert not r.even and r.p_value < 0.001
    assert r.reasons == [f"gw1 got 40 of 50 clients, 25 expected (p = {r.p_value:.2g} < 0.001)"]


def test_an_empty_backend_is_uneven_even_with_few_clients():
    r = spread.evaluate({"gw1": 3, "gw2": 0})
    assert r.p_value > 0.001 and not r.even
    assert r.reasons == ["gw2 got none of 3 clients"]


def test_an_empty_backend_with_fewer_clients_than_backends_is_not_judged():
    assert spread.evaluate({"gw1": 1, "gw2": 0, "gw3": 0}).even


def test_an_empty_backend_the_test_already_names_is_named_once():
    r = spread.evaluate({"gw1": 0, "gw2": 15, "gw3": 15})
    assert not r.even and len(r.reasons) == 1 and r.reasons[0].startswith("gw1 got 0 of 30 clients, 10 expected")


def test_two_backends_fifty_to_none_names_the_deviation_and_the_empty_backend():
    r = spread.evaluate({"gw1": 50, "gw2": 0})
    assert r.reasons[0].startswith("gw1 got 50 of 50 clients") and r.reasons[1:] == ["gw2 got none of 50 clients"]


def test_three_backends_correct_for_three_tests():
    counts = {"gw1": 20, "gw2": 6, "gw3": 4}
    r = spread.evaluate(counts, alpha=0.05)
    assert r.p_value == pytest.approx(min(1.0, 3 * min(r.p_values.values())))
    assert r.p_values["gw1"] == pytest.approx(spread.binomial_p(20, 30, 3))


def test_no_clients_is_even():
    r = spread.evaluate({"gw1": 0, "gw2": 0})
    assert r.even and r.p_value == 1.0


def test_bad_counts_are_refused_with_a_fix():
    with pytest.raises(AovpnError, match="whole numbers"):
        spread.evaluate({"gw1": -1, "gw2": 3})
    with pytest.raises(AovpnError, match="at least one backend"):
        spread.evaluate({})


def test_the_threshold_is_data_in_the_profile():
    assert spread.settings().alpha == 0.001
    assert spread.SPREAD_FILE.name == "load-balancing.yml"


def test_a_bad_threshold_in_the_profile_names_the_key(tmp_path):
    bad = tmp_path / "load-balancing.yml"
    bad.write_text("spread: {alpha: 5}\n")
    with pytest.raises(AovpnError, match=r"spread\.alpha") as exc:
        spread.settings(bad)
    assert "0.001" in exc.value.hint


def test_result_is_json_shaped():
    j = spread.evaluate({"gw1": 2, "gw2": 2}).to_json()
    assert set(j) == {"n", "counts", "expected", "p_values", "p_value", "alpha", "even", "reasons"}
