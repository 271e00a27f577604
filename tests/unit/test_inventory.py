"""The inventory loader: the lab's own inventory loads; every malformed input is named."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from aovpn_lab import inventory, paths
from aovpn_lab.errors import InventoryError

LAB = paths.INVENTORIES / "lab"


@pytest.fixture
def lab_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "lab"
    shutil.copytree(LAB, dst)
    return dst


def test_the_embedded_lab_inventory_describes_its_hosts_and_links():
    inv = inventory.load(LAB)
    assert inv.lab is not None
    assert inv.lab.prefix == "aovpn"
    assert set(inv.lab.hosts) == {"client", "edge", "gw1", "probe", "rad", "gw2", "lb", "client2", "client3",
                                  "client4", "tester1", "tester2"}
    assert [l.name for l in inv.lab.links] == ["lan", "lan2", "c2", "c3", "c4", "wan", "lbwan", "lbgw1", "lbgw2",
                                               "corp"]
    assert [h.name for h in inv.group("ikev2_clients")] == ["client", "client2", "client3", "client4"]
    assert inv.host("client3").address == "198.18.0.19"  # numbered in the management network
    assert [h.name for h in inv.group("ikev2_gateways")] == ["gw1"]
    assert [h.name for h in inv.group("balanced_gateways")] == ["gw1", "gw2"]
    assert [h.name for h in inv.group("load_balancers")] == ["lb"]
    assert inv.host("gw1").var("ikev2_gateway")["identity"] == "vpn.example.net"


def test_host_vars_override_group_vars_and_record_where_they_came_from():
    inv = inventory.load(LAB)
    gw = inv.host("gw1")
    assert gw.where("ikev2_gateway").endswith("host_vars/gw1.yml")
    assert gw.where("lab_prefix").endswith("group_vars/all.yml")


def test_prefix_override_renames_every_namespace():
    inv = inventory.load(LAB, prefix="labb")
    assert inv.lab.prefix == "labb"
    assert inv.lab.namespace("gw1") == "labb-gw1"
    assert inv.lab.bridge == "labb-br"
    assert inv.lab.state_dir.name == "labb"


def test_invalid_yaml_names_file_and_line(lab_copy: Path):
    (lab_copy / "host_vars" / "gw1.yml").write_text("ikev2_gateway:\n  identity: [unclosed\n")
    with pytest.raises(InventoryError) as exc:
        inventory.load(lab_copy)
    assert "host_vars/gw1.yml:" in str(exc.value)
    assert "not valid YAML" in str(exc.value)


def test_bad_address_names_file_key_and_expectation(lab_copy: Path):
    f = lab_copy / "group_vars" / "all.yml"
    f.write_text(f.read_text().replace("address: 203.0.113.10/24", "address: 203.0.113.300/24"))
    with pytest.raises(InventoryError) as exc:
        inventory.load(lab_copy)
    msg = str(exc.value)
    assert "group_vars/all.yml" in msg and "lab_links" in msg and "203.0.113.300/24" in msg
    assert "expected an IPv4 address with prefix length" in msg


def test_link_to_unknown_host_is_refused(lab_copy: Path):
    f = lab_copy / "group_vars" / "all.yml"
    f.write_text(f.read_text().replace("{host: gw1, interface: wan0", "{host: gw9, interface: wan0"))
    with pytest.raises(InventoryError, match=r"'gw9' is not a lab host"):
        inventory.load(lab_copy)


def test_management_address_outside_the_management_network_is_refused(lab_copy: Path):
    f = lab_copy / "hosts.yml"
    f.write_text(f.read_text().replace('"{{ lab_management_network | ansible.utils.nthhost(13) }}"', "198.51.100.13"))
    with pytest.raises(InventoryError, match=r"ansible_host 198.51.100.13 is not inside lab_management.network"):
        inventory.load(lab_copy)


def test_duplicate_management_address_is_refused(lab_copy: Path):
    f = lab_copy / "hosts.yml"
    f.write_text(f.read_text().replace("nthhost(13)", "nthhost(11)"))
    with pytest.raises(InventoryError, match="already used by client"):
        inventory.load(lab_copy)


def test_prefix_that_would_overflow_interface_names_is_refused(lab_copy: Path):
    f = lab_copy / "group_vars" / "all.yml"
    f.write_text(f.read_text().replace("lab_prefix: aovpn", "lab_prefix: Aovpn-Lab"))
    with pytest.raises(InventoryError, match="lab_prefix: expected 1-8 lowercase"):
        inventory.load(lab_copy)


def test_a_file_without_all_is_not_an_inventory(tmp_path: Path):
    f = tmp_path / "hosts.yml"
    f.write_text("gw1:\n  ansible_host: 203.0.113.10\n")
    with pytest.raises(InventoryError, match="top-level 'all:' key"):
        inventory.load(f)


def test_missing_inventory_path_says_so(tmp_path: Path):
    with pytest.raises(InventoryError, match="does not exist"):
        inventory.load(tmp_path / "nope")


def test_an_inventory_without_a_lab_group_has_no_lab(tmp_path: Path):
    f = tmp_path / "hosts.yml"
    f.write_text("all:\n  children:\n    ikev2_gateways:\n      hosts:\n        gw:\n          ansible_host: 203.0.113.5\n")
    inv = inventory.load(f)
    assert inv.lab is None
    assert inv.one("ikev2_gateways").address == "203.0.113.5"


# -- what Ansible's own reading adds ------------------------------------------------

def test_derived_values_are_templated_and_follow_the_prefix():
    assert inventory.load(LAB).host("gw1").var("lab_state_dir") == "/var/lib/aovpn-lab/aovpn"
    gw = inventory.load(LAB, prefix="labb").host("gw1")
    assert gw.var("lab_state_dir") == "/var/lib/aovpn-lab/labb"
    assert gw.var("ansible_ssh_common_args") == "-F /var/lib/aovpn-lab/labb/ssh/config"
    assert gw.where("lab_prefix") == "--prefix"


def test_a_child_group_overrides_its_parent_as_in_ansible(tmp_path: Path):
    f = tmp_path / "hosts.yml"
    f.write_text("all:\n  vars: {mtu: 1500}\n  children:\n    zz_parent:\n      vars: {mtu: 1400}\n      children:\n"
                 "        aa_child:\n          vars: {mtu: 1300}\n          hosts:\n            gw: {ansible_host: 203.0.113.5}\n")
    gw = inventory.load(f).host("gw")
    assert gw.var("mtu") == 1300
    assert gw.groups == {"all", "zz_parent", "aa_child"}


def test_an_ini_inventory_is_read_by_its_plugin(tmp_path: Path):
    f = tmp_path / "hosts.ini"
    f.write_text("[ikev2_gateways]\ngw ansible_host=203.0.113.5\n\n[ikev2_gateways:vars]\nanswer=42\n")
    gw = inventory.load(f).one("ikev2_gateways")
    assert (gw.address, gw.var("answer")) == ("203.0.113.5", 42)


def test_an_undefined_template_names_file_and_key(tmp_path: Path):
    f = tmp_path / "hosts.yml"
    f.write_text("all:\n  hosts:\n    gw:\n      state: \"{{ nowhere }}/x\"\n")
    with pytest.raises(InventoryError) as exc:
        inventory.load(f)
    assert f"{f}: state:" in str(exc.value) and "nowhere" in str(exc.value)


def test_a_repeated_load_is_the_same_object_until_a_file_changes(lab_copy: Path):
    first = inventory.load(lab_copy)
    assert inventory.load(lab_copy) is first
    f = lab_copy / "hosts.yml"
    f.write_text(f.read_text())
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000))
    assert inventory.load(lab_copy) is not first


def test_a_lab_under_another_prefix_finds_the_management_network_recorded_for_it(lab_copy: Path, tmp_path: Path):
    from aovpn_lab.inventory.reader import MANAGEMENT_RECORD
    f = lab_copy / "group_vars" / "all.yml"
    f.write_text(f.read_text().replace("lab_state_root: /var/lib/aovpn-lab", f"lab_state_root: {tmp_path}"))
    (tmp_path / "side").mkdir()
    (tmp_path / "side" / MANAGEMENT_RECORD).write_text("198.18.9.0/24\n")
    inv = inventory.load(lab_copy, prefix="side")
    assert str(inv.lab.management_network) == "198.18.9.0/24"
    assert str(inv.lab.management_gateway) == "198.18.9.1"
    assert inv.host("gw1").address == "198.18.9.13"
    assert inv.host("gw1").where("lab_management_network") == "lab side"
    # the inventory's own prefix keeps the inventory's network
    assert str(inventory.load(lab_copy).lab.management_network) == "198.18.0.0/24"


def test_a_process_given_another_ones_snapshot_loads_it_without_reading_the_files_again(lab_copy: Path, monkeypatch):
    read = inventory.load(lab_copy)
    data = inventory.snapshot(read)
    inventory._CACHE.clear()
    from aovpn_lab.inventory import reader

    def no_ansible(*args, **kwargs):
        raise AssertionError("read again with Ansible")
    monkeypatch.setattr(reader, "read", no_ansible)
    inventory.adopt(lab_copy, data)
    adopted = inventory.load(lab_copy)
    assert adopted is not read and adopted == read and adopted.lab == read.lab
    assert {n: dict(h.vars) for n, h in adopted.hosts.items()} == {n: dict(h.vars) for n, h in read.hosts.items()}
    assert adopted.host("gw1").where("ikev2_gateway") == read.host("gw1").where("ikev2_gateway")
    # a file changed since the snapshot: this process reads the inventory itself
    f = lab_copy / "hosts.yml"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(AssertionError, match="read again with Ansible"):
        inventory.load(lab_copy)


def test_a_snapshot_is_only_adopted_for_the_prefix_it_was_taken_under(lab_copy: Path):
    data = inventory.snapshot(inventory.load(lab_copy))
    inventory._CACHE.clear()
    inventory.adopt(lab_copy, data)
    assert inventory.load(lab_copy, prefix="other").lab.prefix == "other"  # read, not the adopted 'aovpn'
