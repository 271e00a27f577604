"""IKEv2 and SSTP through a load balancer in front of two gateways, with a crowd of real
clients (each its own IKE SA and machine certificate): cross-port affinity, the address
the gateways see, health monitors, failover, rekeys and DPD. What each mode must show and
why: profiles/load-balancing.yml; the requirements: AOVPN-LB-* in requirements.yml.

Every figure in a verdict is measured in the run (client and gateway SA lists, captures
on both sides), never taken from the mode's name."""
from __future__ import annotations

import pytest

from aovpn_lab.pytest_plugin import target_of

# One balancer, one crowd, one mode at a time: under --workers one worker runs all of the
# IKEv2 cells. The SSTP cells (HAProxy's TCP listeners, SoftEther and the reference server
# on the gateways, client addresses of their own) share nothing those cells change - the
# UDP mode, the live gateways, charon - so they are a group of their own (their marks are
# closer than this one, and pytest-xdist takes the closest).
pytestmark = pytest.mark.xdist_group("load-balancer")
SSTP_GROUP = pytest.mark.xdist_group("load-balancer-sstp")


def _balancer(config):
    """The lab balancer, or None where the inventory names none (or is not a lab)."""
    inv = target_of(config).inventory
    if inv.lab is None or not inv.group("load_balancers"):
        return None
    from aovpn_lab.balancer.lab import LabBalancer
    return LabBalancer.from_inventory(inv)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lb_mode" in metafunc.fixturenames:
        lab = _balancer(metafunc.config)
        modes = list(lab.config.modes) if lab else []
        configured = lab.config.mode if lab else None
        metafunc.parametrize("lb_mode", modes, ids=[
            f"{m}-balancer-{'as-configured' if m == configured else 'known-mistake'}" for m in modes])
    if "health_case" in metafunc.fixturenames:
        from aovpn_lab.balancer.measure import settings
        health = settings()["health"]
        cases = [(c, f) for c in health["checks"] for f in health["failures"]] if _balancer(metafunc.config) else []
        metafunc.parametrize("health_case", cases, ids=[f"{c}-monitor-with-charon-{f}" for c, f in cases])


def _lab_or_skip(config):
    from aovpn_lab.balancer.crowd import Crowd, CrowdUnavailable
    lab = _balancer(config)
    if lab is None:
        pytest.skip("not-applicable: the inventory names no load balancer (group load_balancers) in an embedded lab")
    try:
        Crowd.for_lab(lab.inventory)
    except CrowdUnavailable as exc:
        pytest.skip(f"not-applicable: {exc}")
    return lab


@pytest.fixture(scope="session")
def lab_balancer(request):
    lab = _lab_or_skip(request.config)
    yield lab
    lab.switch(lab.config.mode, [b.name for b in lab.config.backends])  # leave it as provisioned
    lab.clear_gateways()


@pytest.fixture(scope="session")
def sstp_balancer(request):
    """The balancer for the SSTP cells: they change neither its mode nor its live gateways,
    so nothing is put back (on another worker, that would change them under the IKEv2 cells)."""
    return _lab_or_skip(request.config)


@pytest.fixture(scope="session")
def crowd_runs():
    """One crowd run per mode, shared by the cells that judge it (affinity, source address)."""
    return {}


def _run(lab, mode, runs, cell):
    from aovpn_lab.balancer.measure import crowd_run, settings
    if mode not in runs:
        data = settings()
        runs[mode] = crowd_run(lab, mode, count=int(data.get("clients") or lab.config.crowd.count),
                               captures=cell.artifacts, concurrency=int(data["concurrency"]))
    return runs[mode]


def test_ikev2_through_the_balancer_keeps_each_clients_udp_500_and_4500_on_one_gateway(
        lb_mode, lab_balancer, crowd_runs, edge, cell):
    from aovpn_lab.balancer.judge import judge_affinity
    cell.place(protocol="load balancer", profile="UDP 500/4500 affinity", gateway=lb_mode)
    from aovpn_lab.balancer.paths import split_clients
    from aovpn_lab.conditions.model import OPEN
    edge.apply(OPEN)
    run = _run(lab_balancer, lb_mode, crowd_runs, cell)
    split, per_client = split_clients(run)
    cell.conclude(judge_affinity(run, split, lab_balancer.config.mode, per_client))


def test_gateways_see_each_clients_own_address(lb_mode, lab_balancer, crowd_runs, edge, cell):
    cell.place(protocol="load balancer", profile="client address kept", gateway=lb_mode)
    from aovpn_lab.balancer.judge import judge_source_addresses
    from aovpn_lab.conditions.model import OPEN
    edge.apply(OPEN)
    run = _run(lab_balancer, lb_mode, crowd_runs, cell)
    cell.conclude(judge_source_addresses(run, lab_balancer.config.mode))


def test_failover_moves_clients_to_the_remaining_gateway_and_spreads_again(lab_balancer, edge, cell):
    cell.place(protocol="load balancer", profile="failover", gateway="gw1 stopped")
    from aovpn_lab.balancer.scenarios import failover_cell
    from aovpn_lab.conditions.model import OPEN
    edge.apply(OPEN)
    cell.conclude(failover_cell(lab_balancer, artifacts=cell.artifacts))


@pytest.mark.parametrize("mode", ["affinity", "snat-proxy"])
def test_rekey_and_dpd_through_the_balancer_keep_the_sas(mode, lab_balancer, edge, cell):
    cell.place(protocol="load balancer", profile="rekey and DPD", gateway=mode)
    from aovpn_lab.balancer.scenarios import rekey_cell
    from aovpn_lab.conditions.model import OPEN
    if mode not in lab_balancer.config.modes:
        pytest.skip(f"not-applicable: the inventory's balancer has no mode {mode}")
    edge.apply(OPEN)
    cell.conclude(rekey_cell(lab_balancer, mode))


# Last of the group: under --workers the rest of the matrix is done by then, and these
# cells' timings (the monitor's rounds, the give-ups of clients sent to a hung gateway)
# stretch the most on a busy CPU (about 11 s alone, 18 s beside three other workers).
def test_health_monitor_takes_a_dead_gateway_out(health_case, lab_balancer, edge, cell):
    cell.place(protocol="load balancer", profile="health monitor", gateway="-".join(health_case))
    from aovpn_lab.balancer.scenarios import health_monitor_cell
    from aovpn_lab.conditions.model import OPEN
    edge.apply(OPEN)
    check, failure = health_case
    cell.conclude(health_monitor_cell(lab_balancer, check, failure))


@SSTP_GROUP
def test_sstp_through_the_balancer_stays_on_one_server_and_a_hung_server_is_taken_out(
        sstp_balancer, target, edge, cell):
    from aovpn_lab.balancer.scenarios import sstp_cell
    cell.place(protocol="load balancer", profile="SSTP persistence", gateway="hung server")
    from aovpn_lab.conditions.model import OPEN
    if not target.sstp_gateways:
        pytest.skip("not-applicable: the inventory names no SSTP gateway (group sstp_gateways) for the credentials")
    edge.apply(OPEN)
    cell.conclude(sstp_cell(sstp_balancer, target.sstp_gateways[0]))


@SSTP_GROUP
@pytest.mark.parametrize("offload_case", ["server-configured-with-the-balancers-certificate-hash",
                                          "server-left-with-its-own-certificate-hash"])
def test_sstp_behind_a_tls_offloading_balancer_needs_the_balancers_certificate_hash(
        offload_case, sstp_balancer, target, edge, cell):
    cell.place(protocol="load balancer", profile="SSTP TLS offload", gateway="balancer's hash" if "balancers" in offload_case else "own hash")
    from aovpn_lab.balancer.scenarios import tls_offload_cell
    from aovpn_lab.conditions.model import OPEN
    if not target.sstp_gateways:
        pytest.skip("not-applicable: the inventory names no SSTP gateway (group sstp_gateways) for the credentials")
    edge.apply(OPEN)
    cell.conclude(tls_offload_cell(sstp_balancer, target.sstp_gateways[0], offload_case))
