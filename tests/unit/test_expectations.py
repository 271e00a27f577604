"""The reason model: the expected outcome of a cell and the reason it gives."""
import pytest

from aovpn_lab.conditions.model import Condition
from aovpn_lab.expectations import GatewayFacts, predict_ikev2, proposals_overlap, require_ikev2
from aovpn_lab.verdict import Verdict
from aovpn_lab.ike import profiles

HARDENED = GatewayFacts(policy="hardened", fragmentation=True, ike_auth_request=880, ike_auth_response=800)


def cond(text):
    return Condition.parse(text)


def test_windows10_defaults_against_a_hardened_gateway_is_a_policy_mismatch_named_13868():
    exp = predict_ikev2(profiles.get("windows10-default"), cond("open"), HARDENED)
    assert exp.outcome == "no-proposal-chosen" and exp.requirement == "AOVPN-IKE-CRYPTO-001"
    assert "13868" in exp.reason


def test_windows10_defaults_connect_to_a_gateway_with_rras_default_policy():
    exp = predict_ikev2(profiles.get("windows10-default"), cond("open"), GatewayFacts(policy="weak"))
    assert exp.outcome == "connected"


def test_a_blocked_udp_500_is_met_before_any_proposal_is_refused():
    exp = predict_ikev2(profiles.get("windows10-default"), cond("block-udp-500"), HARDENED)
    assert exp.outcome == "udp-500-blocked"


def test_a_blocked_udp_4500_comes_after_the_proposal_check():
    assert predict_ikev2(profiles.get("windows10-default"), cond("block-udp-4500"), HARDENED).outcome == \
        "no-proposal-chosen"
    assert predict_ikev2(profiles.get("aovpn-recommended"), cond("block-udp-4500"), HARDENED).outcome == \
        "udp-4500-blocked"


@pytest.mark.parametrize("gw_frag,client_frag,outcome", [
    (False, True, "ip-fragments-dropped"),
    (True, False, "ip-fragments-dropped"),
    (True, True, "connected"),
])
def test_large_ike_auth_behind_a_fragment_dropping_firewall(gw_frag, client_frag, outcome):
    gw = GatewayFacts(policy="hardened", fragmentation=gw_frag, ike_auth_request=5936, ike_auth_response=5888)
    profile = profiles.get("aovpn-recommended").with_fragmentation(client_frag)
    exp = predict_ikev2(profile, cond("drop-ip-fragments"), gw)
    assert exp.outcome == outcome
    if outcome != "connected":
        assert "5936 B > path MTU 1500" in exp.reason and "RFC 7383" in exp.fix


def test_small_ike_auth_survives_a_fragment_dropping_firewall():
    assert predict_ikev2(profiles.get("aovpn-recommended"), cond("drop-ip-fragments"), HARDENED).outcome == "connected"


def test_proposal_overlap_needs_every_transform_type_to_match():
    assert proposals_overlap(("aes128-sha256-modp2048",), ["aes128-aes256-sha256-modp2048-ecp256"])
    assert not proposals_overlap(("aes128-sha256-modp1024",), ["aes128-aes256-sha256-modp2048-ecp256"])
    assert proposals_overlap(("aes128gcm16-prfsha256-modp2048",), ["aes128gcm16-prfsha256-ecp256-modp2048"])
    assert not proposals_overlap(("aes128gcm16-prfsha256-modp2048",), ["aes128-sha256-modp2048"])


def test_the_requirement_is_what_a_recommended_gateway_would_do_with_the_same_certificates():
    rras = GatewayFacts(policy="weak", fragmentation=False, ike_auth_request=6160, ike_auth_response=6080)
    recommended = profiles.get("aovpn-recommended")
    assert require_ikev2(recommended, cond("drop-ip-fragments"), rras).outcome == "connected"
    assert predict_ikev2(recommended, cond("drop-ip-fragments"), rras).outcome == "ip-fragments-dropped"
    # a client without RFC 7383 cannot be rescued by any gateway: the requirement expects the loss
    nofrag = recommended.with_fragmentation(False)
    assert require_ikev2(nofrag, cond("drop-ip-fragments"), rras).outcome == "ip-fragments-dropped"


def test_a_deviation_is_explained_by_the_prediction_and_carries_its_fix():
    rras = GatewayFacts(policy="weak", fragmentation=False, ike_auth_request=6160, ike_auth_response=6080)
    p, c = profiles.get("aovpn-recommended"), cond("drop-ip-fragments")
    v = Verdict.compare(require_ikev2(p, c, rras), "ip-fragments-dropped", {}, predicted=predict_ikev2(p, c, rras))
    assert not v.holds and v.requirement == "AOVPN-IKE-FRAG-001"
    assert "6160 B > path MTU 1500" in v.reason and "EnableServerFragmentation" in v.fix
    unexplained = Verdict.compare(require_ikev2(p, c, rras), "auth-failed", {}, predicted=predict_ikev2(p, c, rras))
    assert "not what the reason model predicts" in unexplained.reason


def test_nat_and_mtu_limits_alone_do_not_break_a_large_ike_auth():
    big = GatewayFacts(policy="hardened", fragmentation=False, ike_auth_request=6160, ike_auth_response=6080)
    for text in ("nat", "mtu:1280", "mtu:1200"):
        assert predict_ikev2(profiles.get("aovpn-recommended"), cond(text), big).outcome == "connected"


def test_a_weak_gateway_that_lets_windows10_defaults_in_is_named_for_it():
    exp = predict_ikev2(profiles.get("windows10-default"), cond("open"), GatewayFacts(policy="weak"))
    assert exp.outcome == "connected" and exp.requirement == "AOVPN-IKE-CRYPTO-001"
    assert "3DES" in exp.reason and "CustomPolicy" in exp.fix


def test_a_gateway_firewall_without_udp_4500_loses_ike_auth_on_every_network():
    gw = GatewayFacts(policy="hardened", fragmentation=True, firewall="missing-4500")
    for text in ("open", "nat", "drop-ip-fragments", "mtu:1280"):
        exp = predict_ikev2(profiles.get("aovpn-recommended"), cond(text), gw)
        assert exp.outcome == "udp-4500-blocked" and "gateway's own firewall" in exp.reason
    # ...but IKE_SA_INIT still meets the network and the policy first
    assert predict_ikev2(profiles.get("aovpn-recommended"), cond("block-udp-500"), gw).outcome == "udp-500-blocked"
    assert predict_ikev2(profiles.get("windows10-default"), cond("open"), gw).outcome == "no-proposal-chosen"
    assert require_ikev2(profiles.get("aovpn-recommended"), cond("open"), gw).outcome == "connected"
