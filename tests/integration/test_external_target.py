"""`aovpn-lab run --inventory PATH` against a gateway the project did not provision: a
strongSwan charon in namespaces of this test, described only by an inventory file."""
from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from aovpn_lab.certs.pki import issue_pki
from aovpn_lab.ike.charon import PrivateCharon
from aovpn_lab.ike.session import ViciSession
from labcli import aovpn

pytestmark = pytest.mark.lab
NS_CLIENT, NS_GW = "hxe-c", "hxe-g"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def external_gateway(tmp_path_factory, lab):
    # `lab` only for root and the packages; this gateway lives in its own namespaces.
    tmp = tmp_path_factory.mktemp("external")
    pki = issue_pki("small", tmp / "pki", gateways=["vpn.example.org"], machines=["tester.example.org"])
    for ns in (NS_CLIENT, NS_GW):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    try:
        sh("ip", "link", "add", "ext0", "netns", NS_CLIENT, "type", "veth", "peer", "name", "ext0", "netns", NS_GW)
        sh("ip", "-n", NS_CLIENT, "addr", "add", "203.0.113.249/30", "dev", "ext0")
        sh("ip", "-n", NS_GW, "addr", "add", "203.0.113.250/30", "dev", "ext0")
        sh("ip", "-n", NS_GW, "addr", "add", "198.51.100.250/32", "dev", "lo")
        for ns in (NS_CLIENT, NS_GW):
            sh("ip", "-n", ns, "link", "set", "ext0", "up")
        with PrivateCharon(netns=NS_GW) as charon:
            ent = pki.entities["vpn.example.org"]
            with ViciSession(charon.vici) as s:
                s.load_cert(pki.ca.read_bytes(), flag="CA")
                s.load_key(ent.key.read_bytes())
                s.s.load_pool({"ext-pool": {"addrs": "198.19.9.0/24"}})
                s.load_conn("ext", {
                    "version": "2", "local_addrs": ["203.0.113.250"], "proposals": ["aes128-sha256-modp2048", "aes128gcm16-prfsha256-modp2048"],
                    "send_cert": "always", "send_certreq": "no", "pools": ["ext-pool"],
                    "local": {"auth": "pubkey", "certs": [ent.cert.read_bytes()], "id": "vpn.example.org"},
                    "remote": {"auth": "pubkey", "cacerts": [pki.ca.read_bytes()]},
                    "children": {"net": {"local_ts": ["198.51.100.250/32"],
                                         "esp_proposals": ["aes128-sha256-modp2048", "aes128gcm16"]}},
                })
            client = pki.entities["tester.example.org"]
            inv = tmp / "external.yml"
            inv.write_text(textwrap.dedent(f"""\
                all:
                  children:
                    ikev2_clients:
                      hosts:
                        tester:
                          ansible_connection: local
                          ikev2_client: {{identity: tester.example.org, netns: {NS_CLIENT}}}
                    ikev2_gateways:
                      hosts:
                        vpn:
                          ansible_host: 203.0.113.250
                          ikev2_gateway:
                            identity: vpn.example.org
                            address: 203.0.113.250
                            protected_subnets: [198.51.100.250/32]
                            ping_target: 198.51.100.250
                            ca_file: {pki.ca}
                            client_cert_file: {client.cert}
                            client_key_file: {client.key}
                """))
            yield inv, tmp
    finally:
        for ns in (NS_CLIENT, NS_GW):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_the_suite_runs_against_a_gateway_it_only_knows_from_an_inventory(external_gateway):
    inv, tmp = external_gateway
    r = aovpn("--inventory", str(inv), "run", "--reports", str(tmp / "reports"), "-k", "test_ikev2 and via-open",
              timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    cells = json.loads((tmp / "reports" / "latest" / "results.json").read_text())["cells"]
    ran = {c["id"]: c["verdict"]["observed"] for c in cells if c["outcome"] == "passed"}
    assert ran["test_ikev2_connection_matches_expectation[aovpn-recommended-via-open-to-vpn]"] == "connected"
    assert ran["test_ikev2_connection_matches_expectation[windows10-default-via-open-to-vpn]"] == \
        "no-proposal-chosen"
    assert not any(c["outcome"] == "failed" for c in cells)


def test_conditions_without_an_edge_device_are_reported_as_not_applicable(external_gateway):
    inv, tmp = external_gateway
    aovpn("--inventory", str(inv), "run", "--reports", str(tmp / "reports2"),
          "-k", "aovpn-recommended-via-block-udp-500", timeout=300)
    (c,) = json.loads((tmp / "reports2" / "latest" / "results.json").read_text())["cells"]
    assert c["outcome"] == "skipped" and "names no edge device" in c["message"]
