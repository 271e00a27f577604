"""What the gateway accepts and presents, checked directly: its IKE proposals (offered one
at a time, statelessly) and its certificate chain (EKUs, names, validity, size)."""
from __future__ import annotations

import pytest
import yaml

from aovpn_lab import paths
from aovpn_lab.expectations import expect
from aovpn_lab.pytest_plugin import target_of
from aovpn_lab.verdict import Verdict

_CANDIDATE_FILE = yaml.safe_load((paths.PROFILES / "crypto-candidates.yml").read_text())
CANDIDATES = _CANDIDATE_FILE["candidates"]
ESP_CANDIDATES = _CANDIDATE_FILE["esp_candidates"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "gateway_name" in metafunc.fixturenames:
        target = target_of(metafunc.config)
        names = [g.name for g in target.gateways]
        metafunc.parametrize("gateway_name", names, ids=[f"of-{n}" for n in names])


def test_gateway_refuses_weak_ike_proposals(gateway_name, target, edge, cell):
    cell.place(protocol="ikev2", profile="weak IKE proposals refused", gateway=gateway_name)
    from aovpn_lab.conditions.model import OPEN
    from aovpn_lab.ike import craft
    from aovpn_lab.ike.craft_netns import run_in_netns
    gw = next(g for g in target.gateways if g.name == gateway_name)
    edge.apply(OPEN)
    proposals = [c["proposal"] for c in CANDIDATES]
    if target.client.netns:
        results = run_in_netns(target.client.netns, craft.accepted_proposals, gw.address, proposals, timeout=0.5)
    else:
        results = craft.accepted_proposals(gw.address, proposals, timeout=0.5)
    weak = {c["proposal"] for c in CANDIDATES if c["weak"]}
    accepted_weak = sorted(r["proposal"] for r in results if r["accepted"] and r["proposal"] in weak)
    unanswered = [r["proposal"] for r in results if r["accepted"] is None]
    observed = ("accepts " + ", ".join(accepted_weak)) if accepted_weak else \
        ("no answer" if len(unanswered) == len(results) else "refuses every weak proposal")
    expected = expect("ike_policy")
    evidence = {
        "accepted": [r["proposal"] + (f" (wants DH {r['requested_group_name']})" if r["requested_group_name"] else "")
                     for r in results if r["accepted"]],
        "refused": [r["proposal"] for r in results if r["accepted"] is False],
        "no answer": unanswered,
        "probes": results,
    }
    unanswered_weak = [p for p in unanswered if p in weak]
    if unanswered_weak and not accepted_weak:
        # Silence is not a refusal: only NO_PROPOSAL_CHOSEN (or INVALID_KE naming another group) shows one.
        cell.conclude(Verdict.inconclusive(
            expected, "no answer", f"{len(unanswered_weak)} of {len(weak)} weak proposals got no answer at all "
            f"({', '.join(unanswered_weak)}): the gateway did not say it refuses them", evidence))
    cell.conclude(Verdict.compare(expected, observed, evidence))
    # and it still accepts what a recommended client offers
    assert any(r["accepted"] for r in results if r["proposal"] == "aes128-sha256-modp2048"), evidence


def test_gateway_refuses_weak_esp_proposals(gateway_name, target, edge, ike_vici, half_open_ledger, cell):
    cell.place(protocol="ikev2", profile="weak ESP proposals refused", gateway=gateway_name)
    from aovpn_lab.conditions.model import OPEN
    from aovpn_lab.ike import probe, profiles
    from aovpn_lab.ike.profiles import ClientProfile
    gw = next(g for g in target.gateways if g.name == gateway_name)
    edge.apply(OPEN)
    base = profiles.get("aovpn-recommended")
    rows = []
    for cand in ESP_CANDIDATES:
        target.reset_path_state(half_open_ledger)
        one = ClientProfile(f"esp-only-{cand['proposal']}", "one ESP proposal", base.ike, (cand["proposal"],),
                            base.fragmentation)
        r = probe.run_probe(ike_vici, gw.probe_target(target.client), one, netns=target.client.netns,
                            timeout=10.0, explain=False, ledger=half_open_ledger, rule=target.give_up)
        # The gateway's own word: its IKE_AUTH response carries N(NO_PROP) for a refused CHILD SA.
        no_prop = any(m.exchange == "IKE_AUTH" and m.direction == "received" and "N(NO_PROP)" in m.payloads
                      for m in r.messages)
        answer = "accepted" if r.child_sa else ("refused" if no_prop else "unknown")
        rows.append({"proposal": cand["proposal"], "weak": cand["weak"], "answer": answer,
                     "IKE SA": r.ike_sa, "CHILD SA": r.child_sa, "cause": r.cause, "elapsed_ms": r.elapsed_ms})
    weak_accepted = [r["proposal"] for r in rows if r["weak"] and r["answer"] == "accepted"]
    weak_unknown = [r["proposal"] for r in rows if r["weak"] and r["answer"] == "unknown"]
    expected = expect("esp_policy")
    evidence = {"ESP proposals, one per connection": rows}
    if weak_unknown and not weak_accepted:
        cell.conclude(Verdict.inconclusive(expected, "no answer", (
            f"{', '.join(weak_unknown)}: neither a CHILD SA nor N(NO_PROP) - the refusal was not shown"), evidence))
    observed = ("accepts " + ", ".join(weak_accepted)) if weak_accepted else "refuses every weak ESP proposal"
    cell.conclude(Verdict.compare(expected, observed, evidence))
    # and the recommended ESP proposal works
    assert all(r["answer"] == "accepted" for r in rows if not r["weak"]), rows


def test_gateway_certificate_meets_the_requirements(gateway_name, target, cell):
    cell.place(protocol="ikev2", profile="gateway certificate", gateway=gateway_name)
    from aovpn_lab.certs.inspect import inspect_chain, load_files, to_json
    gw = next(g for g in target.gateways if g.name == gateway_name)
    if gw.gateway_cert_file is None:
        pytest.skip(f"{gw.name}: the gateway's certificate file is not known (external target without it)")
    files = [gw.gateway_cert_file] + ([gw.chain_file] if gw.chain_file and gw.chain_file.stat().st_size else []) \
        + [gw.ca_file]
    certs, sources = load_files(files)
    report = inspect_chain(certs, dial_name=gw.identity, role="ikev2-server", sources=sources)
    fails = sorted(f.code for f in report.findings if f.severity == "fail")
    warns = sorted(f.code for f in report.findings if f.severity == "warn")
    observed = ("fails " + ", ".join(fails)) if fails else "meets the requirements"
    needs_frag = "ike-fragmentation-needed" in warns
    facts = {f for f, holds in (("needs-fragmentation", needs_frag), ("gateway-rfc7383", bool(gw.fragmentation)))
             if holds}
    expected = expect("certificate", None, facts, identity=gw.identity, count=len(report.certs))
    evidence = {"findings": [f"{f.severity}: {f.code}: {f.message}" for f in report.findings],
                "chain": to_json(report)}
    cell.conclude(Verdict.compare(expected, observed, evidence))
