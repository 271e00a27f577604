"""A Cisco ASA edge, driven with netmiko (device_type cisco_asa).

Set `condition_driver: cisco_asa` and `condition_interfaces: {inside: NAME, outside: NAME}`
on the edge host; the driver owns the access-list AOVPN-COND (bound inbound on the inside
interface, where the clients are), `fragment chain` on the inside interface and the
outside interface's MTU. Every change is immediate on an ASA (no commit), so a rejected
command leaves the ones before it in place, and the error lists them.
"""
from __future__ import annotations

import re

from .model import Condition
from .rules import EffectiveRules, FragmentPolicy, MtuSetting, PortRule
from .vendor import VendorDriver

ACL = "AOVPN-COND"
ACE = {
    "block-udp-500": "deny udp any any eq isakmp",
    "block-udp-4500": "deny udp any any eq 4500",
    "block-esp": "deny esp any any",
    "block-tcp-443": "deny tcp any any eq https",
}
# The ASA prints well-known ports by name in its listings.
PORT_NAMES = {"isakmp": 500, "https": 443, "http": 80, "domain": 53}
DEFAULT_CHAIN = 24     # the ASA's default: up to 24 fragments per packet


class CiscoAsaDriver(VendorDriver):
    supports = frozenset(ACE) | {"open", "drop-ip-fragments", "mtu"}
    device_type = "cisco_asa"
    vendor = "ASA"
    # "ERROR: % Invalid input detected at '^' marker." and friends (ASA command reference).
    error_pattern = r"^(?:ERROR:|% ?Invalid|% ?Incomplete|% ?Ambiguous).*$"
    fixes = (
        (r"interface|nameif", "set condition_interfaces to the ASA's nameif names (show nameif)"),
        (r"privilege|authoriz|not permitted", "give ansible_user privilege 15 or set ansible_become_password "
                                              "(the enable password)"),
    )

    def commands(self, condition: Condition) -> list[str]:
        # Start from a clean slate every time, so conditions never stack.
        cmds = [f"clear configure access-list {ACL}",
                # 'fragment chain 1' = only unfragmented packets pass.
                f"fragment chain {1 if condition.has('drop-ip-fragments') else DEFAULT_CHAIN} {self.inside}",
                f"mtu {self.outside} {condition.path_mtu or self.default_mtu}"]
        aces = [ACE[p.kind] for p in condition.parts if p.kind in ACE]
        if aces:
            cmds += [f"access-list {ACL} extended {ace}" for ace in aces]
            cmds += [f"access-list {ACL} extended permit ip any any",
                     f"access-group {ACL} in interface {self.inside}"]
        return cmds

    def effective_rules(self) -> EffectiveRules:
        acl = self.show(f"show access-list {ACL}")
        return EffectiveRules(parse_access_list(acl, ACL, self.inside),
                              parse_fragment(self.show("show running-config fragment")),
                              parse_mtu(self.show("show running-config mtu")))


def parse_access_list(text: str, name: str, where: str = "") -> tuple[PortRule, ...]:
    """The ACEs of access-list `name` in `show access-list` output (ntc-templates' cisco_asa template)."""
    from ntc_templates.parse import parse_output

    if "does not exist" in text:
        return ()
    rules = []
    for row in parse_output(platform="cisco_asa", command="show access-list", data=text):
        if row.get("acl_name") != name or not row.get("action") or row.get("state") == "inactive":
            continue
        proto = {"ip": "any", "udp": "udp", "tcp": "tcp", "esp": "esp", "50": "esp"}.get(row["protocol"])
        if proto is None:
            continue
        port = row.get("dst_port") or None
        rules.append(PortRule("allow" if row["action"] == "permit" else "deny", proto,
                              _port(port) if port else None, where=where))
    return tuple(rules)


def parse_fragment(text: str) -> tuple[FragmentPolicy, ...]:
    """`show running-config fragment`: 'fragment chain 1 IF' means fragments are dropped on IF."""
    return tuple(FragmentPolicy(int(m.group(1)) == 1, m.group(2))
                 for m in re.finditer(r"^fragment chain (\d+) (\S+)\s*$", text, flags=re.M))


def parse_mtu(text: str) -> tuple[MtuSetting, ...]:
    """`show running-config mtu`: one 'mtu IF N' line per interface."""
    return tuple(MtuSetting(int(m.group(2)), m.group(1)) for m in re.finditer(r"^mtu (\S+) (\d+)\s*$", text, flags=re.M))


def _port(text: str) -> int | None:
    """A destination port as the ASA lists it: a number or a well-known name (None if unknown)."""
    return PORT_NAMES.get(text, int(text) if text.isdigit() else None)
