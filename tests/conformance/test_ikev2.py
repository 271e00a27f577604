"""IKEv2 conformance: for each client profile and network condition, does the client get
a working tunnel to each gateway, and if not, is the cause the one the reason model
predicts? The matrix is data (profiles/matrix.yml); so are profiles, conditions and the
reason model (profiles/expectations.yml).
"""
from __future__ import annotations

import contextlib

import pytest

from aovpn_lab import matrix
from aovpn_lab.conditions.model import Condition
from aovpn_lab.certs.sizemodel import ip_fragments_needed
from aovpn_lab.corroboration import corroborate, nat_observed
from aovpn_lab.expectations import NOT_APPLICABLE, predict_ikev2, require_ikev2
from aovpn_lab.ike import probe
from aovpn_lab.pytest_plugin import target_of
from aovpn_lab.verdict import Verdict

# (auth, client profile with its RFC 7383 setting, condition) for every block of the matrix
CELLS = [(c.auth, c.profile, c.condition) for c in matrix.get().ikev2]
AUTH_LABEL = {"pubkey": "", "eap-tls": "-user-eap-tls"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ikev2_cell" in metafunc.fixturenames:
        target = target_of(metafunc.config)
        params = [(a, p, c, gw.name) for gw in target.gateways for a, p, c in CELLS
                  if a != "eap-tls" or (gw.radius_identity and target.client.user)]
        metafunc.parametrize("ikev2_cell", params,
                             ids=[f"{p.name}{AUTH_LABEL[a]}-via-{c}-to-{g}" for a, p, c, g in params])


def test_ikev2_connection_matches_expectation(ikev2_cell, target, edge, ike_vici, half_open_ledger, cell):
    auth, profile, condition_text, gateway_name = ikev2_cell
    gateway = next(g for g in target.gateways if g.name == gateway_name)
    condition = Condition.parse(condition_text)
    cell.place(protocol="ikev2", profile=f"{profile.name}{AUTH_LABEL[auth]}", condition=condition_text, gateway=gateway_name)
    facts = gateway.facts(auth)
    expected = require_ikev2(profile, condition, facts)
    predicted = predict_ikev2(profile, condition, facts)
    if expected.outcome == NOT_APPLICABLE:
        cell.conclude(Verdict.not_applicable(expected.requirement, expected.reason, {
            "condition": f"{condition} ({condition.description})",
            "gateway": f"{gateway.name} ({gateway.address}, variant {target.variant})"}))

    target.reset_path_state(half_open_ledger)  # before the condition: see its docstring
    edge.apply(condition)
    with both_ends(target, gateway, cell) as pcaps:
        # The differential test runs beside the attempt (inside the captures: they leave its SAs out).
        result = probe.run_probe(ike_vici, gateway.probe_target(target.client, auth), profile,
                                 netns=target.client.netns, ping=gateway.ping_target, timeout=10.0,
                                 ledger=half_open_ledger, rule=target.give_up)
    observed = "connected" if result.connected else result.cause

    data = result.to_json()
    evidence = {
        "condition": f"{condition} ({condition.description})",
        "elapsed_ms": result.elapsed_ms,
        "IKE_SA_INIT request / response (B)": pair(data["sizes"], "IKE_SA_INIT"),
        "IKE_AUTH request / response (B)": pair(data["sizes"], "IKE_AUTH"),
        "predicted IKE_AUTH request / response (B)": f"{facts.ike_auth_request} / {facts.ike_auth_response}",
        "predicted IP packets for IKE_AUTH request / response at this MTU": ip_packets(result.messages, condition),
        "gateway": f"{gateway.name} ({gateway.address}, variant {target.variant}: policy {gateway.crypto_policy}, "
                   f"RFC 7383 {'on' if gateway.fragmentation else 'off'}, certificates "
                   f"{gateway.certificate_profile})",
        "client RFC 7383": "on" if profile.fragmentation else "off",
        "authentication": "machine certificate (device tunnel)" if auth == "pubkey" else
                          f"EAP-TLS user {target.client.user}, relayed to RADIUS {gateway.radius_identity}",
        "IKE proposal": result.proposal or "-",
        "ESP proposal": result.child_proposal or "-",
        "virtual IP": result.virtual_ip or "-",
        "NAT (client's IKE SA)": nat_text(result.nat, gateway.esp_in_udp_only),
        "ping through tunnel": "-" if result.ping_ok is None else ("ok" if result.ping_ok else "failed"),
        "edge drop counters": edge.counters(),
        "gateway firewall drop counters": gateway.firewall_counters(target.client),
        "half-open IKE SAs": half_open_text(result.half_open, gateway.half_open_sas()),
        "timing": result.timing,
        "messages": [m.to_json() for m in result.messages],
    }
    if result.detail:
        evidence["detail"] = result.detail
    if result.reachability:
        evidence["differential test"] = result.reachability
    if pcaps and observed != "connected":
        evidence.update(diagnosis_of(pcaps, result.differential_spis()))
    elif pcaps:
        pcaps.discard()
    if observed != "connected":
        # Decided from the captures at both ends; a client alone cannot tell which way a loss went.
        diag = evidence.get("diagnosis from captures")
        evidence["direction of the loss"] = (diag.get("direction") or "none (nothing was lost)") \
            if isinstance(diag, dict) else "unknown: no capture at the gateway's end"
    verdict = Verdict.compare(expected, observed, evidence, detail=result.detail, predicted=predicted)
    verdict = corroborate(verdict, condition, evidence["edge drop counters"], evidence.get("diagnosis from captures"),
                          evidence.get("gateway firewall drop counters"))
    cell.conclude(nat_observed(verdict, condition, result.nat))
    if observed == "connected":
        # A tunnel that "connects" must have really negotiated and carried traffic.
        assert result.child_sa and result.proposal and (gateway.ping_target is None or result.ping_ok)


def half_open_text(ledger: dict, on_gateway: int | None) -> str:
    """What this client's attempts may have left on the gateway, and what the gateway holds."""
    text = (f"this attempt left one: {'yes' if ledger.get('left') else 'no'}; this client's within the gateway's "
            f"timeout: {ledger.get('pending')} (the gateway ignores a source from {ledger.get('threshold')} on)")
    if ledger.get("waited_s"):
        text += f"; waited {ledger['waited_s']} s before the attempt for them to expire"
    return text + ("" if on_gateway is None else f"; held by the gateway now (its SA list): {on_gateway}")


def nat_text(nat: dict, lab_gateway: bool) -> str:
    """What the client's IKE SA says about NAT (charon's NAT-D results)."""
    if not nat:
        return "-"
    yes = {True: "yes", False: "no"}
    return (f"client behind NAT: {yes[bool(nat.get('local'))]}; gateway claims to be behind NAT: "
            f"{yes[bool(nat.get('remote'))]}"
            + (" (a lab gateway always does: kernel-libipsec forces UDP encapsulation, NAT or not)"
               if lab_gateway else "")
            + f"; IKE on UDP {nat.get('local_port')} -> {nat.get('remote_port')}")


def pair(sizes: dict, exchange: str) -> str:
    """'request / response' sizes; '-' for a message that never came."""
    return " / ".join(str(sizes.get(f"{exchange}_{k}") or "-") for k in ("request", "response"))


class Pcaps:
    """Captures of one cell on the client's and the gateway's interface."""

    def __init__(self, pair, folder):
        self.client, self.server, self.folder = pair.client, pair.server, folder

    def discard(self) -> None:
        for p in (self.client, self.server):
            p.unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass


@contextlib.contextmanager
def both_ends(target, gateway, cell):
    """Capture at both ends while the cell runs (lab targets: both namespaces are ours)."""
    if not (target.client.netns and target.client.interface and gateway.netns and gateway.outside_interface):
        yield None
        return
    from aovpn_lab.capture.capture import DEFAULT_BPF, capture_both
    cell.artifacts.mkdir(parents=True, exist_ok=True)
    # this client's packets alone: other clients' cells may be running against the same gateway
    with capture_both((target.client.netns, target.client.interface),
                      (gateway.netns, gateway.outside_interface), cell.artifacts, settle=0.05,
                      bpf=target.client.capture_filter(DEFAULT_BPF)) as pair:
        holder = Pcaps(pair, cell.artifacts)
        yield holder


def diagnosis_of(pcaps: Pcaps, differential: set[bytes]) -> dict:
    """What the two captures show (aovpn-lab diagnose), beside what the client saw; the
    differential test's SAs, captured too, are left out."""
    from aovpn_lab.capture.diagnose import diagnose
    from aovpn_lab.errors import AovpnError
    try:
        d = diagnose(pcaps.client, pcaps.server, leave_out=differential)
    except AovpnError as exc:
        return {"captures": f"{pcaps.client}, {pcaps.server}", "diagnosis from captures": f"unavailable: {exc}"}
    j = d.to_json()
    # Counted in the captures, not predicted: what each IKE message took on the wire, and what arrived.
    measured = [{"message": f"{m['exchange']} {m['message']} #{m['message_id']}", "direction": m["direction"],
                 "transmissions": m["sent"].get("transmissions"),
                 "sent: packets (all transmissions)": m["sent"].get("packets"),
                 "sent: IP fragments": m["sent"].get("ip_fragments"),
                 "sent: RFC 7383 fragments": m["sent"].get("ike_fragments"),
                 "largest IP packet (B)": m["sent"].get("largest_ip_packet"),
                 "arrived: packets": m["seen"].get("packets")}
                for m in j.get("evidence", {}).get("exchanges", []) if m.get("exchange") == "IKE_AUTH"]
    return {"captures": f"{pcaps.client}, {pcaps.server}",
            "diagnosis from captures": {k: j.get(k) for k in ("established", "cause", "alternatives", "direction",
                                                               "uses_ip_fragmentation", "reason")},
            "measured IKE_AUTH packets (two-end captures)": measured or "-",
            "diagnosis summary": d.summary()}


def ip_packets(messages: list, condition: Condition) -> str:
    """Predicted from the message sizes (not counted on the wire): IP packets at the path MTU,
    or the RFC 7383 fragments a message was sent as (each fits the MTU: no IP fragmentation)."""
    mtu = condition.path_mtu or 1500
    parts = []
    for kind in ("request", "response"):
        m = next((m for m in messages if m.exchange == "IKE_AUTH" and m.kind == kind and m.message_id == 1), None)
        if m is None or not m.size:
            parts.append("-")
        elif m.ike_fragments:
            parts.append(f"{m.ike_fragments} (RFC 7383 fragments)")
        else:
            parts.append(str(ip_fragments_needed(m.size, mtu)))
    return " / ".join(parts) + f" (MTU {mtu})"
