"""Verdicts of the load-balancing cells, from what a crowd run measured and the data in
profiles/load-balancing.yml.

The inventory's own balancer mode must meet the requirement. Any other mode the lab
balancer can run is a known mistake: its cell expects what that mode is known to do (the
profile's row), and passes only when the suite measures exactly that - so the cell fails
if the suite stopped catching the mistake, or if the mistake stopped hurting. Either way
the reason carries the measured figures.
"""
from __future__ import annotations

from typing import Any

from ..verdict import Expectation, Verdict
from .measure import CrowdRun, settings
from .spread import evaluate

AFFINITY = "AOVPN-LB-AFFINITY-001"
NOSNAT = "AOVPN-LB-NOSNAT-001"
STALLED = "failed before IKE_AUTH (IKE_SA_INIT reached a gateway, no answer came back)"
REQUIRED = {"affinity": "connected", "sources": "client-addresses"}


def expectation(run: CrowdRun, configured: str, aspect: str, requirement: str, figures: str) -> Expectation:
    """The requirement's outcome for the inventory's own mode; the mode's known outcome otherwise."""
    row = settings()["modes"][run.mode]
    fix = settings()["affinity_fix" if aspect == "affinity" else "nosnat_fix"]
    if run.mode == configured:
        return Expectation(REQUIRED[aspect], requirement,
                           f"the inventory's balancer mode ({run.mode}) must meet {requirement}; measured: {figures}", fix)
    outcome = row[aspect]
    why = row["reason"] if outcome != REQUIRED[aspect] else f"{run.mode} does not change this"
    return Expectation(outcome, requirement, f"{run.mode}: {why}; measured: {figures}", fix)


def affinity_figures(run: CrowdRun, split: list[str]) -> dict[str, Any]:
    n = len(run.attempts)
    clients = (run.paths_by_client or {})
    # failed before IKE_AUTH: the IKE_SA_INIT reached a gateway and nothing followed on UDP 4500
    # (a client sends IKE_AUTH only after an IKE_SA_INIT answer)
    stalled = [a for a in run.failed if a not in split and clients.get(a, {}).get("UDP 500 reached")
               and not clients.get(a, {}).get("UDP 4500 reached")]
    spread = run.spread()
    test = evaluate(spread)
    return {
        "clients": n, "connected": len(run.connected), "failed": len(run.failed),
        "split clients (UDP 500 and 4500 on different gateways)": len(split),
        "split ratio": round(len(split) / n, 3) if n else None,
        "failure rate": round(len(run.failed) / n, 3) if n else None,
        STALLED: len(stalled),
        "spread (connected clients per gateway)": spread,
        "spread test": test.to_json(), "even": test.even,
        "seconds to connect all": round(run.seconds, 2),
        "clients connecting at once": run.at_once,
    }


def affinity_observed(run: CrowdRun, split: list[str], figures: dict[str, Any]) -> str:
    if split:
        return "splits-clients"
    if run.failed:
        return "clients-failed"
    if not figures["even"]:
        return "uneven-spread"
    return "connected"


def judge_affinity(run: CrowdRun, split: list[str], configured: str, per_client: Any) -> Verdict:
    figures = affinity_figures(run, split)
    observed = affinity_observed(run, split, figures)
    text = (f"{figures['connected']} of {figures['clients']} connected, {len(split)} split "
            f"({100 * (figures['split ratio'] or 0):.0f} %)"
            + (f", {figures[STALLED]} more failed before IKE_AUTH (their IKE_SA_INIT was not answered)"
               if figures[STALLED] else "") + f", spread {figures['spread (connected clients per gateway)']}"
            f" (p = {figures['spread test']['p_value']:.2g})")
    exp = expectation(run, configured, "affinity", AFFINITY, text)
    evidence = {**figures, "per client": per_client, "captures": {k: str(v) for k, v in run.captures.items()}}
    return Verdict.compare(exp, observed, evidence)


def judge_source_addresses(run: CrowdRun, configured: str) -> Verdict:
    limit = int(settings()["ikeext_per_source_limit"])
    seen = run.sources_seen()
    crowd = set(run.attempts)
    foreign = {gw: {src: n for src, n in s.items() if src not in crowd} for gw, s in seen.items()}
    sharing = max((n for s in foreign.values() for n in s.values()), default=0)
    if any(foreign.values()):
        observed = "balancer-address"
        figures = (f"the gateways see {', '.join(sorted({a for s in foreign.values() for a in s}))} instead of the "
                   f"clients; up to {sharing} established SAs share one source address, "
                   f"{'above' if sharing > limit else 'within'} Windows IKEEXT's ~{limit} per source "
                   f"(IkeNumEstablishedForInitialQuery)"
                   + (": Windows gateways would refuse the clients beyond it (error 809)" if sharing > limit else ""))
    else:
        observed = "client-addresses"
        figures = f"the gateways see the clients' own addresses ({sum(len(s) for s in seen.values())} distinct)"
    exp = expectation(run, configured, "sources", NOSNAT, figures)
    evidence = {"established SAs per source address, per gateway": seen, "most SAs sharing one source": sharing,
                "IKEEXT per-source limit (Windows, IkeNumEstablishedForInitialQuery)": limit,
                "lab clients": len(run.attempts)}
    return Verdict.compare(exp, observed, evidence)
