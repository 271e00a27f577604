"""IKEv2 -> SSTP fallback: a user tunnel with VpnStrategy 14 (Ikev2Sstp) under networks
where IKEv2 fails, run as REAL attempts in the strategy's order (aovpn_lab.fallback).

A Windows client falls back only when IKEv2 fails initially (no answer to IKE_SA_INIT);
when IKE_SA_INIT is answered and IKE_AUTH is lost it stops with error 809, although SSTP
works on the same network (docs/domain.md). Each cell shows what happens, how long it takes,
and - beside the Windows-like client - what a client that falls back on any IKEv2 failure
would do. Which cells exist is decided from data: a condition is a cell only where the
reason model predicts an IKEv2 failure for this gateway (drop-ip-fragments only where
IKE_AUTH is too big and RFC 7383 is off, e.g. `--variant rras-defaults`; block-udp-4500
gives the same partial failure on any gateway). The cells are profiles/matrix.yml's
(section fallback), their reasons and fixes profiles/expectations.yml's.

The evidence tells its parts apart: `observed:` is what the real attempts did on the wire
(causes, sizes, retransmits, the SSTP session, the edge's counters); `modelled:` is the
Windows client's decision rule applied to them (order, decision, time to connect).
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from aovpn_lab import matrix
from aovpn_lab.conditions.model import Condition
from aovpn_lab.expectations import expect_fallback, predict_ikev2
from aovpn_lab.fallback import LABEL, STRATEGIES, predict, run_strategy
from aovpn_lab.ike import probe, profiles
from aovpn_lab.pytest_plugin import target_of
from aovpn_lab.verdict import Verdict

MATRIX = matrix.get().fallback
STRATEGY = MATRIX.strategy
PROFILE = profiles.get()   # the default modern Windows-like client profile
# (condition, fallback rule); a cell only where IKEv2 is predicted to fail on this gateway
CASES = MATRIX.cells
CLIENT = {mode: name for mode, (name, _) in MATRIX.clients.items()}
CLIENT_TEXT = {mode: text for mode, (_, text) in MATRIX.clients.items()}


@dataclass(frozen=True)
class Case:
    condition: str
    fallback_on: str
    gateway: str           # IKEv2 gateway; the SSTP gateway of the same host
    auth: str              # the user tunnel (eap-tls) where the inventory has one
    ike_cause: str         # what the reason model predicts for IKEv2 here
    expected: str          # what the strategy model then predicts for the cell

    @property
    def id(self) -> str:
        # What the cell is, not what it is predicted to do: the same cell keeps its id on every
        # gateway variant, so runs of different variants compare cell by cell.
        return f"{CLIENT[self.fallback_on]}-{STRATEGY.name.lower()}-via-{self.condition}-on-{self.gateway}"


def cases(target) -> list[Case]:
    out = []
    sstp_names = {s.name for s in target.sstp_gateways}
    for gw in target.gateways:
        if gw.name not in sstp_names:
            continue  # fallback needs SSTP on the same server
        auth = "eap-tls" if gw.radius_identity and target.client.user else "pubkey"
        facts = gw.facts(auth)
        for condition, mode in CASES:
            ike_cause = predict_ikev2(PROFILE, Condition.parse(condition), facts).outcome
            # Where IKEv2 is predicted to connect the cell is kept (not-applicable, with the reason):
            # every gateway variant plans the same cells, so their runs compare cell by cell.
            expected = predict(STRATEGY, {"ikev2": ike_cause, "sstp": "none"}, fallback_on=mode).observed
            out.append(Case(condition, mode, gw.name, auth, ike_cause, expected))
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fallback_cell" in metafunc.fixturenames:
        target = target_of(metafunc.config)
        params = cases(target)
        metafunc.parametrize("fallback_cell", params, ids=[c.id for c in params])


@pytest.fixture
def client_vici(request, target):
    """The client's charon (the plugin's ike_vici where it has one)."""
    try:
        return request.getfixturevalue("ike_vici")
    except pytest.FixtureLookupError:
        return target.client.vici


def test_fallback(fallback_cell, target, edge, client_vici, half_open_ledger, cell):
    from aovpn_lab.sstp.probe import probe_sstp
    case: Case = fallback_cell
    cell.place(protocol="ikev2 then sstp", profile=CLIENT[case.fallback_on] + ("-user" if case.auth == "eap-tls" else ""),
               condition=case.condition, gateway=case.gateway)
    if case.ike_cause == "connected":
        cell.conclude(Verdict.not_applicable("AOVPN-FALLBACK-001", (
            f"IKEv2 is predicted to connect via {case.condition} to {case.gateway}, so the fallback rule is not "
            "exercised here; the IKEv2 cells check that connection")))
    gw = next(g for g in target.gateways if g.name == case.gateway)
    sgw = next(s for s in target.sstp_gateways if s.name == case.gateway)
    condition = Condition.parse(case.condition)
    ike_target = gw.probe_target(target.client, case.auth)
    facts = gw.facts(case.auth)

    def ikev2():
        return probe.run_probe(client_vici, ike_target, PROFILE, netns=target.client.netns, ping=gw.ping_target,
                               ledger=half_open_ledger, timeout=10.0, rule=target.give_up)

    def sstp():
        return probe_sstp(sgw.address, sgw.port, user=sgw.user, password=sgw.password,
                          ca_file=str(sgw.ca_file) if sgw.ca_file else None, sni=sgw.identity,
                          ping=sgw.ping_target, timeout=8.0, netns=target.client.netns,
                          syn_timeout=target.give_up.ceiling)

    target.reset_path_state(half_open_ledger)
    edge.apply(condition)
    outcome = run_strategy(STRATEGY, ikev2, sstp, fallback_on=case.fallback_on, try_skipped=True)
    counters = edge.counters()

    ike_a = outcome.attempt("ikev2")
    sstp_a = outcome.attempt("sstp") or outcome.attempt("sstp", counterfactual=True)
    ike_r = ike_a.result
    retransmit = profiles.charon_settings().get("retransmit", {})
    evidence = {
        "condition": f"{condition} ({condition.description})",
        "modelled: strategy": f"{STRATEGY.value} {STRATEGY.name} ({STRATEGIES[STRATEGY].note})",
        "modelled: client": CLIENT_TEXT[case.fallback_on],
        "modelled: order": " -> ".join(LABEL[p] for p in outcome.order),
        "modelled: decision": outcome.decision,
        "modelled: finding": outcome.finding,
        "modelled: time to connect (ms)": outcome.time_to_connect_ms if outcome.connected else "-",
        "observed: wall time of the cell's attempts (ms)": outcome.total_ms,
        "observed: IKEv2 attempt": f"{ike_a.cause}" + (f" ({ike_a.stage} failure, Windows error {ike_a.windows_error})"
                                              if not ike_a.connected else "")
                         + f", {ike_a.elapsed_ms} ms ({ike_a.wall_ms} ms with diagnosis)",
        "observed: IKE_SA_INIT request / response (B)": f"{ike_a.sizes['IKE_SA_INIT_request']} / "
                                              f"{ike_a.sizes['IKE_SA_INIT_response']}",
        "observed: IKE_AUTH request / response (B)": f"{ike_a.sizes['IKE_AUTH_request']} / {ike_a.sizes['IKE_AUTH_response']}",
        "predicted IKE_AUTH request / response (B)": f"{facts.ike_auth_request} / {facts.ike_auth_response}",
        "observed: IKEv2 retransmits": ike_a.retransmits,
        "lab setting: IKEv2 give-up time": f"the suite's ({target.give_up.describe()}; charon retransmits "
                              f"after {retransmit.get('timeout')} s); a Windows client waits longer before it "
                              "reports 809 or falls back",
        "observed: SSTP attempt" + (" (not part of the strategy: tried to show it works)" if sstp_a and sstp_a.counterfactual
                          else ""):
            "-" if sstp_a is None else f"{sstp_a.cause}, {sstp_a.elapsed_ms} ms, {sstp_a.sizes.get('tls') or '-'}, "
                                       f"tunnel ping {'ok' if getattr(sstp_a.result, 'ping_ok', None) else 'failed'}",
        "observed: SSTP phases (ms)": sstp_a.sizes.get("phases_ms") if sstp_a else "-",
        "authentication": (f"IKEv2 {'EAP-TLS user ' + target.client.user if case.auth == 'eap-tls' else 'machine certificate'}"
                           f"; SSTP MS-CHAPv2 user {sgw.user}"),
        "modelled: VpnStrategy after": (f"{outcome.strategy_after.value} {outcome.strategy_after.name} (Windows rewrites it "
                              "after a fallback)") if outcome.strategy_after is not None else "unchanged",
        "observed: edge drop counters": counters,
        "observed: attempts": outcome.to_json()["attempts"],
    }
    if ike_r.reachability:
        evidence["observed: differential test"] = ike_r.reachability

    expected = expect_fallback(case.expected, ike_a.cause, outcome.finding)
    cell.conclude(Verdict.compare(expected, outcome.observed, evidence, detail=ike_a.detail))

    # What really happened: IKEv2 failed with the cause the reason model predicts ...
    assert not ike_a.connected and ike_a.cause == case.ike_cause, (ike_a.cause, ike_a.detail)
    # ... and the rule of docs/domain.md, read off the wire: a Windows client tries SSTP exactly when
    # the gateway never accepted IKE_SA_INIT (no response carrying SA).
    accepted = any(m.exchange == "IKE_SA_INIT" and m.direction == "received" and "SA" in m.payloads
                   for m in ike_r.messages)
    if case.fallback_on == "initial-failure":
        assert (outcome.attempt("sstp") is not None) == (not accepted), outcome.decision
    if case.expected == "connected-over-sstp":
        real = outcome.attempt("sstp")
        assert real is not None and real.result.ping_ok and real.result.ip
        assert outcome.time_to_connect_ms == ike_a.elapsed_ms + real.elapsed_ms
        assert ike_a.stage == ("initial" if case.fallback_on == "initial-failure" else "partial")
    if case.expected == "ikev2-failed-no-fallback":
        # IKE_SA_INIT was answered (a partial failure), SSTP was never tried by the client,
        # and SSTP does work on this network - the finding's "although SSTP works".
        assert ike_a.stage == "partial" and ike_a.sizes["IKE_SA_INIT_response"]
        assert outcome.attempt("sstp") is None
        cf = outcome.attempt("sstp", counterfactual=True)
        assert cf is not None and cf.connected and cf.result.ping_ok
