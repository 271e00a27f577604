"""When the suite gives up an unanswered IKE request (ike/giveup.py, docs/timing.md)."""
import threading
import time

import pytest

from aovpn_lab.errors import AovpnError
from aovpn_lab.ike.giveup import GiveUpRule, RequestClock, RoundTrips, watch
from aovpn_lab.ike.profiles import charon_settings

LAB = GiveUpRule(factor=8, floor_s=0.4, ceiling_s=3.0)
EXTERNAL = GiveUpRule(factor=8, floor_s=0.4, ceiling_s=3.0, external=True, external_floor_s=1.0,
                      external_ceiling_s=4.0, jitter_factor=4)

SA_INIT_REQUEST = "generating IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) ]"
SA_INIT_RESPONSE = "parsed IKE_SA_INIT response 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) ]"
AUTH_REQUEST = "generating IKE_AUTH request 1 [ IDi CERT N(INIT_CONTACT) IDr AUTH SA TSi TSr ]"
AUTH_RESPONSE = "parsed IKE_AUTH response 1 [ IDr CERT AUTH SA TSi TSr ]"


def test_the_rule_is_a_multiple_of_the_round_trip_between_floor_and_ceiling():
    assert LAB.after(0.0001) == 0.4          # a LAN: the floor
    assert LAB.after(0.1) == 0.8             # 8 x RTT
    assert LAB.after(2.0) == 3.0             # the ceiling
    assert LAB.after(None) == 3.0            # nothing answered yet


def test_against_a_real_deployment_the_floor_follows_the_jitter():
    assert EXTERNAL.after(0.02) == 1.0                 # its own floor
    assert EXTERNAL.after(0.02, jitter=0.5) == 2.02    # rtt + 4 x jitter
    assert EXTERNAL.after(0.02, jitter=5.0) == 4.0     # still bounded


def test_the_rule_comes_from_profiles_charon_yml():
    g = charon_settings()["give_up"]
    rule = GiveUpRule.from_settings()
    assert (rule.factor, rule.floor_s, rule.ceiling_s) == (g["factor"], g["floor_s"], g["ceiling_s"])
    assert GiveUpRule.from_settings(external=True).floor == g["external"]["floor_s"]
    # the lab floor leaves room for charon's first retransmission (it connects the mtu cells)
    assert g["floor_s"] > charon_settings()["retransmit"]["timeout"]


def test_the_attempts_own_ike_sa_init_gives_the_round_trip():
    trips = RoundTrips(LAB)
    clock = RequestClock(trips)
    clock.feed(10.000, SA_INIT_REQUEST)
    assert clock.deadline() == 10.0 + 3.0    # no sample yet: the ceiling
    clock.feed(10.050, SA_INIT_RESPONSE)
    assert round(trips.rtt, 3) == 0.05 and clock.outstanding is None and clock.deadline() is None
    clock.feed(10.060, AUTH_REQUEST)
    assert clock.deadline() == 10.06 + 0.4
    assert not clock.overdue(10.3) and clock.overdue(10.5)
    clock.feed(10.9, AUTH_RESPONSE)           # IKE_AUTH's round trip is not the path's
    assert round(trips.rtt, 3) == 0.05


def test_a_retransmitted_request_gives_no_sample():
    trips = RoundTrips(LAB)
    clock = RequestClock(trips)
    clock.feed(1.0, SA_INIT_REQUEST)
    clock.feed(1.2, "retransmit 1 of request with message ID 0")
    clock.feed(1.25, SA_INIT_RESPONSE)
    assert trips.rtt is None                  # Karn: which transmission was answered is unknown


def test_the_differential_tests_answers_stand_in_until_the_attempt_has_its_own():
    trips = RoundTrips(LAB)
    trips.learn(0.3, own=False)
    trips.learn(0.2, own=False)
    assert trips.rtt == 0.2 and trips.allowance() == 1.6
    trips.learn(0.01, own=True)
    assert trips.rtt == 0.01 and trips.allowance() == 0.4
    trips.learn(0.02, own=True)               # another client of a crowd on the same path
    assert trips.rtt == 0.01
    assert trips.evidence()["measured: round trip from"] == "this attempt's IKE_SA_INIT"


def test_a_settled_attempt_stops_whoever_still_waits():
    trips = RoundTrips(LAB)
    assert trips.deadline(time.monotonic()) > time.monotonic()
    trips.settle()
    assert trips.deadline(time.monotonic()) < time.monotonic()


class ScriptedInitiation:
    """charon's log entries for an attempt, delivered as a real one delivers them: in time.
    `ends`: the command ends once the script is out (charon settled the exchange itself)."""

    def __init__(self, script, ends=False):
        self.script, self.logs, self.ended = list(script), [], threading.Event()
        self.ends = ends

    def next(self, wait):
        if self.ended.is_set() or (self.ends and not self.script):
            return None
        if not self.script:
            time.sleep(wait)
            return False
        line = self.script.pop(0)
        self.logs.append({"msg": line})
        return time.monotonic(), {"msg": line}


def test_the_watch_abandons_an_overdue_ike_auth_and_says_what_it_gave_up():
    initiation = ScriptedInitiation([SA_INIT_REQUEST, SA_INIT_RESPONSE, AUTH_REQUEST])
    trips = RoundTrips(LAB)
    began = time.monotonic()
    gave_up = watch(initiation, RequestClock(trips), initiation.ended.set, limit=began + 10)
    waited = time.monotonic() - began
    assert gave_up is not None and (gave_up.exchange, gave_up.message_id) == ("IKE_AUTH", 1)
    assert 0.4 <= waited < 1.0                # the floor, not charon's ~4.5 s


def test_the_watch_leaves_an_exchange_that_ends_by_itself_alone():
    initiation = ScriptedInitiation([SA_INIT_REQUEST, SA_INIT_RESPONSE, AUTH_REQUEST, AUTH_RESPONSE], ends=True)
    abandoned = []
    gave_up = watch(initiation, RequestClock(RoundTrips(LAB)), lambda: abandoned.append(True),
                    limit=time.monotonic() + 10)
    assert gave_up is None and not abandoned


def test_a_rule_missing_from_profiles_charon_yml_is_one_clear_error():
    with pytest.raises(AovpnError, match="give_up") as exc:
        GiveUpRule.from_settings(settings={"give_up": {"factor": 8}})
    assert "floor_s" in exc.value.hint


def test_a_lab_target_gets_the_lab_rule_and_a_real_deployment_the_external_one():
    from aovpn_lab import inventory, paths
    from aovpn_lab.target import Target
    lab = Target.from_inventory(inventory.load(paths.INVENTORIES / "lab"))
    real = Target.from_inventory(inventory.load(paths.INVENTORIES / "examples" / "external-gateway.yml"))
    assert not lab.give_up.external and lab.give_up.floor == charon_settings()["give_up"]["floor_s"]
    assert real.give_up.external and real.give_up.floor == charon_settings()["give_up"]["external"]["floor_s"]
