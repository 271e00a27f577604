"""The Windows protocol-strategy model: order per VpnStrategy, the fallback rule (only an
initial IKEv2 failure moves on to SSTP; docs/domain.md), timings and findings - driven by
recorded probe results, no network."""
from __future__ import annotations

import json

import pytest

from aovpn_lab import fallback
from aovpn_lab.fallback import VpnStrategy, predict, protocol_order, run_strategy
from aovpn_lab.ike.messages import IkeMessage
from aovpn_lab.ike.probe import IkeProbeResult
from aovpn_lab.results import Phase
from aovpn_lab.sstp.probe import SstpProbeResult

GW = "203.0.113.10"


def _msg(direction, exchange, kind, mid, size, retransmits=0):
    return IkeMessage(direction, exchange, kind, mid, size=size, packets=1, retransmits=retransmits)


def ike(cause="none", elapsed=16, answered=None):
    """A recorded IKEv2 result as the probe gives it (sizes from the lab's small certificates)."""
    connected = cause == "none"
    if answered is None:
        answered = cause not in ("udp-500-blocked",)
    msgs = [_msg("sent", "IKE_SA_INIT", "request", 0, 464, 0 if answered else 2)]
    if answered:
        msgs.append(_msg("received", "IKE_SA_INIT", "response", 0, 472))
        if cause != "no-proposal-chosen":
            msgs.append(_msg("sent", "IKE_AUTH", "request", 1, 880, 0 if connected else 2))
        if connected:
            msgs.append(_msg("received", "IKE_AUTH", "response", 1, 816))
    return IkeProbeResult(connected, cause, elapsed, GW, "aovpn-recommended", ike_sa=connected, child_sa=connected,
                       messages=msgs)


def sstp(cause="none", elapsed=1310):
    ok = cause == "none"
    return SstpProbeResult(ok, cause, GW, 443, elapsed, "mschapv2", tls_version="TLSv1.3" if ok else "",
                           phases=[Phase("tcp", 0, 1, True)] + ([Phase("tls", 1, 20, True)] if ok else []),
                           failed_phase="" if ok else "tcp")


class Recorder:
    """An attempt callable that returns a recorded result and counts its calls."""

    def __init__(self, result):
        self.result, self.calls = result, 0

    def __call__(self):
        self.calls += 1
        return self.result


def never():
    raise AssertionError("this protocol must not be attempted")


# -- the strategy table --------------------------------------------------------------

@pytest.mark.parametrize("value, order", [(0, ("sstp", "ikev2")), (5, ("sstp",)), (6, ("sstp", "ikev2")),
                                          (7, ("ikev2",)), (8, ("ikev2", "sstp")), (14, ("ikev2", "sstp"))])
def test_each_strategy_tries_its_protocols_in_order(value, order):
    assert protocol_order(value) == order
    assert fallback.STRATEGIES[VpnStrategy(value)].note


def test_strategies_are_parsed_from_numbers_and_names():
    assert VpnStrategy.parse(14) is VpnStrategy.parse("14") is VpnStrategy.parse("Ikev2Sstp") \
        is VpnStrategy.parse("ikev2sstp") is VpnStrategy.Ikev2Sstp
    assert VpnStrategy.parse(VpnStrategy.SstpFirst) is VpnStrategy.SstpFirst
    with pytest.raises(ValueError, match="not modelled"):
        VpnStrategy.parse(3)          # L2tpOnly: out of scope
    with pytest.raises(ValueError, match="unknown VpnStrategy"):
        VpnStrategy.parse("ikev3")


def test_protocol_list_needs_a_list_of_known_protocols():
    assert protocol_order(15, ["SSTP", "ikev2"]) == ("sstp", "ikev2")
    with pytest.raises(ValueError, match="needs protocol_list"):
        protocol_order(15)
    with pytest.raises(ValueError):
        protocol_order(15, ["ikev2", "l2tp"])
    with pytest.raises(ValueError):
        protocol_order(15, ["ikev2", "ikev2"])
    with pytest.raises(ValueError, match="only applies"):
        protocol_order(14, ["ikev2"])


# -- the fallback rule ---------------------------------------------------------------

@pytest.mark.parametrize("strategy", [8, 14])
def test_udp_500_blocked_falls_back_to_sstp_with_the_time_to_connect(strategy):
    s = Recorder(sstp(elapsed=1310))
    out = run_strategy(strategy, Recorder(ike("udp-500-blocked", 3004)), s)
    assert out.observed == "connected-over-sstp" and out.connected and out.fell_back and s.calls == 1
    assert [(a.protocol, a.cause, a.stage) for a in out.attempts] == [("ikev2", "udp-500-blocked", "initial"),
                                                                      ("sstp", "none", None)]
    assert out.time_to_connect_ms == 3004 + 1310
    assert out.attempts[0].windows_error == 809
    assert out.attempts[0].sizes["IKE_SA_INIT_request"] == 464 and out.attempts[0].sizes["IKE_SA_INIT_response"] is None
    assert out.attempts[0].retransmits == {"IKE_SA_INIT_request": 2}
    assert "fell back to SSTP" in out.finding and "4314 ms" in out.finding
    assert out.strategy_after is VpnStrategy.SstpFirst   # Windows rewrites VpnStrategy after a fallback


@pytest.mark.parametrize("cause", ["udp-4500-blocked", "ip-fragments-dropped", "ike-fragments-dropped", "auth-failed"])
def test_a_partial_ikev2_failure_does_not_fall_back_on_a_windows_client(cause):
    out = run_strategy(VpnStrategy.Ikev2Sstp, Recorder(ike(cause, 3008)), never)
    assert out.observed == "ikev2-failed-no-fallback" and not out.connected and not out.fell_back
    assert out.skipped == ("sstp",) and out.time_to_connect_ms is None
    assert out.attempts[0].stage == "partial" and len(out.attempts) == 1
    assert "does not fall back to SSTP" in out.finding
    if cause == "auth-failed":
        assert out.attempts[0].windows_error is None and "error" not in out.finding
    else:
        assert "users see error 809" in out.finding


def test_ike_auth_lost_to_fragmentation_reads_as_the_field_finding():
    out = run_strategy(14, lambda: ike("ip-fragments-dropped", 3008), lambda: sstp(elapsed=1148), try_skipped=True)
    assert out.observed == "ikev2-failed-no-fallback" and out.connected_protocol is None
    assert out.finding.startswith("IKE_AUTH lost to fragmentation")
    assert "a Windows client does not fall back to SSTP" in out.finding
    assert "users see error 809" in out.finding and "although SSTP works on this network" in out.finding
    cf = out.attempt("sstp", counterfactual=True)
    assert cf is not None and cf.connected and out.attempt("sstp") is None


@pytest.mark.parametrize("cause", ["udp-4500-blocked", "ip-fragments-dropped", "ike-fragments-dropped"])
def test_a_client_that_falls_back_on_any_failure_reaches_sstp(cause):
    out = run_strategy(14, lambda: ike(cause, 3008), lambda: sstp(elapsed=1148), fallback_on="any-failure")
    assert out.observed == "connected-over-sstp" and out.fell_back
    assert out.attempts[0].stage == "partial" and out.time_to_connect_ms == 3008 + 1148
    assert "would have stopped here with error 809" in out.finding
    assert out.strategy_after is None   # the rewrite is Windows behaviour, not this client's


def test_no_response_is_initial_or_partial_by_whether_ike_sa_init_was_answered():
    silent = run_strategy(14, lambda: ike("no-response", answered=False), lambda: sstp())
    assert silent.attempts[0].stage == "initial" and silent.observed == "connected-over-sstp"
    auth_lost = run_strategy(14, lambda: ike("no-response", answered=True), never)
    assert auth_lost.attempts[0].stage == "partial" and auth_lost.observed == "ikev2-failed-no-fallback"
    # a recorded result without messages: silence, nothing was ever answered
    bare = run_strategy(14, lambda: {"connected": False, "cause": "no-response", "elapsed_ms": 3000}, lambda: sstp())
    assert bare.attempts[0].stage == "initial" and bare.fell_back


def _cookie_round():
    return [IkeMessage("sent", "IKE_SA_INIT", "request", 0, ["SA", "KE", "No"], size=464, packets=1),
            IkeMessage("received", "IKE_SA_INIT", "response", 0, ["N(COOKIE)"], size=60, packets=1),
            IkeMessage("sent", "IKE_SA_INIT", "request", 0, ["N(COOKIE)", "SA", "KE", "No"], size=496, packets=1)]


def test_a_cookie_alone_is_not_a_completed_ike_sa_init():
    # The gateway asked for a cookie, then the retry went unanswered: still an initial failure.
    silent = IkeProbeResult(False, "no-response", 3000, GW, "p", messages=_cookie_round())
    out = run_strategy(14, lambda: silent, lambda: sstp())
    assert out.attempts[0].stage == "initial" and out.observed == "connected-over-sstp"
    # After the cookie round IKE_SA_INIT completed and IKE_AUTH was lost: partial; sizes are the final round's.
    msgs = _cookie_round() + [
        IkeMessage("received", "IKE_SA_INIT", "response", 0, ["SA", "KE", "No"], size=472, packets=1),
        IkeMessage("sent", "IKE_AUTH", "request", 1, ["IDi"], size=304, packets=1, retransmits=2)]
    lost = IkeProbeResult(False, "no-response", 3000, GW, "p", messages=msgs)
    out = run_strategy(14, lambda: lost, never)
    assert out.attempts[0].stage == "partial" and out.observed == "ikev2-failed-no-fallback"
    assert (out.attempts[0].sizes["IKE_SA_INIT_request"], out.attempts[0].sizes["IKE_SA_INIT_response"]) == (496, 472)


def test_no_proposal_chosen_counts_as_an_initial_failure():
    out = run_strategy(14, lambda: ike("no-proposal-chosen", 5), lambda: sstp())
    assert out.attempts[0].stage == "initial" and out.attempts[0].windows_error == 13868
    assert out.observed == "connected-over-sstp"


def test_ikev2_that_connects_never_touches_sstp():
    out = run_strategy(14, lambda: ike("none", 16), never, try_skipped=True)
    assert out.observed == "connected-over-ikev2" and out.time_to_connect_ms == 16 and not out.fell_back
    assert out.skipped == () and len(out.attempts) == 1 and "SSTP not needed" in out.finding


def test_ikev2_only_has_no_fallback_even_on_an_initial_failure():
    out = run_strategy(7, lambda: ike("udp-500-blocked", 3004), None)
    assert out.observed == "ikev2-failed" and out.skipped == ()
    assert "has no fallback" in out.finding


@pytest.mark.parametrize("strategy", [0, 6])
def test_sstp_first_strategies_move_on_to_ikev2_when_sstp_fails(strategy):
    i = Recorder(ike("none", 20))
    out = run_strategy(strategy, i, lambda: sstp("tcp-443-blocked", 2003))
    assert [a.protocol for a in out.attempts] == ["sstp", "ikev2"] and i.calls == 1
    assert out.observed == "connected-over-ikev2" and out.time_to_connect_ms == 2023


def test_sstp_only_needs_no_ikev2_attempt():
    out = run_strategy("SstpOnly", None, lambda: sstp())
    assert out.observed == "connected-over-sstp" and [a.protocol for a in out.attempts] == ["sstp"]
    with pytest.raises(ValueError, match="pass an attempt for ikev2"):
        run_strategy(14, None, lambda: sstp())


def test_protocol_list_runs_in_the_listed_order():
    out = run_strategy(15, lambda: ike("none"), lambda: sstp("tcp-443-blocked"), protocol_list=["sstp", "ikev2"])
    assert [a.protocol for a in out.attempts] == ["sstp", "ikev2"] and out.connected_protocol == "ikev2"


def test_when_both_fail_nothing_connects():
    out = run_strategy(14, lambda: ike("udp-500-blocked", 3004), lambda: sstp("tcp-443-blocked", 2003))
    assert out.observed == "all-failed" and out.time_to_connect_ms is None and out.fell_back
    assert "every protocol" in out.finding and "udp-500-blocked" in out.finding and "tcp-443-blocked" in out.finding


def test_a_counterfactual_that_fails_too_is_reported_as_such():
    out = run_strategy(14, lambda: ike("udp-4500-blocked"), lambda: sstp("tcp-443-blocked"), try_skipped=True)
    assert out.observed == "ikev2-failed-no-fallback"
    assert "SSTP, tried anyway, failed too (tcp-443-blocked)" in out.finding


def test_wall_time_is_measured_around_each_attempt():
    ticks = iter([0.0, 0.0, 4.2, 4.2, 5.5, 5.5])   # run start, ikev2 start/end, sstp start/end, run end
    out = run_strategy(14, lambda: ike("udp-500-blocked", 3004), lambda: sstp(elapsed=1300),
                       clock=lambda: next(ticks))
    assert [a.wall_ms for a in out.attempts] == [4200, 1300] and out.total_ms == 5500
    assert out.time_to_connect_ms == 4304    # what the user waits: the attempts, not the diagnosis


def test_bad_fallback_mode_is_refused():
    with pytest.raises(ValueError, match="fallback_on"):
        run_strategy(14, lambda: ike(), lambda: sstp(), fallback_on="sometimes")


def test_recorded_json_results_replay_like_live_ones():
    recorded = json.loads(json.dumps(ike("udp-4500-blocked", 3008).to_json()))
    out = run_strategy(14, lambda: recorded, never)
    assert out.attempts[0].stage == "partial" and out.attempts[0].sizes["IKE_AUTH_request"] == 880
    assert out.attempts[0].retransmits == {"IKE_AUTH_request": 2}


def test_the_outcome_serialises_without_the_raw_results():
    out = run_strategy(14, lambda: ike("udp-500-blocked"), lambda: sstp(), try_skipped=True)
    data = json.loads(json.dumps(out.to_json()))
    assert data["strategy"] == "14 Ikev2Sstp" and data["observed"] == "connected-over-sstp"
    assert data["strategy_after"] == "6 SstpFirst"
    assert all("result" not in a for a in data["attempts"])
    assert data["attempts"][1]["sizes"]["tls"] == "TLSv1.3"


@pytest.mark.parametrize("ike_cause, mode, observed", [
    ("udp-500-blocked", "initial-failure", "connected-over-sstp"),
    ("udp-4500-blocked", "initial-failure", "ikev2-failed-no-fallback"),
    ("ip-fragments-dropped", "initial-failure", "ikev2-failed-no-fallback"),
    ("ip-fragments-dropped", "any-failure", "connected-over-sstp"),
    ("none", "initial-failure", "connected-over-ikev2"),
])
def test_predict_applies_the_same_rule_to_predicted_causes(ike_cause, mode, observed):
    assert predict(14, {"ikev2": ike_cause, "sstp": "none"}, fallback_on=mode).observed == observed
    assert predict(14, {"ikev2": "no-response", "sstp": "none"}, ike_sa_init_answered=True).observed \
        == "ikev2-failed-no-fallback"


def test_the_strategy_data_is_validated_with_the_key_and_the_fix(tmp_path):
    from aovpn_lab.errors import AovpnError
    text = fallback.STRATEGY_FILE.read_text()
    for old, new, message in [("  SstpOnly: {order: [sstp]", "  SstpOnly: {order: [sstp, l2tp]",
                               "strategies.SstpOnly.order: ['sstp', 'l2tp']"),
                              ("  ProtocolList:", "  L2tpOnly:", "strategies.L2tpOnly: not a VpnStrategy"),
                              ("cause: auth-failed, stage: partial", "cause: auth-failed, stage: late",
                               "ikev2_failures[5]: expected {cause, stage, windows_error, text}")]:
        bad = tmp_path / "fallback.yml"
        bad.write_text(text.replace(old, new))
        with pytest.raises(AovpnError) as err:
            fallback._load(bad)
        assert message in str(err.value) and str(bad) in str(err.value) and "(fix: " in str(err.value)
