"""The lab's nftables edge read back into the same port-rule model the vendor drivers give."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from aovpn_lab.conditions.linux_nft import ruleset_rules
from aovpn_lab.conditions.model import Condition
from aovpn_lab.conditions.rules import PortRule, expected

NFT = Path(__file__).resolve().parents[1] / "data" / "conditions" / "nft"


@pytest.mark.parametrize("path", sorted(NFT.glob("*.json")), ids=lambda p: p.stem)
def test_every_recorded_ruleset_reads_back_as_its_condition(path):
    rules = ruleset_rules(json.loads(path.read_text()))
    # file names stand for conditions: mtu-1200_drop-ip-fragments = mtu:1200+drop-ip-fragments
    want = expected(Condition.parse(path.stem.replace("mtu-", "mtu:").replace("_", "+")))
    assert rules.denied == want.denied
    assert rules.drops_fragments == want.drops_fragments


def test_fragment_drops_sit_in_the_chain_before_conntrack():
    rules = ruleset_rules(json.loads((NFT / "block-udp-500+block-esp+drop-ip-fragments.json").read_text()))
    assert [f.where for f in rules.fragments] == ["raw_prerouting"]
    assert PortRule("deny", "esp", None, "forward_filter") in rules.rules


def test_rules_of_other_tables_are_not_the_edge_conditions():
    other = {"nftables": [{"rule": {"family": "inet", "table": "firewalld", "chain": "x", "expr": [{"drop": None}]}}]}
    assert ruleset_rules(other).rules == () and not ruleset_rules(other).drops_fragments
