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
