"""The reason model: what a matrix cell must show, what this gateway will show, and why.

The model is a table of rules (profiles/expectations.yml), one row per expectation like
strongSwan's evaltest.dat; this module computes the facts the rows test and evaluates
them, first match wins. For IKEv2 the facts come from data only: the client profile's
proposals and fragmentation, the gateway's crypto policy, fragmentation setting and
certificate sizes, and the network condition.

- `predict_ikev2(profile, condition, facts)`: what THIS gateway will do, with the reason
  and the fix - the explanation a failing cell shows.
- `require_ikev2(profile, condition, facts)`: what a gateway that follows every
  recommendation (hardened policy, RFC 7383 on) would do with the same certificates on
  the same network - the expectation a cell is judged by.
- `expect(section, condition, facts, **values)`: any other section's expectation.

    >>> from aovpn_lab.conditions.model import Condition
    >>> from aovpn_lab.ike import profiles
    >>> weak = GatewayFacts(policy="weak", fragmentation=True)
    >>> require_ikev2(profiles.get("windows10-default"), Condition.parse("open"), weak).outcome
    'no-proposal-chosen'
    >>> predict_ikev2(profiles.get("windows10-default"), Condition.parse("open"), weak).outcome
    'connected'
    >>> expect("sstp", "block-tcp-443", condition="block-tcp-443").outcome
    'tcp-443-blocked'
"""
from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .conditions.model import KINDS, Condition
from .errors import AovpnError
from .ike.profiles import ClientProfile
from .verdict import Expectation

POLICIES_FILE = paths.PROFILES / "gateway-policies.yml"
RULES_FILE = paths.PROFILES / "expectations.yml"
NOT_APPLICABLE = "not-applicable"
# strongSwan's charon.fragment_size default: the IP datagram size of an RFC 7383 fragment.
IKE_FRAGMENT_SIZE = 1280
RECOMMENDED = {"policy": "hardened", "fragmentation": True, "firewall": "correct"}


@dataclass(frozen=True)
class Vocabulary:
    """What a section's rows may test (facts) and fill in ({values}), beside its texts."""
    facts: tuple[str, ...] = ()
    values: tuple[str, ...] = ()


VOCABULARY: dict[str, Vocabulary] = {
    "ikev2": Vocabulary(
        facts=("esp-in-udp-only",          # the gateway never uses native ESP (always UDP-encapsulated)
               "refuses-proposals",        # the gateway's policy shares no proposal with the profile
               "firewall-missing-4500",    # the gateway's own firewall drops UDP 4500
               "ike-auth-too-big",         # an IKE_AUTH (+ 32 B of IP/UDP/non-ESP marker) exceeds the path MTU
               "client-rfc7383", "gateway-rfc7383", "rfc7383",   # IKEv2 fragmentation on: client, gateway, both
               "ike-fragments-too-big",    # RFC 7383 fragments (IKE_FRAGMENT_SIZE) exceed the path MTU
               "policy-named",             # the gateway's policy is known by name
               "below-hardened"),          # a known policy, and the profile shares no proposal with a hardened one
        values=("profile", "proposals", "policy", "path_mtu", "message", "size", "request", "response",
                "fragment_size", "reason")),
    "sstp": Vocabulary(values=("condition",)),
    "sstp_binding": Vocabulary(facts=("server-expects-another-certificate",)),
    "tls_posture": Vocabulary(),
    "tlsvpn": Vocabulary(values=("condition",)),
    "path": Vocabulary(values=("condition",)),
    "fallback": Vocabulary(facts=("no-fallback",   # the strategy model predicts no fallback after IKEv2 failed
                                  # the IKEv2 attempt's cause
                                  "udp-4500-blocked", "ip-fragments-dropped", "ike-fragments-dropped"),
                           values=("predicted", "finding")),
    "ike_policy": Vocabulary(),
    "esp_policy": Vocabulary(),
    "certificate": Vocabulary(facts=("needs-fragmentation", "gateway-rfc7383"), values=("identity", "count")),
}
CONDITION_TERMS = tuple(KINDS) + ("alone",)   # `alone`: no other condition combined with it
COLUMNS = ("condition", "facts", "outcome", "requirement", "reason", "fix")


# -- the table --------------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    """One word of a row: holds when any of its alternatives ((name, wanted) pairs: a|b, !a) does."""
    alternatives: tuple[tuple[str, bool], ...]

    def holds(self, truth: Mapping[str, bool]) -> bool:
        return any(truth.get(name, False) == wanted for name, wanted in self.alternatives)


@dataclass(frozen=True)
class Rule:
    terms: tuple[Term, ...]
    outcome: str
    requirement: str
    reason: str
    fix: str

    def matches(self, truth: Mapping[str, bool]) -> bool:
        return all(t.holds(truth) for t in self.terms)

    def expectation(self, values: Mapping[str, Any]) -> Expectation:
        return Expectation(*(text.format_map(values) for text in (self.outcome, self.requirement, self.reason,
                                                                  self.fix)))


@dataclass(frozen=True)
class Section:
    name: str
    rules: tuple[Rule, ...]
    when_connected: tuple[Rule, ...]
    texts: Mapping[str, str]

    def first(self, truth: Mapping[str, bool], values: Mapping[str, Any], rules: tuple[Rule, ...] | None = None
              ) -> Expectation | None:
        rule = next((r for r in (self.rules if rules is None else rules) if r.matches(truth)), None)
        return None if rule is None else rule.expectation({**self.texts, **values})


def _terms(text: Any, known: Iterable[str], where: str, column: str) -> tuple[Term, ...]:
    known = tuple(known)
    terms = []
    for word in str(text or "").split():
        alternatives = []
        for alt in word.split("|"):
            name = alt.removeprefix("!")
            if name not in known:
                raise AovpnError(f"{where}.{column}: unknown term '{name}'",
                                 hint=f"use one of {', '.join(known) or '(none here)'}; '!' negates, '|' joins "
                                      "alternatives")
            alternatives.append((name, not alt.startswith("!")))
        terms.append(Term(tuple(alternatives)))
    return tuple(terms)


def _rule(row: Any, vocabulary: Vocabulary, texts: Mapping[str, str], where: str) -> Rule:
    if not isinstance(row, dict):
        raise AovpnError(f"{where}: expected a row", hint="write {condition, facts, outcome, requirement, "
                                                          "reason, fix} (flow style, one row per expectation)")
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise AovpnError(f"{where}: unknown column {unknown[0]}", hint=f"columns are {', '.join(COLUMNS)}")
    for column in ("outcome", "requirement", "reason"):
        if not row.get(column):
            raise AovpnError(f"{where}.{column}: missing", hint="every row names its outcome, requirement and reason")
    from . import requirements
    if row["requirement"] not in requirements.catalogue():
        raise AovpnError(f"{where}.requirement: {row['requirement']} is not in requirements.yml",
                         hint="name a requirement of requirements.yml (or add it there)")
    fillable = set(vocabulary.values) | set(texts)
    for column in ("outcome", "reason", "fix"):
        for _, name, _, _ in string.Formatter().parse(str(row.get(column) or "")):
            if name is not None and name not in fillable:
                raise AovpnError(f"{where}.{column}: unknown value {{{name}}}",
                                 hint=f"use one of {', '.join(sorted(fillable)) or '(none here)'}")
    terms = _terms(row.get("condition"), CONDITION_TERMS, where, "condition") \
        + _terms(row.get("facts"), vocabulary.facts, where, "facts")
    return Rule(terms, str(row["outcome"]), str(row["requirement"]), " ".join(str(row["reason"]).split()),
                " ".join(str(row.get("fix") or "").split()))


def load(path: Path = RULES_FILE) -> dict[str, Section]:
    """The rule table, validated: every error names the file, the row and the fix."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    name = str(path)
    missing = sorted(set(VOCABULARY) - set(data))
    if missing:
        raise AovpnError(f"{name}: section {missing[0]}: missing", hint="add its rules (see the file's header)")
    out = {}
    for section, body in data.items():
        if section not in VOCABULARY:
            raise AovpnError(f"{name}: unknown section {section}", hint=f"use one of {', '.join(VOCABULARY)}")
        body = body or {}
        texts = {k: " ".join(str(v).split()) for k, v in (body.get("texts") or {}).items()}
        lists = {}
        for key in ("rules", "when_connected"):
            rows = body.get(key) or []
            lists[key] = tuple(_rule(row, VOCABULARY[section], texts, f"{name}: {section}.{key}[{i}]")
                               for i, row in enumerate(rows))
        if not lists["rules"] or lists["rules"][-1].terms:
            raise AovpnError(f"{name}: {section}.rules: the last row must match anything",
                             hint="end the rules with a default row (no condition, no facts)")
        out[section] = Section(section, lists["rules"], lists["when_connected"], texts)
    return out


@lru_cache(maxsize=1)
def table() -> dict[str, Section]:
    return load()


def _truth(condition: Condition | None, facts: Iterable[str], section: str) -> dict[str, bool]:
    facts = set(facts)
    stray = facts - set(VOCABULARY[section].facts)
    if stray:
        raise ValueError(f"{section}: facts {sorted(stray)} are not in its vocabulary")
    truth = {f: True for f in facts}
    if condition is not None:
        truth.update({kind: condition.has(kind) for kind in KINDS}, alone=not condition.also)
    return truth


def expect(section: str, condition: Condition | str | None = None, facts: Iterable[str] = (), /,
           **values: Any) -> Expectation:
    """The first row of `section` that holds for the condition and the (true) facts."""
    if isinstance(condition, str):
        condition = Condition.parse(condition)
    result = table()[section].first(_truth(condition, facts, section), values)
    assert result is not None   # load() ends every section with a default row
    return result


def expect_fallback(predicted: str, ike_cause: str, finding: str) -> Expectation:
    """A fallback cell's expectation: the strategy model's prediction, its finding, and
    where a Windows client does not fall back, a fix for what loses IKE_AUTH."""
    facts = {ike_cause} & set(VOCABULARY["fallback"].facts)
    if predicted == "ikev2-failed-no-fallback":
        facts.add("no-fallback")
    return expect("fallback", None, facts, predicted=predicted, finding=finding)


# -- IKEv2: the gateway's facts ------------------------------------------------------

@dataclass(frozen=True)
class GatewayFacts:
    """What is known about a gateway before testing it (None: unknown, e.g. an external gateway)."""
    policy: str | None = None
    fragmentation: bool | None = None
    ike_auth_request: int | None = None    # predicted size of the client's IKE_AUTH (bytes)
    ike_auth_response: int | None = None   # predicted size of the gateway's IKE_AUTH
    firewall: str | None = None            # server-side rules: correct, missing-4500, no-esp
    native_esp: bool | None = None         # False: the IPsec data path never sends IP protocol 50


@lru_cache(maxsize=1)
def gateway_policies() -> dict[str, dict]:
    return (yaml.safe_load(POLICIES_FILE.read_text()) or {}).get("policies", {})


@lru_cache(maxsize=256)
def _transform_sets(proposal: str) -> dict[int, frozenset]:
    from .ike.transforms import parse_proposal
    sets: dict[int, set] = {}
    for ttype, tid, keylen in parse_proposal(proposal, "strongswan").transform_ids():
        sets.setdefault(ttype, set()).add((tid, keylen))
    return {t: frozenset(s) for t, s in sets.items()}


def proposals_overlap(client: tuple[str, ...], gateway: list[str]) -> bool:
    """True when some client proposal and some gateway proposal share a transform of every type."""
    for c in client:
        cs = _transform_sets(c)
        for g in gateway:
            gs = _transform_sets(g)
            if all(cs.get(t, set()) & gs.get(t, set()) if (cs.get(t) or gs.get(t)) else True for t in (1, 2, 3, 4)):
                return True
    return False


def require_ikev2(profile: ClientProfile, condition: Condition, gw: GatewayFacts, mtu: int = 1500) -> Expectation:
    """The outcome a gateway following every recommendation would give (certificate sizes kept)."""
    return predict_ikev2(profile, condition, replace(gw, **RECOMMENDED), mtu)


def predict_ikev2(profile: ClientProfile, condition: Condition, gw: GatewayFacts, mtu: int = 1500) -> Expectation:
    facts, values = ikev2_facts(profile, condition, gw, mtu)
    section = table()["ikev2"]
    truth = _truth(condition, facts, "ikev2")
    result = section.first(truth, values)
    assert result is not None
    if result.outcome == "connected":
        again = section.first(truth, {**values, "reason": result.reason}, section.when_connected)
        result = again or result
    return result


def ikev2_facts(profile: ClientProfile, condition: Condition, gw: GatewayFacts, mtu: int = 1500
                ) -> tuple[set[str], dict[str, Any]]:
    """The facts the ikev2 rows test, and the values their texts use."""
    policy = gateway_policies().get(gw.policy or "")
    hardened = gateway_policies().get(RECOMMENDED["policy"])
    path_mtu = condition.path_mtu or mtu
    big = [(name, size) for name, size in (("client's IKE_AUTH request", gw.ike_auth_request),
                                           ("gateway's IKE_AUTH response", gw.ike_auth_response))
           if size and size + 32 > path_mtu]
    facts = {name for name, holds in (
        ("esp-in-udp-only", gw.native_esp is False),
        ("refuses-proposals", policy is not None and not proposals_overlap(profile.ike, policy["ike"])),
        ("firewall-missing-4500", gw.firewall == "missing-4500"),
        ("ike-auth-too-big", bool(big)),
        ("client-rfc7383", bool(profile.fragmentation)),
        ("gateway-rfc7383", bool(gw.fragmentation)),
        ("rfc7383", bool(profile.fragmentation and gw.fragmentation)),
        ("ike-fragments-too-big", IKE_FRAGMENT_SIZE > path_mtu),
        ("policy-named", bool(gw.policy)),
        ("below-hardened", policy is not None and hardened is not None
         and not proposals_overlap(profile.ike, hardened["ike"])),
    ) if holds}
    message, size = big[0] if big else ("", 0)
    values = {"profile": profile.name, "proposals": ", ".join(profile.ike), "policy": gw.policy,
              "path_mtu": path_mtu, "message": message, "size": size, "request": gw.ike_auth_request or "?",
              "response": gw.ike_auth_response or "?", "fragment_size": IKE_FRAGMENT_SIZE}
    return facts, values
