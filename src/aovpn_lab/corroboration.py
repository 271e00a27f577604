"""A cell names a cause only when independent views of the failure agree.

The client sees only silence, so a probe that names `ip-fragments-dropped` or
`tcp-443-blocked` is reading a symptom. When a cell did not connect:
- and it comes from a condition the edge applied, the edge's own drop counter for it
  must be non-zero; zero (the condition missed the traffic, or the server was simply
  down) or no counter at all makes the cell inconclusive;
- and captures were taken at both ends, their diagnosis (which message was lost, in
  which direction, whether it was IP-fragmented on the wire) must name the same cause,
  or show the packets reaching the gateway unanswered while the gateway's own firewall
  counted their drop, or name it as the alternative they cannot rule out while the edge's
  counter for it confirms it; a diagnosis that differs, or none, makes the cell inconclusive.
An inconclusive cell is never a pass.

    >>> from aovpn_lab.conditions.model import Condition
    >>> v = Verdict("AOVPN-SSTP-CONN-001", "tcp-443-blocked", "tcp-443-blocked", "pass", "443 blocked")
    >>> corroborate(v, Condition.parse("block-tcp-443"), {"tcp_443_dropped": 0}).state
    'inconclusive'
    >>> corroborate(v, Condition.parse("block-tcp-443"), {"tcp_443_dropped": 3}).evidence["corroborated by"]
    'edge counter tcp_443_dropped = 3'
    >>> corroborate(v, Condition.parse("block-tcp-443"), {"tcp_443_dropped": 3}, {"cause": "no-response"}).reason
    'the client observed tcp-443-blocked, but the captures at both ends name no-response'
"""
from __future__ import annotations

from dataclasses import replace

from .conditions.model import DROP_COUNTERS, Condition
from .results import causes
from .verdict import FAIL, INCONCLUSIVE, PASS, Verdict

# cause -> the condition that produces it (profiles/causes.yml); its drop counter has the
# same name on the edge and on the lab gateway's own firewall (conditions.model.DROP_COUNTERS)
CAUSE_CONDITIONS = {c.name: c.condition for c in causes.catalogue().values() if c.condition}
CAUSE_COUNTERS = {cause: (kind, DROP_COUNTERS[kind]) for cause, kind in CAUSE_CONDITIONS.items()}


def corroborate(verdict: Verdict, condition: Condition, counters: dict[str, int],
                diagnosis: dict | str | None = None, gateway_counters: dict[str, int] | None = None) -> Verdict:
    """The verdict, or an inconclusive one when the edge or the captures do not confirm the
    cause it names. `diagnosis`: the two-end captures' diagnosis (None: no captures);
    `gateway_counters`: drops counted by the gateway's own firewall (None: not known)."""
    if verdict.state not in (PASS, FAIL) or verdict.observed == "connected":
        return verdict
    if diagnosis is not None:
        seen = diagnosis.get("cause") if isinstance(diagnosis, dict) else None
        at_gateway = _gateway_firewall_drops(verdict.observed, gateway_counters)
        if seen == "no-response" and at_gateway:
            # The capture point sees a packet before the host's firewall drops it: the
            # captures show "arrived, never answered", the gateway's firewall counted the drop.
            return replace(verdict, evidence={**verdict.evidence, "corroborated by": (
                f"the gateway's own firewall: {at_gateway[0]} = {at_gateway[1]} (the captures show the packets "
                "reaching the gateway's interface, never answered)")})
        allowed = (diagnosis.get("alternatives") or []) if isinstance(diagnosis, dict) else []
        if seen != verdict.observed and verdict.observed in allowed:
            # The captures cannot tell the two apart (e.g. a large IP-fragmented IKE_AUTH was the
            # only packet to UDP 4500: fragments dropped, or the port blocked?). The client's
            # cause stands only where the edge's own counter for it confirms it.
            confirmed = _edge_confirms(verdict.observed, condition, counters)
            if confirmed is None:
                return replace(verdict, state=INCONCLUSIVE, fix="", reason=(
                    f"the client observed {verdict.observed}; the captures at both ends name {seen} and cannot "
                    f"rule out {verdict.observed}, and no edge counter decides between them"))
            return replace(verdict, evidence={**verdict.evidence, "corroborated by": (
                f"edge counter {confirmed[0]} = {confirmed[1]} (the captures name {seen} and cannot tell it from "
                f"{verdict.observed})")})
        if seen != verdict.observed:
            said = f"name {seen}" if seen else f"gave no cause ({diagnosis})"
            return replace(verdict, state=INCONCLUSIVE, fix="", reason=(
                f"the client observed {verdict.observed}, but the captures at both ends {said}"))
    if verdict.observed not in CAUSE_COUNTERS:
        return verdict
    kind, counter = CAUSE_COUNTERS[verdict.observed]
    if not condition.has(kind):
        return verdict  # not the edge's doing (e.g. the gateway's own firewall): nothing to count there
    dropped = counters.get(counter)
    evidence = {**verdict.evidence, "corroborated by": f"edge counter {counter} = {dropped}"}
    if dropped is None:
        return replace(verdict, state=INCONCLUSIVE, evidence=evidence, fix="", reason=(
            f"the client observed {verdict.observed}, but the edge reports no {counter} counter: "
            "the cause cannot be confirmed where the condition was applied"))
    if dropped == 0:
        return replace(verdict, state=INCONCLUSIVE, evidence=evidence, fix="", reason=(
            f"the client observed {verdict.observed}, but the edge dropped nothing ({counter} = 0): the loss "
            "happened elsewhere (a server that is down, or the condition on the wrong interface)"))
    return replace(verdict, evidence=evidence)


def _edge_confirms(cause: str, condition: Condition, counters: dict[str, int]) -> tuple[str, int] | None:
    """(counter, drops) when the edge applied the condition behind `cause` and counted drops for it."""
    if cause not in CAUSE_COUNTERS:
        return None
    kind, counter = CAUSE_COUNTERS[cause]
    dropped = counters.get(counter)
    return (counter, dropped) if condition.has(kind) and dropped else None


def _gateway_firewall_drops(cause: str, counters: dict[str, int] | None) -> tuple[str, int] | None:
    name = CAUSE_COUNTERS.get(cause, ("", ""))[1]
    dropped = (counters or {}).get(name, 0)
    return (name, dropped) if name and dropped > 0 else None


def nat_observed(verdict: Verdict, condition: Condition, nat: dict) -> Verdict:
    """A cell behind NAT passes only when the client's IKE SA shows the NAT and the move to 4500.

    Detected NAT (`local`: the gateway's NAT-D hash of the client's address did not match)
    is what proves the NAT; this lab's forced encapsulation (`forced`) does not.

    >>> v = Verdict("AOVPN-IKE-PORT-001", "connected", "connected", "pass", "behind NAT")
    >>> nat_observed(v, Condition.parse("nat"), {"local": False, "forced": True, "remote_port": "4500"}).state
    'inconclusive'
    """
    if verdict.state != PASS or verdict.observed != "connected" or not condition.has("nat"):
        return verdict
    if not nat.get("local"):
        return replace(verdict, state=INCONCLUSIVE, reason=(
            "connected, but the client's IKE SA shows no NAT detected from the NAT-D payloads: the NAT this cell "
            "is about was not observed" + (" (only this lab's forced UDP encapsulation)" if nat.get("forced") else "")))
    if str(nat.get("remote_port")) != "4500":
        return replace(verdict, state=INCONCLUSIVE, reason=(
            f"NAT was detected, but the IKE SA stayed on UDP {nat.get('remote_port')}, not 4500"))
    return verdict
