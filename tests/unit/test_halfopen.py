"""The half-open ledger: a client waits out the gateway's DoS protection its own attempts could trigger."""
import io
from dataclasses import dataclass, field

from aovpn_lab.ike.halfopen import Ledger, left_half_open


@dataclass
class Msg:
    exchange: str
    direction: str
    payloads: list = field(default_factory=list)


INIT_ACCEPTED = Msg("IKE_SA_INIT", "received", ["SA", "KE", "No", "N(NATD_S_IP)"])
INIT_REFUSED = Msg("IKE_SA_INIT", "received", ["N(NO_PROP)"])
AUTH_SENT = Msg("IKE_AUTH", "sent", ["IDi", "CERT", "AUTH", "SA", "TSi", "TSr"])
AUTH_ANSWER = Msg("IKE_AUTH", "received", ["IDr", "AUTH", "N(NO_PROP)"])


def test_only_an_accepted_init_without_any_ike_auth_answer_leaves_a_half_open_sa():
    assert left_half_open([INIT_ACCEPTED, AUTH_SENT], ike_sa=False)
    assert not left_half_open([INIT_REFUSED], ike_sa=False)              # NO_PROPOSAL_CHOSEN: no state kept
    assert not left_half_open([INIT_ACCEPTED, AUTH_SENT, AUTH_ANSWER], ike_sa=False)   # settled by the gateway
    assert not left_half_open([INIT_ACCEPTED, AUTH_SENT], ike_sa=True)
    assert not left_half_open([], ike_sa=False)                          # silence: the gateway saw nothing


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_the_fifth_attempt_waits_until_the_oldest_has_expired_and_says_so():
    clock = Clock(1000.0)
    ledger = Ledger(threshold=5, timeout=30.0, clock=clock, sleep=clock.sleep)
    for i in range(5):
        assert ledger.before_attempt("aovpn-client", "203.0.113.10", stream=io.StringIO()) == 0
        ledger.after_attempt("aovpn-client", "203.0.113.10", [INIT_ACCEPTED, AUTH_SENT], ike_sa=False)
        clock.now += 2.0
    said = io.StringIO()
    waited = ledger.before_attempt("aovpn-client", "203.0.113.10", stream=said)
    assert 20.0 < waited < 21.0                      # the first was recorded at 1000, 30 s + margin later
    assert "5 earlier attempts may have left half-open IKE SAs on 203.0.113.10" in said.getvalue()
    assert ledger.pending("aovpn-client", "203.0.113.10") == 4
    assert ledger.pending("aovpn-client", "198.51.100.1") == 0          # per gateway ...
    assert ledger.pending("other-ns", "203.0.113.10") == 0              # ... and per source


def test_the_ledger_is_kept_between_runs_of_the_probe(tmp_path):
    path = tmp_path / "half-open.json"
    clock = Clock(50.0)
    Ledger(path, clock=clock).record(None, "203.0.113.10")
    assert Ledger(path, clock=clock).pending(None, "203.0.113.10") == 1
    clock.now += 31.0
    assert Ledger(path, clock=clock).pending(None, "203.0.113.10") == 0


def test_an_attempt_keeps_room_for_the_differential_test_after_it():
    clock = Clock(0.0)
    ledger = Ledger(threshold=5, timeout=30.0, clock=clock, sleep=clock.sleep)
    for t in (0.0, 1.0, 2.0, 3.0):
        ledger.record("ns", "gw", when=t)
    clock.now = 4.0
    assert ledger.wait_needed("ns", "gw", room=0) == 0.0        # a 5th SA-less probe is still answered
    # an attempt that may leave a 5th half-open SA would make the gateway ignore the probes after it
    assert ledger.wait_needed("ns", "gw", room=1) == 30.5 - 4.0


def test_the_wait_is_announced_on_the_stderr_of_the_moment(monkeypatch):
    # a second run in the same process (make soak) has another sys.stderr than the first
    clock = Clock(0.0)
    ledger = Ledger(threshold=1, timeout=30.0, clock=clock, sleep=clock.sleep)
    ledger.record("ns", "gw", when=0.0)
    now = io.StringIO()
    monkeypatch.setattr("sys.stderr", now)
    assert ledger.before_attempt("ns", "gw") > 0
    assert "waiting" in now.getvalue()
