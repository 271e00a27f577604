"""Every probe returns the one result shape, and its JSON keeps the keys it always had."""
from __future__ import annotations

import json

import pytest

from aovpn_lab.ike.messages import IkeMessage
from aovpn_lab.ike.probe import IkeProbeResult, stages
from aovpn_lab.results import Phase, ProbeResult
from aovpn_lab.sstp.probe import SstpProbeResult
from aovpn_lab.tlsvpn.probe import OpenconnectResult
from aovpn_lab.tlsvpn.probe import stages as tls_stages

# The keys `aovpn-lab probe ... --json` and the conformance evidence have always read.
IKE_KEYS = {"connected", "cause", "elapsed_ms", "gateway", "profile", "ike_sa", "child_sa", "proposal",
            "child_proposal", "virtual_ip", "ping", "ping_ok", "detail", "messages", "reachability", "log", "nat",
            "half_open", "sizes"}
SSTP_KEYS = {"connected", "cause", "server", "port", "elapsed_ms", "auth", "user", "sni", "tls_version", "tls_cipher",
             "cert_sha256", "cert_sha1", "cert_subject", "http_status", "http_server", "correlation_id",
             "hash_protocol", "crypto_binding_sent", "auth_method", "ip", "peer_ip", "dns", "ping", "ping_ok",
             "ping_ms", "connect_to_ip_ms", "connect_to_ping_ms", "disconnect", "echo_requests", "failed_phase",
             "detail", "phases", "log"}
TLS_KEYS = {"connected", "cause", "server", "port", "elapsed_ms", "servername", "user", "netns", "url", "tls", "dtls",
            "server_pin", "cert_reason", "interface", "ip", "mtu", "routes", "ping", "ping_ok", "ping_ms", "tcp_ms",
            "tls_ms", "tunnel_ms", "exit_code", "stopped", "detail", "log"}

RESULTS = {
    "ikev2": (IkeProbeResult(False, "udp-4500-blocked", 3004, "203.0.113.10", "aovpn-recommended"), IKE_KEYS),
    "sstp": (SstpProbeResult(False, "tls-failed", "203.0.113.201", 443, 40, "mschapv2",
                             phases=[Phase("tcp", 0, 2, True), Phase("tls", 2, 38, False)]), SSTP_KEYS),
    "tlsvpn": (OpenconnectResult(True, "none", "203.0.113.231", 4443, 900, ping="198.19.3.1", ping_ok=True,
                                 ping_ms=2), TLS_KEYS),
}


@pytest.mark.parametrize("protocol", sorted(RESULTS))
def test_every_result_is_the_one_shape_and_keeps_its_json_keys(protocol):
    result, keys = RESULTS[protocol]
    assert isinstance(result, ProbeResult) and result.protocol == protocol
    data = json.loads(json.dumps(result.to_json()))
    assert keys <= set(data), sorted(keys - set(data))
    assert "phases" in data  # what stage the attempt reached, for every protocol
    assert result.outcome == ("connected" if result.connected else result.cause)
    assert result.summary().splitlines()[0].endswith(("CONNECTED in 900 ms", f"cause {result.cause} in "
                                                      f"{result.elapsed_ms} ms"))


def test_phases_say_how_far_an_attempt_got_and_how_long_each_step_took():
    sstp = RESULTS["sstp"][0]
    assert (sstp.reached, sstp.timings, sstp.phase("tls").ok) == ("tcp", {"tcp": 2, "tls": 38}, False)
    ike = IkeProbeResult(True, "none", 31, "gw", "p", ike_sa=True, child_sa=True, ping="198.19.1.1", ping_ok=True,
                         ping_ms=4, messages=[IkeMessage("sent", "IKE_SA_INIT", "request", 0),
                                              IkeMessage("received", "IKE_SA_INIT", "response", 0),
                                              IkeMessage("sent", "IKE_AUTH", "request", 1),
                                              IkeMessage("received", "IKE_AUTH", "response", 1)])
    ike.phases = stages(ike)
    assert [(p.name, p.ok) for p in ike.phases] == [("ike-sa-init", True), ("ike-auth", True), ("child-sa", True),
                                                    ("ping", True)]
    assert ike.reached == "ping" and ike.timings["ping"] == 4
    assert "ping 198.19.1.1 through the tunnel: ok in 4 ms" in ike.summary()
    tls = OpenconnectResult(True, "none", "203.0.113.231", 4443, 900, ping="198.19.3.1", ping_ok=True, ping_ms=2,
                            tcp_ms=3, tls_ms=40, tunnel_ms=850)
    assert [(p.name, p.start_ms, p.ms) for p in tls_stages(tls)] == [
        ("tcp", 0, 3), ("tls", 3, 37), ("tunnel", 40, 810), ("ping", 850, 2)]


def test_a_tcp_failure_reached_no_phase():
    r = OpenconnectResult(False, "tcp-443-blocked", "203.0.113.231", 443, 2000)
    r.phases = tls_stages(r)
    assert r.reached == "" and [(p.name, p.ok) for p in r.phases] == [("tcp", False)]
