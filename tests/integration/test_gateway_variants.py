"""Each gateway variant, run through the suite: it fails exactly the requirements the
variant breaks (profiles/variants.yml), and every failing cell is explained by the
reason model with a fix - the report an engineer gets for a broken deployment."""
from __future__ import annotations

import json

import pytest

from aovpn_lab import variants
from labcli import aovpn

pytestmark = pytest.mark.lab

# Cells that exercise every requirement the variants touch: crypto (windows10-default),
# fragmentation (drop-ip-fragments with large chains, both tunnel types) and the plain connection.
CELLS = "test_ikev2 and not nofrag and (via-open or via-drop-ip-fragments or via-mtu:1280)"


@pytest.fixture(scope="module", autouse=True)
def back_to_default(lab):
    yield
    r = aovpn("lab", "up", "--quiet", "--variant", "default")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", [v for v in variants.catalogue() if v != "default"])
def test_variant_fails_exactly_the_requirements_it_breaks(lab, tmp_path, name):
    variant = variants.get(name)
    r = aovpn("run", "--variant", name, "--reports", str(tmp_path), "-k", CELLS, timeout=600)
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    cells = results["cells"]
    assert len(cells) == 12, [c["id"] for c in cells]  # 9 device-tunnel + 3 user-tunnel cells
    failed = [c for c in cells if c["outcome"] == "failed"]
    assert {c["verdict"]["requirement"] for c in failed} == set(variant.breaks), \
        [(c["id"], c["verdict"]["reason"]) for c in failed]
    assert r.returncode == (1 if variant.breaks else 0)
    for c in failed:
        v = c["verdict"]
        assert "not what the reason model predicts" not in v["reason"], v["reason"]
        assert v["fix"], f"{c['id']}: a failing cell must say what to change"
        assert v["evidence"]["gateway"].startswith(f"gw1 (203.0.113.10, variant {name}")


def test_rras_defaults_reproduces_the_field_failure_with_its_sizes(lab, tmp_path):
    aovpn("run", "--variant", "rras-defaults", "--reports", str(tmp_path),
          "-k", "aovpn-recommended-via-drop-ip-fragments", timeout=300)
    (cell,) = json.loads((tmp_path / "latest" / "results.json").read_text())["cells"]
    v = cell["verdict"]
    assert (v["requirement"], v["expected"], v["observed"]) == ("AOVPN-IKE-FRAG-001", "connected",
                                                                "ip-fragments-dropped")
    auth_request = int(v["evidence"]["IKE_AUTH request / response (B)"].split(" / ")[0])
    assert auth_request > 4000                       # a long RSA-4096 chain
    assert v["evidence"]["edge drop counters"]["fragments_dropped"] > 0
    assert v["evidence"]["differential test"]["verdict"] == "ip-fragments-dropped"
    assert "EnableServerFragmentation" in v["fix"]


def test_a_fragment_loss_the_edge_did_not_count_is_inconclusive_and_one_it_counted_is_not(lab):
    """The condition on an interface the traffic never crosses, while the fragments are lost
    elsewhere (here: dropped by the gateway itself): the client still sees its IKE_AUTH die,
    but nothing confirms the edge's condition did it."""
    from aovpn_lab import inventory, tool
    from aovpn_lab.conditions.base import edge_device
    from aovpn_lab.conditions.model import Condition
    from aovpn_lab.corroboration import corroborate
    from aovpn_lab.expectations import predict_ikev2, require_ikev2
    from aovpn_lab.ike import probe, profiles
    from aovpn_lab.target import Target
    from aovpn_lab.verdict import Verdict
    from labcli import LAB_INVENTORY
    up = aovpn("lab", "up", "--quiet", "--variant", "rras-defaults")   # a long chain, no RFC 7383
    assert up.returncode == 0, up.stderr[-2000:]
    inv = inventory.load(LAB_INVENTORY)
    target = Target.from_inventory(inv)
    gw, profile, condition = target.gateways[0], profiles.get("aovpn-recommended"), Condition.parse("drop-ip-fragments")
    expected, predicted = require_ikev2(profile, condition, gw.facts()), predict_ikev2(profile, condition, gw.facts())

    def attempt(edge):
        target.reset_path_state()
        result = probe.run_probe(target.client.vici, gw.probe_target(target.client), profile,
                                 netns=target.client.netns, timeout=10.0, rule=target.give_up)
        observed = "connected" if result.connected else result.cause
        return corroborate(Verdict.compare(expected, observed, {}, predicted=predicted), condition, edge.counters())

    drop_at_gateway = ("add table ip aovpn_test_frag; add chain ip aovpn_test_frag pre { type filter hook prerouting "
                       "priority -450; }; add rule ip aovpn_test_frag pre ip frag-off & 0x3fff != 0 drop")
    with edge_device(inv) as edge:
        try:
            edge.apply(condition)
            edge.send(["nft 'flush chain inet aovpn_edge raw_box; add rule inet aovpn_edge raw_box "
                       "iifname \"nowhere0\" ip frag-off & 0x3fff != 0 counter name fragments_dropped drop'"])
            tool.run(["nft", drop_at_gateway], netns=gw.netns, step="drop fragments at the gateway").check()
            uncounted = attempt(edge)
            tool.run(["nft", "delete table ip aovpn_test_frag"], netns=gw.netns, step="remove it").check()
            edge.apply(condition)   # the rule where it belongs
            counted = attempt(edge)
        finally:
            tool.run(["nft", "delete table ip aovpn_test_frag"], netns=gw.netns, step="clean up")
            edge.apply(Condition.parse("open"))
    assert uncounted.observed == "ip-fragments-dropped" and uncounted.state == "inconclusive", uncounted
    assert "fragments_dropped = 0" in uncounted.reason
    assert (counted.observed, counted.state) == ("ip-fragments-dropped", "fail"), counted
    assert int(counted.evidence["corroborated by"].rsplit("= ", 1)[1]) > 0
