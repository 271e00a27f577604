"""The cause catalogue (profiles/causes.yml) holds every cause a probe can name, each with
its meaning and fix; the probes' own cause lists are read from it."""
from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

import aovpn_lab
from aovpn_lab.conditions.model import DROP_COUNTERS, Condition
from aovpn_lab.corroboration import CAUSE_CONDITIONS
from aovpn_lab.errors import AovpnError
from aovpn_lab.ike import probe as ike_probe
from aovpn_lab.results import causes
from aovpn_lab.sstp import client as sstp_client
from aovpn_lab.tlsvpn import probe as tls_probe

SRC = Path(aovpn_lab.__file__).parent
# Where each protocol's causes are named in code.
SOURCES = {
    "ikev2": ["ike/probe.py"],
    "sstp": ["sstp/client.py", "sstp/probe.py", "sstp/transport.py"],
    "tlsvpn": ["tlsvpn/probe.py"],
}
CAUSE_CALLS = {"_fail", "Failed", "TransportFailure"}  # their first argument is a cause
CLASSIFIERS = {"classify", "classify_failure", "explain_silence"}  # they return (cause, detail)


def _strings(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body) | _strings(node.orelse)
    return set()


def _is_cause(target: ast.AST) -> bool:
    return isinstance(target, ast.Attribute) and target.attr == "cause"


def named_in(path: Path) -> set[str]:
    """Every string the code passes or assigns as a cause."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in CAUSE_CALLS and node.args:
                found |= _strings(node.args[0])
            found |= {s for k in node.keywords if k.arg == "cause" for s in _strings(k.value)}
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if _is_cause(target):
                    found |= _strings(node.value)
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    found |= {s for t, v in zip(target.elts, node.value.elts) if _is_cause(t) for s in _strings(v)}
        elif isinstance(node, ast.FunctionDef) and node.name in CLASSIFIERS:
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Tuple):
                    found |= _strings(ret.value.elts[0])
    return found


def reachability_verdicts() -> set[str]:
    """What the differential test can name (explain_silence passes it on as the cause)."""
    from aovpn_lab.ike.craft import reachability_verdict
    return {reachability_verdict(*answers)[0] for answers in itertools.product((True, False), repeat=3)}


def test_every_cause_in_the_catalogue_has_protocols_a_meaning_and_a_fix():
    catalogue = causes.catalogue()
    assert len(catalogue) >= 15
    for cause in catalogue.values():
        assert cause.protocols and set(cause.protocols) <= set(causes.PROTOCOLS), cause
        assert len(cause.meaning) > 20 and len(cause.fix) > 5, cause


@pytest.mark.parametrize("protocol", sorted(SOURCES))
def test_every_cause_a_probe_can_name_is_in_the_catalogue(protocol):
    named = set().union(*(named_in(SRC / f) for f in SOURCES[protocol]))
    if protocol == "ikev2":
        named |= reachability_verdicts() - {"none"}  # explain_silence turns 'none' into no-response
    assert named == set(causes.names(protocol)), (
        f"named in code but not in profiles/causes.yml: {sorted(named - set(causes.names(protocol)))}; "
        f"in the catalogue but never named: {sorted(set(causes.names(protocol)) - named)}")
    for name in named:
        assert causes.get(name).meaning and causes.get(name).fix


def test_the_probes_cause_lists_are_the_catalogues():
    assert ike_probe.CAUSES == causes.names("ikev2")
    assert sstp_client.CAUSES == causes.names("sstp")
    assert tls_probe.CAUSES == causes.names("tlsvpn")
    assert {"none", "auth-failed"} <= set(ike_probe.CAUSES) & set(sstp_client.CAUSES) & set(tls_probe.CAUSES)


def test_each_corroborated_cause_names_a_condition_with_a_drop_counter():
    assert set(CAUSE_CONDITIONS) == {"udp-500-blocked", "udp-4500-blocked", "ip-fragments-dropped",
                                     "ike-fragments-dropped", "tcp-443-blocked"}
    for cause, condition in CAUSE_CONDITIONS.items():
        assert Condition.parse(condition).has(condition) and condition in DROP_COUNTERS, cause


def test_a_failed_result_says_the_catalogues_fix():
    r = ike_probe.IkeProbeResult(False, "no-proposal-chosen", 12, "203.0.113.10", "windows10-default")
    assert r.outcome == "no-proposal-chosen"
    assert r.summary().splitlines()[-1] == f"  fix: {causes.get('no-proposal-chosen').fix}"
    assert "fix:" not in ike_probe.IkeProbeResult(True, "none", 12, "203.0.113.10", "p").summary()


@pytest.mark.parametrize("entry, missing", [
    ("  x:\n    protocols: [sstp]\n    meaning: m\n", "fix"),
    ("  x:\n    meaning: m\n    fix: f\n", "protocols"),
])
def test_an_entry_without_its_meaning_fix_or_protocols_is_refused(tmp_path, entry, missing):
    path = tmp_path / "causes.yml"
    path.write_text("causes:\n" + entry)
    with pytest.raises(AovpnError, match=f"cause 'x' has no '{missing}'"):
        causes.load(path)


def test_an_unknown_protocol_or_cause_is_refused(tmp_path):
    path = tmp_path / "causes.yml"
    path.write_text("causes:\n  x:\n    protocols: [l2tp]\n    meaning: m\n    fix: f\n")
    with pytest.raises(AovpnError, match="unknown protocol"):
        causes.load(path)
    with pytest.raises(AovpnError, match="not in"):
        causes.get("no-such-cause")
