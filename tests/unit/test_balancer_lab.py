"""The lab balancer's inventory checks, its rendered rules and the load-balancing verdicts
(from synthetic measurements: the live cells run them on real ones)."""
from __future__ import annotations

import copy

import pytest
import yaml

from aovpn_lab import paths
from aovpn_lab.balancer.config import DNAT_MODES, BalancerConfig
from aovpn_lab.balancer.crowd import Attempt
from aovpn_lab.balancer.judge import judge_affinity, judge_source_addresses
from aovpn_lab.balancer.measure import CrowdRun
from aovpn_lab.balancer.switch import JHASH_SEED, TEMPLATES
from aovpn_lab.errors import InventoryError
from aovpn_lab.service import render

LB = yaml.safe_load((paths.ROOT / "inventories/lab/host_vars/lb.yml").read_text())["load_balancer"]


def config(**changes):
    data = copy.deepcopy(LB)
    data.update(changes)
    return BalancerConfig.from_vars(data, where="lb.yml")


def test_the_lab_inventory_describes_a_valid_balancer():
    c = config()
    assert c.mode == "affinity" and [b.name for b in c.backends] == ["gw1", "gw2"]
    assert c.crowd is not None and len(c.crowd.addresses()) == 50


@pytest.mark.parametrize("changes, key", [
    ({"mode": "round-robin"}, "load_balancer.modes"),
    ({"modes": ["affinity", "magic"]}, "load_balancer.modes"),
    ({"vip": "10.1.2.3"}, "load_balancer.vip"),
    ({"vip": "not-an-address"}, "load_balancer.vip"),
    ({"clients": {"count": 300, "max": 300, "range": "198.18.16.0/24"}}, "load_balancer.clients.max"),
    ({"clients": {"count": 60, "max": 50, "range": "198.18.16.0/20"}}, "load_balancer.clients.max"),
    ({"udp_idle_timeout": "long"}, "load_balancer.udp_idle_timeout"),
])
def test_bad_balancer_input_is_one_line_naming_the_key_and_the_fix(changes, key):
    with pytest.raises(InventoryError) as exc:
        config(**changes)
    assert key in str(exc.value) and exc.value.hint
    assert "\n" not in str(exc.value)


def test_a_mode_the_inventory_does_not_define_is_refused_by_name():
    c = config(modes=["affinity"])
    with pytest.raises(InventoryError, match="'per-flow' is not in load_balancer.modes"):
        c.check_mode("per-flow")


def rules(mode, live=("gw1", "gw2")):
    c = config()
    return render(f"{TEMPLATES}/balancer.nft.j2", ansible_managed="t", inventory_hostname="lb", mode=mode,
                  live=[c.backend(n).__dict__ for n in live], vip=c.vip, ike_ports=list(c.ike_ports),
                  dnat_modes=DNAT_MODES, jhash_seed=JHASH_SEED, udp_idle_timeout=c.udp_idle_timeout)


def test_affinity_hashes_the_source_address_for_both_ports_with_a_fixed_seed():
    text = rules("affinity")
    assert "udp dport { 500, 4500 }" in text
    assert f"jhash ip saddr mod 2 seed 0x{JHASH_SEED} map {{ 0 : 198.18.1.10, 1 : 198.18.1.18 }}" in text
    assert "snat" not in text and "masquerade" not in text


def test_per_flow_picks_at_random_for_every_new_flow():
    assert "numgen random mod 2 map" in rules("per-flow")


def test_without_a_live_gateway_ike_is_dropped_and_counted():
    text = rules("affinity", live=())
    assert "ike_no_backend drop" in text and "dnat" not in text.split("chain prerouting")[1]


def test_proxy_modes_leave_no_nat_rule():
    assert "dnat to" not in rules("snat-proxy")


def test_nginx_consistent_hash_only_in_its_mode():
    c = config()
    def nginx(mode):
        return render(f"{TEMPLATES}/nginx.conf.j2", ansible_managed="t", inventory_hostname="lb", mode=mode,
                      live=[b.__dict__ for b in c.backends], vip=c.vip, ike_ports=[500, 4500], state="/s",
                      ready_port=8081, udp_idle_timeout=300, dnat_modes=DNAT_MODES, jhash_seed=JHASH_SEED)
    assert "hash $remote_addr consistent;" in nginx("snat-proxy-consistent")
    plain = nginx("snat-proxy")
    assert "hash $remote_addr;" in plain and "consistent;" not in plain
    assert plain.count("server 198.18.1.10:") == 2 and "proxy_timeout 300s;" in plain


def crowd_run(mode, n=50, failed=(), on_gw1=25, sources=None):
    attempts = {f"198.18.16.{i}": Attempt(f"198.18.16.{i}", f"crowd-{i}", f"198.18.16.{i}" not in failed, 0.05)
                for i in range(1, n + 1)}
    served = {}
    for i, a in enumerate(a for a in attempts if attempts[a].connected):
        served[a] = "gw1" if i < on_gw1 else "gw2"
    gsas = {"gw1": [], "gw2": []}
    for a, gw in served.items():
        gsas[gw].append({"state": "ESTABLISHED", "remote_host": (sources or {}).get(gw, a)})
    return CrowdRun(mode=mode, attempts=attempts, client_sas={}, gateway_sas=gsas, served_by=served, seconds=1.0)


def test_the_configured_mode_passes_with_no_splits_and_an_even_spread():
    v = judge_affinity(crowd_run("affinity"), [], "affinity", {})
    assert v.state == "pass", v.reason
    assert "50 of 50 connected, 0 split" in v.reason


def test_the_configured_mode_fails_when_clients_split():
    failed = [f"198.18.16.{i}" for i in range(1, 11)]
    v = judge_affinity(crowd_run("affinity", failed=failed, on_gw1=20), failed, "affinity", {})
    assert v.state == "fail" and v.observed == "splits-clients"
    assert "Match Across Services" in v.fix


def test_an_uneven_spread_fails_the_configured_mode():
    v = judge_affinity(crowd_run("affinity", on_gw1=48), [], "affinity", {})
    assert v.state == "fail" and v.observed == "uneven-spread"


def test_a_known_mistake_passes_only_when_its_splits_are_measured():
    failed = [f"198.18.16.{i}" for i in range(1, 26)]
    caught = judge_affinity(crowd_run("per-flow", failed=failed, on_gw1=12), failed, "affinity", {})
    assert caught.state == "pass" and "25 split (50 %)" in caught.reason
    missed = judge_affinity(crowd_run("per-flow"), [], "affinity", {})
    assert missed.state == "fail"


def test_source_translation_is_flagged_with_the_ikeext_per_source_limit():
    run = crowd_run("snat-proxy", sources={"gw1": "198.18.1.9", "gw2": "198.18.1.17"})
    v = judge_source_addresses(run, "affinity")
    assert v.state == "pass" and v.observed == "balancer-address"   # the mistake is caught
    assert "25 established SAs share one source address" in v.reason and "IkeNumEstablishedForInitialQuery" in v.reason
    as_configured = judge_source_addresses(run, "snat-proxy")
    assert as_configured.state == "fail" and "SNAT None" in as_configured.fix


def test_client_addresses_pass_as_configured():
    assert judge_source_addresses(crowd_run("affinity"), "affinity").state == "pass"


def test_clients_that_never_got_to_ike_auth_are_counted_apart_from_splits():
    failed = [f"198.18.16.{i}" for i in range(1, 21)]
    run = crowd_run("snat-proxy-consistent", failed=failed, on_gw1=15)
    run.paths_by_client = {a: {"UDP 500 reached": ["gw1"], "UDP 4500 reached": [] if a in failed[5:] else ["gw2"]}
                           for a in run.attempts}
    v = judge_affinity(run, failed[:5], "affinity", {})
    assert v.state == "pass" and "5 split (10 %), 15 more failed before IKE_AUTH" in v.reason
    assert "spread {'gw1': 15, 'gw2': 15}" in v.reason


def test_the_switch_refuses_a_mode_the_inventory_does_not_define(tmp_path, capsys):
    import json
    from aovpn_lab.balancer import switch
    (tmp_path / "balancer.json").write_text(json.dumps({"inventory_hostname": "lb", "load_balancer": LB}))
    assert switch.main(["--state", str(tmp_path), "round-robin"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["failed"] is True
    assert err.count("\n") == 1 and "'round-robin' is not in load_balancer.modes" in err
    assert not (tmp_path / "balancer.nft").exists()   # nothing was applied


def test_the_switch_without_provisioning_names_the_fix(tmp_path, capsys):
    from aovpn_lab.balancer import switch
    assert switch.main(["--state", str(tmp_path / "nowhere")]) == 1
    assert "aovpn-lab lab up" in capsys.readouterr().err


def test_a_crowd_without_certificates_in_the_gateways_profile_is_unavailable_not_failed(tmp_path):
    import dataclasses
    from aovpn_lab import inventory
    from aovpn_lab.balancer.crowd import Crowd, CrowdUnavailable
    inv = inventory.load(paths.ROOT / "inventories" / "lab")
    inv = dataclasses.replace(inv, lab=dataclasses.replace(inv.lab, state_root=tmp_path))
    with pytest.raises(CrowdUnavailable, match="no crowd certificates"):
        Crowd.for_lab(inv)
    pki = tmp_path / "pki" / "small"
    pki.mkdir(parents=True)
    for i in (1, 50):
        (pki / f"crowd-{i}.example.net.cert.pem").write_text("")
    crowd = Crowd.for_lab(inv)
    assert len(crowd.addresses) == 50 and crowd.addresses[0] == "198.18.16.1" and crowd.vip == "203.0.113.100"
    with pytest.raises(InventoryError, match="clients.max is 200"):
        Crowd.for_lab(inv, count=201)
