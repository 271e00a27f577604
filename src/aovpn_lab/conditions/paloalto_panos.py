"""A Palo Alto Networks firewall (PAN-OS) edge, driven with netmiko (device_type paloalto_panos).

Set `condition_driver: paloalto_panos`, `condition_interfaces: {inside: [ethernet1/2],
outside: [ethernet1/1]}` and `condition_zones: {inside: trust, outside: untrust}`. The
driver owns the zone protection profile AOVPN (discard-ip-frag), bound to the inside zone
(replacing any profile bound there), the security rules AOVPN-COND-ports and AOVPN-COND-esp
(moved to the top), the services AOVPN-udp-500/-udp-4500/-tcp-443, and the outside
interface's MTU. Changes go to the candidate configuration and take effect with `commit`;
a rejected command discards the candidate (`revert config`), so nothing is half-applied.
"""
from __future__ import annotations

from typing import Any

from . import setlines
from .model import Condition
from .rules import EffectiveRules, FragmentPolicy, MtuSetting, PortRule
from .vendor import VendorDriver

PROFILE = "AOVPN"
PORTS_RULE, ESP_RULE = "AOVPN-COND-ports", "AOVPN-COND-esp"
SERVICES = {
    "block-udp-500": ("AOVPN-udp-500", "udp", 500),
    "block-udp-4500": ("AOVPN-udp-4500", "udp", 4500),
    "block-tcp-443": ("AOVPN-tcp-443", "tcp", 443),
}
# PAN-OS services are TCP/UDP/SCTP ports only; ESP (IP protocol 50) is the App-ID ipsec-esp.
APPLICATIONS = {"ipsec-esp": [("esp", None)], "ike": [("udp", 500), ("udp", 4500)]}


class PaloAltoPanosDriver(VendorDriver):
    supports = frozenset(SERVICES) | {"open", "drop-ip-fragments", "mtu", "block-esp"}
    device_type = "paloalto_panos"
    vendor = "PAN-OS"
    candidate = True
    # PAN-OS CLI: "Invalid syntax.", "Unknown command: x", "Server error : ...", "Validation Error: ..."
    error_pattern = r"^(?:Invalid syntax|Unknown command|Server error|Validation Error|Error:).*(?:\n[ \t]+\S.*)?$"
    fixes = (
        (r"zone", "set condition_zones {inside: ZONE, outside: ZONE} to the firewall's zone names"),
        (r"interface|ethernet", "set condition_interfaces to the firewall's layer3 interface names (ethernet1/N)"),
    )

    def commands(self, condition: Condition) -> list[str]:
        inside, outside = self.zones
        base = "rulebase security rules"
        cmds = [f"delete {base} {PORTS_RULE}", f"delete {base} {ESP_RULE}",
                f"set network profiles zone-protection-profile {PROFILE} discard-ip-frag "
                f"{'yes' if condition.has('drop-ip-fragments') else 'no'}",
                f"set zone {inside} network zone-protection-profile {PROFILE}",
                f"set network interface ethernet {self.outside} layer3 mtu {condition.path_mtu or self.default_mtu}"]
        services = [SERVICES[p.kind] for p in condition.parts if p.kind in SERVICES]
        for name, proto, port in services:
            cmds.append(f"set service {name} protocol {proto} port {port}")
        match = f"from {inside} to {outside} source any destination any"
        if services:
            cmds += [f"set {base} {PORTS_RULE} {match} application any service "
                     f"[ {' '.join(s[0] for s in services)} ] action deny",
                     f"move {base} {PORTS_RULE} top"]
        if condition.has("block-esp"):
            cmds += [f"set {base} {ESP_RULE} {match} application ipsec-esp service application-default action deny",
                     f"move {base} {ESP_RULE} top"]
        return cmds

    def commit(self, conn: Any) -> None:
        conn.commit()

    def discard(self, conn: Any) -> None:
        conn.send_config_set(["revert config"], enter_config_mode=False, exit_config_mode=False,
                             error_pattern=self.error_pattern)

    def effective_rules(self) -> EffectiveRules:
        self.show("set cli config-output-format set")
        return parse_running(self.show("show config running"))


def parse_running(text: str) -> EffectiveRules:
    """Deny rules, zone protection and MTUs from `show config running` in set format."""
    services: dict[str, tuple[str, int]] = {}
    rules: dict[str, dict[str, list[str]]] = {}
    profiles: dict[str, bool] = {}
    zones: dict[str, str] = {}
    mtus = []
    for w in setlines.lines(text):
        if w[:1] == ["vsys"] and len(w) > 2:
            w = w[2:]                                   # 'set vsys vsys1 ...' on multi-vsys firewalls
        if w[:1] == ["service"] and len(w) >= 6 and w[2] == "protocol" and w[4] == "port" and w[5].isdigit():
            services[w[1]] = (w[3], int(w[5]))
        elif w[:3] == ["rulebase", "security", "rules"] and len(w) > 4:
            fields = rules.setdefault(w[3], {})
            rest = w[4:]
            while rest:
                key, rest = rest[0], rest[1:]
                vals = setlines.members(rest)
                rest = rest[len(vals) + 2:] if rest[:1] == ["["] else rest[1:]
                fields[key] = vals
        elif w[:3] == ["network", "profiles", "zone-protection-profile"] and w[4:5] == ["discard-ip-frag"]:
            profiles[w[3]] = w[5:6] == ["yes"]
        elif w[:1] == ["zone"] and w[2:4] == ["network", "zone-protection-profile"]:
            zones[w[1]] = w[4]
        elif w[:3] == ["network", "interface", "ethernet"] and w[4:6] == ["layer3", "mtu"]:
            mtus.append(MtuSetting(int(w[6]), w[3]))
    out = []
    for fields in rules.values():
        if fields.get("action") != ["deny"]:
            continue
        where = ",".join(fields.get("from", []))
        for app in fields.get("application", []):
            out += [PortRule("deny", proto, port, where) for proto, port in APPLICATIONS.get(app, [])]
        for svc in fields.get("service", []):
            if svc in services:
                out.append(PortRule("deny", services[svc][0], services[svc][1], where))
    frags = tuple(FragmentPolicy(profiles.get(p, False), zone) for zone, p in zones.items())
    return EffectiveRules(tuple(out), frags, tuple(mtus))
