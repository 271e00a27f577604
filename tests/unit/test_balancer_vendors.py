"""Vendor balancer configuration (F5, NetScaler, Kemp): rendered from the lab's lb.yml and the
example RRAS+NPS inventory, read back from the artefact, and judged per AOVPN-LB requirement;
each classic mistake, written into the artefact, fails the requirement it breaks."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from aovpn_lab import cli, inventory, paths
from aovpn_lab.balancer import spec as model
from aovpn_lab.balancer.vendors import checks, f5, kemp, netscaler, vendors
from aovpn_lab.balancer.vendors.artefact import Artefact
from aovpn_lab.errors import InventoryError
from aovpn_lab.tool import run

LB_YML = paths.INVENTORIES / "lab" / "host_vars" / "lb.yml"
EXAMPLE = paths.INVENTORIES / "examples" / "rras-nps-f5.yml"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", paths.ROOT / ".venv")) / "bin"


def lab_spec() -> model.BalancerSpec:
    return model.from_mapping(yaml.safe_load(LB_YML.read_text())["load_balancer"], where=str(LB_YML))


def example_host():
    return inventory.load(EXAMPLE).host("bigip1")


def failed(findings, rid=None) -> list[str]:
    return [f.requirement for f in findings if f.severity == "fail" and (rid is None or f.requirement == rid)]


def judge(vendor: str, artefact: Artefact, spec=None):
    return checks.check(vendors()[vendor].read(artefact), spec)


SOURCES = {"lab lb.yml": lambda: (lab_spec(), {}),
           "example inventory": lambda: (model.from_host(example_host()), dict(example_host().vars))}


# ------------------------------------------------------------------------------ the spec

def test_lab_lb_yml_reads_into_a_spec_with_its_own_values():
    spec = lab_spec()
    assert spec.vip == "203.0.113.100"
    assert [(b.name, b.address) for b in spec.backends] == [("gw1", "198.18.1.10"), ("gw2", "198.18.1.18")]
    assert spec.ike_ports == (500, 4500)
    assert (spec.persistence_timeout, spec.udp_idle_timeout) == (28800, 300)
    assert spec.health_monitor.kind == "ike" and spec.sstp.monitor.expect == 401


def test_a_vip_outside_the_lab_ranges_is_rendered_for_a_real_deployment():
    data = yaml.safe_load(LB_YML.read_text())["load_balancer"] | {"vip": "8.8.4.4"}
    assert model.from_mapping(data).vip == "8.8.4.4"


@pytest.mark.parametrize("change, key, fix", [
    (lambda d: d.pop("vip"), "load_balancer.vip: missing", "vip: 203.0.113.10"),
    (lambda d: d.pop("backends"), "load_balancer.backends: missing", "backends: [{name: rras1"),
    (lambda d: d.update(backends=[{"name": "gw1"}]), "load_balancer.backends[0].address: missing", "address"),
    (lambda d: d.update(persistence_timeout="8h"), "load_balancer.persistence_timeout: expected a positive whole number",
     "no quotes, no unit"),
    (lambda d: d.update(udp_idle_timeout=True), "load_balancer.udp_idle_timeout: expected a positive whole number", "300"),
    (lambda d: d.update(vip="vpn.example.com"), "load_balancer.vip: 'vpn.example.com' is not an IP address", "vip:"),
])
def test_bad_input_names_the_file_the_key_and_the_fix(change, key, fix):
    data = yaml.safe_load(LB_YML.read_text())["load_balancer"]
    change(data)
    with pytest.raises(InventoryError) as exc:
        model.from_mapping(data, where=str(LB_YML))
    assert str(exc.value).startswith(f"{LB_YML}: {key}")
    assert fix in exc.value.hint


def test_the_example_inventory_is_readable_and_uses_documentation_addresses_only():
    inv = inventory.load(EXAMPLE)
    spec = model.from_host(inv.host("bigip1"))
    import ipaddress
    doc = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
    addresses = [spec.vip] + [b.address for b in spec.backends] + [h.address for h in inv.hosts.values() if h.address]
    assert addresses and all(any(ipaddress.ip_address(a) in n for n in doc) for a in addresses)
    assert "password" not in inv.host("bigip1").var("f5_provider")


# ------------------------------------------------------------------------------ every vendor, as rendered

@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("vendor", ["f5", "netscaler", "kemp"])
def test_each_vendor_rendering_passes_affinity_nosnat_rekey_and_sstp(vendor, source):
    spec, host_vars = SOURCES[source]()
    findings = judge(vendor, vendors()[vendor].render(spec, host_vars), spec)
    assert failed(findings) == []
    passed = {f.requirement for f in findings if f.severity == "pass"}
    assert passed == {checks.AFFINITY, checks.NOSNAT, checks.REKEY, checks.SSTP}
    # no product monitors IKE itself: said as a warning on both IKE services, never as a pass
    assert [f.requirement for f in findings if f.severity == "warn"] == [checks.HEALTH, checks.HEALTH]


@pytest.mark.parametrize("vendor", ["f5", "netscaler", "kemp"])
def test_the_values_read_back_are_the_inventory_values(vendor):
    spec = model.from_host(example_host())
    facts = vendors()[vendor].read(vendors()[vendor].render(spec, dict(example_host().vars)))
    assert facts.vip == "203.0.113.10"
    for port in (500, 4500):
        svc = facts.service("udp", port)
        assert sorted(svc.members) == ["198.51.100.11", "198.51.100.12"]
        assert svc.persistence.timeout == 28800 and svc.idle_timeout == 300
        assert svc.persistence.shared >= {500, 4500}
    sstp = facts.service("tcp", 443)
    assert sstp.monitors[0].path == model.SSTP_PATH and "401" in sstp.monitors[0].expect


def test_netscaler_cli_and_nitro_calls_say_the_same():
    a = netscaler.render(lab_spec())
    assert netscaler.read(a) == netscaler.read_nitro(a)
    paths_used = {c["path"] for c in json.loads(a.files[netscaler.NITRO])}
    assert {"/nitro/v1/config/lbgroup", "/nitro/v1/config/lbgroup_lbvserver_binding",
            "/nitro/v1/config/nsmode?action=enable"} <= paths_used


def test_netscaler_minutes_are_rounded_up_so_persistence_never_ends_early():
    spec = replace(lab_spec(), persistence_timeout=28801)
    facts = netscaler.read(netscaler.render(spec))
    assert facts.service("udp", 500).persistence.timeout == 28860


def test_the_f5_rendering_never_contains_the_provider_or_its_password(monkeypatch):
    monkeypatch.setenv("F5_PASSWORD", "not-to-be-seen-9")
    host = example_host()
    text = f5.render(model.from_host(host), dict(host.vars) | {"f5_password": "vaulted-secret-7"}).files[f5.TASKS]
    assert "not-to-be-seen-9" not in text and "vaulted-secret-7" not in text
    tasks = yaml.safe_load(text)
    assert tasks and all("provider" not in t["args"] and "password" not in t["args"] for t in tasks)


def test_f5_tasks_use_only_options_the_collection_documents():
    tasks = f5.resolve(lab_spec(), {})
    modules = sorted({f5.COLLECTION + t["module"] for t in tasks})
    r = run([str(VENV_BIN / "ansible-doc"), "--json", "-t", "module", *modules], step="read module docs",
            timeout=120).check()
    docs = json.loads(r.stdout)
    for t in tasks:
        options = docs[f5.COLLECTION + t["module"]]["doc"]["options"]
        assert set(t["args"]) <= set(options), (t["name"], set(t["args"]) - set(options))


def test_the_f5_playbook_passes_ansible_syntax_check_with_the_example_inventory():
    r = run([str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", str(EXAMPLE),
             str(paths.PLAYBOOKS / "balancer-f5.yml")], step="syntax-check", timeout=120)
    assert r.ok, r.message()


# ------------------------------------------------------------------------------ mistakes fail their requirement

def _edit_f5(edit) -> Artefact:
    tasks = yaml.safe_load(f5.render(lab_spec()).files[f5.TASKS])
    edit(tasks)
    return Artefact("f5", {f5.TASKS: yaml.safe_dump(tasks)})


def _args(tasks, module):
    return [t["args"] for t in tasks if t["module"] == module]


def test_f5_snat_automap_fails_nosnat():
    a = _edit_f5(lambda ts: _args(ts, "bigip_virtual_server")[1].update(snat="automap"))
    assert failed(judge("f5", a), checks.NOSNAT) == [checks.NOSNAT]
    assert failed(judge("f5", a)) == [checks.NOSNAT]


def test_f5_without_match_across_services_fails_affinity():
    a = _edit_f5(lambda ts: _args(ts, "bigip_profile_persistence_src_addr")[0].update(match_across_services=False))
    assert failed(judge("f5", a)) == [checks.AFFINITY]


def test_f5_datagram_load_balancing_fails_affinity():
    a = _edit_f5(lambda ts: _args(ts, "bigip_profile_udp")[0].update(datagram_load_balancing=True))
    assert set(failed(judge("f5", a))) == {checks.AFFINITY}


def test_f5_receive_string_other_than_401_fails_sstp():
    a = _edit_f5(lambda ts: _args(ts, "bigip_monitor_https")[0].update(receive="HTTP/1.1 200"))
    assert failed(judge("f5", a)) == [checks.SSTP]


def test_f5_default_udp_profile_idles_out_before_rras_and_fails_rekey():
    def edit(ts):
        for vs in _args(ts, "bigip_virtual_server"):
            vs["profiles"] = ["/Common/udp"] if vs["ip_protocol"] == "udp" else vs["profiles"]
    findings = judge("f5", _edit_f5(edit))
    assert set(failed(findings)) == {checks.REKEY}
    assert any("60 s (product default)" in f.message for f in findings if f.severity == "fail")


def test_f5_pool_without_monitor_fails_health():
    a = _edit_f5(lambda ts: [p.update(monitors=[]) for p in _args(ts, "bigip_pool") if p["name"].endswith("_4500")])
    assert failed(judge("f5", a)) == [checks.HEALTH]


@pytest.mark.parametrize("vendor", ["f5", "netscaler", "kemp"])
def test_a_persistence_timeout_shorter_than_the_sa_lifetime_fails_rekey(vendor):
    spec = replace(lab_spec(), persistence_timeout=3600)
    findings = judge(vendor, vendors()[vendor].render(spec), spec)
    assert set(failed(findings)) == {checks.REKEY}
    assert all("28800" in f.message for f in findings if f.severity == "fail")


@pytest.mark.parametrize("vendor", ["f5", "netscaler", "kemp"])
def test_a_udp_idle_timeout_shorter_than_rras_idle_time_out_fails_rekey(vendor):
    spec = replace(lab_spec(), udp_idle_timeout=60)
    assert set(failed(judge(vendor, vendors()[vendor].render(spec), spec))) == {checks.REKEY}


@pytest.mark.parametrize("vendor", ["f5", "netscaler", "kemp"])
def test_without_udp_4500_affinity_fails(vendor):
    spec = replace(lab_spec(), ike_ports=(500,))
    assert checks.AFFINITY in failed(judge(vendor, vendors()[vendor].render(spec), spec))


def _edit_cli(edit) -> Artefact:
    a = netscaler.render(lab_spec())
    return Artefact("netscaler", {**a.files, netscaler.CLI: edit(a.files[netscaler.CLI])})


def test_netscaler_without_the_persistency_group_and_a_hash_per_vserver_fails_affinity():
    def edit(text):
        lines = [line for line in text.splitlines() if "lb group" not in line]
        return "\n".join(line.replace("-lbMethod LEASTCONNECTION", "-lbMethod SOURCEIPHASH")
                         if "UDP" in line else line for line in lines)
    findings = judge("netscaler", _edit_cli(edit))
    assert set(failed(findings)) == {checks.AFFINITY}
    messages = [f.message for f in findings if f.severity == "fail"]
    assert any("persistence hash" in m for m in messages) and any("separate persistence records" in m for m in messages)


def test_netscaler_service_without_usip_fails_nosnat():
    def edit(text):
        return text.replace("enable ns mode USIP\n", "").replace(
            "add service aovpn-gw2-udp4500 gw2 UDP 4500 -usip YES", "add service aovpn-gw2-udp4500 gw2 UDP 4500 -usip NO")
    assert failed(judge("netscaler", _edit_cli(edit))) == [checks.NOSNAT]


def test_netscaler_sstp_monitor_expecting_200_fails_sstp():
    assert failed(judge("netscaler", _edit_cli(lambda t: t.replace("-respCode 401", "-respCode 200")))) == [checks.SSTP]


def test_netscaler_nitro_calls_read_back_the_same_mistake():
    a = netscaler.render(lab_spec())
    calls = [c for c in json.loads(a.files[netscaler.NITRO]) if "lbgroup" not in c["path"]]
    assert failed(checks.check(netscaler.read_nitro(Artefact("netscaler", {**a.files, netscaler.NITRO: json.dumps(calls)})),
                               None)) == [checks.AFFINITY] * 3  # no persistence on 500, none on 4500, none shared


def _edit_kemp(edit) -> Artefact:
    a = kemp.render(lab_spec())
    calls = json.loads(a.files[kemp.CALLS])
    edit(calls)
    return Artefact("kemp", {**a.files, kemp.CALLS: json.dumps(calls)})


def test_kemp_without_port_following_fails_affinity():
    def edit(calls):
        calls[:] = [c for c in calls if "FollowVSID" not in c["params"]]
    a = _edit_kemp(edit)
    assert failed(judge("kemp", a)) == [checks.AFFINITY]


def test_kemp_without_transparency_fails_nosnat():
    a = _edit_kemp(lambda cs: [c["params"].update(Transparent=0) for c in cs if c["params"].get("port") == 500
                               and c["path"].endswith("addvs")])
    assert failed(judge("kemp", a)) == [checks.NOSNAT]


def test_kemp_sstp_check_without_401_fails_sstp():
    a = _edit_kemp(lambda cs: [c["params"].pop("CheckCodes") for c in cs if c["params"].get("CheckType") == "https"])
    assert failed(judge("kemp", a)) == [checks.SSTP]


# ------------------------------------------------------------------------------ the command

def test_lb_render_writes_every_artefact_and_exits_0_on_the_example(tmp_path: Path, capsys):
    rc = cli.main(["lb", "render", "--vendor", "all", "--inventory", str(EXAMPLE), "--out", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in out["files"]) == [
        "f5/tasks.yml", "kemp/kemp-calls.json", "kemp/kemp.txt", "netscaler/netscaler.conf", "netscaler/nitro.json"]
    assert {f["vendor"] for f in out["findings"]} == {"f5", "netscaler", "kemp"}
    # what was written reads back into the same verdicts
    assert failed(checks.check(f5.read(Artefact.read("f5", tmp_path / "f5", f5.FILES)), None)) == []


def test_lb_render_exits_1_when_a_finding_fails(tmp_path: Path, capsys):
    text = EXAMPLE.read_text().replace("persistence_timeout: 28800", "persistence_timeout: 600")
    bad = tmp_path / "inv.yml"
    bad.write_text(text)
    rc = cli.main(["lb", "render", "--vendor", "kemp", "-i", str(bad), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL  AOVPN-LB-REKEY-001" in out


def test_lb_render_without_a_balancer_host_says_how_to_name_one(capsys):
    rc = cli.main(["--inventory", str(paths.INVENTORIES / "examples" / "external-gateway.yml"), "lb", "render", "--vendor", "f5"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "define load_balancer" in err and "--host" in err
