"""lab up / status / down: idempotence, refusals, and nothing half-created left behind."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from labcli import CLI, LAB_INVENTORY, aovpn, namespaces

pytestmark = pytest.mark.lab


def test_status_reports_every_host_and_service_up(lab):
    st = aovpn("lab", "status", "--json")
    assert st.returncode == 0, st.stdout
    data = json.loads(st.stdout)
    assert data["up"] is True
    assert set(data["hosts"]) == {"client", "edge", "gw1", "probe", "rad", "gw2", "lb", "client2", "client3",
                                  "client4", "tester1", "tester2"}
    assert all(data["hosts"][c]["charon"] for c in ("client", "client2", "client3", "client4"))
    assert data["hosts"]["gw1"]["charon"] and data["hosts"]["edge"]["ruleset"]
    assert data["hosts"]["gw1"]["softether"] and data["hosts"]["rad"]["freeradius"]
    assert data["hosts"]["gw2"]["charon"] and data["hosts"]["gw2"]["softether"] and data["hosts"]["lb"]["haproxy"]


def test_a_second_lab_up_changes_nothing(lab):
    again = aovpn("lab", "up", "--quiet", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changed"] == 0


def test_a_second_lab_with_the_same_management_network_is_refused_and_creates_nothing(lab, tmp_path):
    # An inventory of its own names its own prefix and network: it is not moved elsewhere
    # (only `--prefix` beside a lab is; test_cells_in_parallel.py), so the overlap is refused.
    other = tmp_path / "lab"
    shutil.copytree(LAB_INVENTORY, other)
    f = other / "group_vars" / "all.yml"
    f.write_text(f.read_text().replace("lab_prefix: aovpn", "lab_prefix: aovpx"))
    before = namespaces()
    r = aovpn("--inventory", str(other), "lab", "up")
    assert r.returncode == 2
    assert "management network 198.18.0.0/24 overlaps" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert namespaces() == before


def test_a_malformed_inventory_is_named_and_nothing_is_created(tmp_path):
    bad = tmp_path / "lab"
    shutil.copytree(LAB_INVENTORY, bad)
    (bad / "host_vars" / "edge.yml").write_text("condition_driver: [unclosed\n")
    before = namespaces()
    r = aovpn("--inventory", str(bad), "--prefix", "aovbad", "lab", "up")
    assert r.returncode == 2
    assert "host_vars/edge.yml" in r.stderr and "not valid YAML" in r.stderr
    assert namespaces() == before


def test_not_root_is_refused_with_one_line(tmp_path):
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CLI, "--prefix", "aovnr",
                        "lab", "up"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "needs root" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_lab_down_of_a_lab_that_is_not_up_is_harmless():
    r = aovpn("--prefix", "aovnone", "lab", "down", "--quiet")
    assert r.returncode == 0, r.stderr
