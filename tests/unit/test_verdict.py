"""Four verdict states, and the run's exit status from them: unknown is never a pass."""
import pytest

from aovpn_lab.conditions.model import Condition
from aovpn_lab.corroboration import corroborate
from aovpn_lab.expectations import NOT_APPLICABLE, GatewayFacts, require_ikev2
from aovpn_lab.ike import profiles
from aovpn_lab.pytest_plugin import cell_state, run_status, verdict_counts
from aovpn_lab.verdict import Expectation, Verdict

EXP = Expectation("connected", "AOVPN-IKE-CONN-001", "open network")


def test_a_matching_observation_passes_and_any_other_fails():
    assert Verdict.compare(EXP, "connected", {}).state == "pass"
    v = Verdict.compare(EXP, "udp-500-blocked", {})
    assert v.state == "fail" and not v.holds and v.to_json()["holds"] is False


def test_an_inconclusive_verdict_is_not_a_pass():
    v = Verdict.inconclusive(EXP, "ip-fragments-dropped", "the edge dropped no fragment", {})
    assert v.state == "inconclusive" and not v.holds


def test_an_unknown_state_is_refused():
    with pytest.raises(ValueError, match="not one of pass, fail, inconclusive, not-applicable"):
        Verdict("R", "connected", "connected", "ok", "why")


def test_block_esp_is_not_applicable_where_esp_is_always_udp_encapsulated():
    profile = profiles.get("aovpn-recommended")
    lab = GatewayFacts(policy="hardened", fragmentation=True, native_esp=False)
    exp = require_ikev2(profile, Condition.parse("block-esp"), lab)
    assert exp.outcome == NOT_APPLICABLE and "UDP 4500" in exp.reason and "path scan" in exp.reason
    # where native ESP may be used (an external gateway: unknown), the cell is judged as usual
    assert require_ikev2(profile, Condition.parse("block-esp"), GatewayFacts()).outcome == "connected"
    # and another condition beside it still decides the cell
    assert require_ikev2(profile, Condition.parse("block-esp+block-udp-500"), lab).outcome == "udp-500-blocked"


def test_cells_without_a_verdict_are_not_applicable_when_skipped_and_errors_otherwise():
    assert cell_state("skipped", None) == "not-applicable"
    assert cell_state("failed", None) == "error"
    assert cell_state("passed", None) == "error"       # a cell must always say what it saw
    assert cell_state("failed", {"state": "inconclusive"}) == "inconclusive"
    assert cell_state("failed", {"state": "pass"}) == "fail"     # a check after the verdict failed


@pytest.mark.parametrize("states, status", [
    (["pass", "pass", "not-applicable"], 0),
    (["pass", "fail"], 1),
    (["pass", "inconclusive"], 1),
    (["not-applicable", "not-applicable"], 1),     # nothing applicable ran: not green
    ([], 1),
    (["pass", "error"], 2),
])
def test_the_run_is_green_only_when_every_applicable_cell_passed(states, status):
    counts = verdict_counts([{"state": s} for s in states])
    assert run_status(counts)[0] == status


# -- corroboration: a cause is passed on only when the edge saw it ------------------------

FRAG = Expectation("ip-fragments-dropped", "AOVPN-IKE-FRAG-001", "IKE_AUTH is IP-fragmented and dropped")


def test_a_fragment_cause_with_zero_fragments_dropped_at_the_edge_is_inconclusive():
    v = corroborate(Verdict.compare(FRAG, "ip-fragments-dropped", {}), Condition.parse("drop-ip-fragments"),
                    {"fragments_dropped": 0})
    assert v.state == "inconclusive" and "fragments_dropped = 0" in v.reason and not v.fix


def test_a_fragment_cause_the_edge_counted_passes_and_says_so():
    v = corroborate(Verdict.compare(FRAG, "ip-fragments-dropped", {}), Condition.parse("mtu:1200+drop-ip-fragments"),
                    {"fragments_dropped": 18})
    assert v.state == "pass" and v.evidence["corroborated by"] == "edge counter fragments_dropped = 18"


def test_an_edge_without_counters_cannot_corroborate():
    exp = Expectation("tcp-443-blocked", "AOVPN-SSTP-CONN-001", "443 blocked")
    v = corroborate(Verdict.compare(exp, "tcp-443-blocked", {}), Condition.parse("block-tcp-443"), {})
    assert v.state == "inconclusive"


def test_causes_from_elsewhere_are_left_to_other_evidence_and_failures_need_corroboration_too():
    exp = Expectation("udp-4500-blocked", "AOVPN-IKE-PORT-001", "the gateway's firewall drops 4500")
    passed = Verdict.compare(exp, "udp-4500-blocked", {})
    assert corroborate(passed, Condition.parse("open"), {}) is passed          # not the edge's condition
    failed = Verdict.compare(EXP, "udp-500-blocked", {})
    assert corroborate(failed, Condition.parse("open"), {}) is failed
    # a failure whose named cause the edge did not see: the cause is not shown, the cell inconclusive
    assert corroborate(failed, Condition.parse("block-udp-500"), {"udp_500_dropped": 0}).state == "inconclusive"
    assert corroborate(failed, Condition.parse("block-udp-500"), {"udp_500_dropped": 4}).state == "fail"


def test_captures_that_name_another_cause_make_the_cell_inconclusive():
    passed = Verdict.compare(FRAG, "ip-fragments-dropped", {})
    edge = {"fragments_dropped": 12}
    cond = Condition.parse("drop-ip-fragments")
    assert corroborate(passed, cond, edge, {"cause": "ip-fragments-dropped", "direction": "initiator->responder"}
                       ).state == "pass"
    other = corroborate(passed, cond, edge, {"cause": "udp-4500-blocked"})
    assert other.state == "inconclusive" and "captures at both ends name udp-4500-blocked" in other.reason
    assert corroborate(passed, cond, edge, "unavailable: no packets").state == "inconclusive"
    assert corroborate(passed, cond, edge, None).state == "pass"     # no captures (external target): edge only


def test_a_drop_by_the_gateways_own_firewall_is_corroborated_by_its_counter():
    exp = Expectation("udp-4500-blocked", "AOVPN-IKE-PORT-001", "the gateway's firewall drops 4500")
    passed = Verdict.compare(exp, "udp-4500-blocked", {})
    silent = {"cause": "no-response", "reason": "the responder received IKE_AUTH request #1 and never answered"}
    ok = corroborate(passed, Condition.parse("open"), {}, silent, {"udp_4500_dropped": 3})
    assert ok.state == "pass" and "udp_4500_dropped = 3" in ok.evidence["corroborated by"]
    # a silent gateway whose firewall dropped nothing: the client's cause is not confirmed
    assert corroborate(passed, Condition.parse("open"), {}, silent, {"udp_4500_dropped": 0}).state == "inconclusive"


def test_a_cause_the_captures_cannot_rule_out_stands_only_on_the_edges_counter():
    # A large IP-fragmented IKE_AUTH was the only packet to UDP 4500: the captures name
    # ip-fragments-dropped and cannot rule out udp-4500-blocked.
    exp = Expectation("udp-4500-blocked", "AOVPN-IKE-PORT-001", "4500 blocked")
    passed = Verdict.compare(exp, "udp-4500-blocked", {})
    undecided = {"cause": "ip-fragments-dropped", "alternatives": ["udp-4500-blocked"]}
    cond = Condition.parse("block-udp-4500")
    ok = corroborate(passed, cond, {"udp_4500_dropped": 2}, undecided)
    assert ok.state == "pass" and "udp_4500_dropped = 2" in ok.evidence["corroborated by"]
    assert "cannot tell it from udp-4500-blocked" in ok.evidence["corroborated by"]
    # no count at the edge, or a condition the edge did not apply: nothing decides, inconclusive
    assert corroborate(passed, cond, {"udp_4500_dropped": 0}, undecided).state == "inconclusive"
    assert corroborate(passed, Condition.parse("open"), {}, undecided).state == "inconclusive"
    # a cause the captures do not name even as an alternative stays inconclusive
    other = {"cause": "ip-fragments-dropped", "alternatives": ["udp-500-blocked"]}
    assert corroborate(passed, cond, {"udp_4500_dropped": 2}, other).state == "inconclusive"
