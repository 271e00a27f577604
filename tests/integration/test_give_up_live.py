"""The suite's give-up rule against the lab's charons: a lost IKE_AUTH is abandoned on the
measured round trip, the cause still comes from the differential test run beside it, a
path that works is not given up, and a lab gateway forgets earlier cells' half-open SAs
(docs/timing.md)."""
from __future__ import annotations

import pytest

from aovpn_lab.conditions.base import edge_device
from aovpn_lab.conditions.model import Condition
from aovpn_lab.ike import probe, profiles
from aovpn_lab.ike.halfopen import Ledger
from aovpn_lab.target import Target

pytestmark = pytest.mark.lab


@pytest.fixture
def on_path(lab):
    target = Target.from_inventory(lab.inventory)
    edge = edge_device(lab.inventory)
    edge.open()

    def attempt(condition: str, ledger: Ledger | None = None):
        target.reset_path_state(ledger)
        edge.apply(Condition.parse(condition))
        gw = target.gateways[0]
        return probe.run_probe(target.client.vici, gw.probe_target(target.client), profiles.get(),
                               netns=target.client.netns, ping=gw.ping_target, timeout=10.0,
                               rule=target.give_up, ledger=ledger)
    try:
        yield target, attempt
    finally:
        edge.apply(Condition.parse("open"))
        edge.close()


def test_a_lost_ike_auth_is_given_up_on_the_measured_round_trip_with_its_cause(on_path):
    target, attempt = on_path
    r = attempt("block-udp-4500")
    assert not r.connected and r.cause == "udp-4500-blocked", r.detail
    allowance = r.timing["derived: give up an unanswered request after (s)"]
    assert r.timing["measured: round trip from"] == "this attempt's IKE_SA_INIT"
    assert allowance == target.give_up.after(r.timing["measured: round trip (ms)"] / 1000)
    assert r.timing["gave up"].startswith("IKE_AUTH request #1")
    # charon's own give-up would take ~4.5 s; the suite's the allowance plus the exchange before it
    assert allowance <= r.elapsed_ms / 1000 < allowance + 0.5
    # the differential test ran beside it, and its SAs are known so that captures can leave them out
    assert r.reachability and r.reachability["verdict"] == "udp-4500-blocked"
    assert len(r.differential_spis()) == 3


def test_a_silent_ike_sa_init_takes_its_round_trip_from_the_differential_test(on_path):
    _, attempt = on_path
    r = attempt("block-udp-500")
    assert not r.connected and r.cause == "udp-500-blocked", r.detail
    assert r.timing["measured: round trip from"] == "the differential test's answers"
    assert r.timing["gave up"].startswith("IKE_SA_INIT request #0")
    assert r.elapsed_ms / 1000 < r.timing["derived: give up an unanswered request after (s)"] + 0.5


def test_a_path_with_a_small_mtu_still_connects_without_being_given_up(on_path):
    _, attempt = on_path
    r = attempt("mtu:1200")
    assert r.connected, r.detail
    assert r.timing["gave up"].startswith("no")


def test_a_lab_gateway_forgets_the_half_open_sas_of_earlier_cells(on_path, tmp_path):
    target, attempt = on_path
    ledger = Ledger(tmp_path / "half-open.json", threshold=5)
    gw = target.gateways[0]
    r = attempt("block-udp-4500", ledger)
    assert r.half_open["left"] and ledger.pending(target.client.netns, gw.address) == 1
    assert gw.half_open_sas() >= 1
    target.reset_path_state(ledger)
    assert gw.half_open_sas() == 0 and ledger.pending(target.client.netns, gw.address) == 0
