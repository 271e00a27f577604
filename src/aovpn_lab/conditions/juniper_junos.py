"""A Juniper SRX (Junos) edge, driven with netmiko (device_type juniper_junos).

Set `condition_driver: juniper_junos`, `condition_interfaces: {inside: [ge-0/0/1], outside:
[ge-0/0/0]}` and `condition_zones: {inside: trust, outside: untrust}`. The driver owns the
screen `ids-option AOVPN` (`ip block-frag`, bound to the inside zone, replacing a screen
bound there), the policy AOVPN-COND from the inside to the outside zone (put before
`condition_policy_before` when set; Junos matches policies in order), the applications
AOVPN-*, and the outside interface's `family inet mtu`. Changes are committed; a rejected
command or a failed commit is undone with `rollback 0`, so nothing is half-applied.
"""
from __future__ import annotations

from typing import Any

from . import setlines
from .model import Condition
from .rules import EffectiveRules, FragmentPolicy, MtuSetting, PortRule
from .vendor import VendorDriver

SCREEN, POLICY = "AOVPN", "AOVPN-COND"
APPS = {
    "block-udp-500": ("AOVPN-udp-500", "udp", 500),
    "block-udp-4500": ("AOVPN-udp-4500", "udp", 4500),
    "block-tcp-443": ("AOVPN-tcp-443", "tcp", 443),
    "block-esp": ("AOVPN-esp", "esp", None),
}


class JuniperJunosDriver(VendorDriver):
    supports = frozenset(APPS) | {"open", "drop-ip-fragments", "mtu"}
    device_type = "juniper_junos"
    vendor = "Junos"
    candidate = True
    # Junos CLI: "syntax error.", "error: ...", "unknown command.", "missing argument."
    error_pattern = r"^\s*(?:syntax error|error:|unknown command|missing argument|invalid value).*$"
    fixes = (
        (r"zone", "set condition_zones {inside: ZONE, outside: ZONE} to the SRX's security zones"),
        (r"interface|ge-|xe-", "set condition_interfaces to the SRX's interface names"),
        (r"permission|not allowed", "give ansible_user a login class that may configure security"),
    )

    def commands(self, condition: Condition) -> list[str]:
        inside, outside = self.zones
        policy = f"security policies from-zone {inside} to-zone {outside} policy {POLICY}"
        iface = f"interfaces {self.outside} unit 0 family inet mtu"
        # 'delete' of a statement that is not there is only a warning on Junos.
        cmds = [f"delete security screen ids-option {SCREEN}", f"delete security zones security-zone {inside} screen",
                f"delete {policy}"]
        if condition.has("drop-ip-fragments"):
            cmds += [f"set security screen ids-option {SCREEN} ip block-frag",
                     f"set security zones security-zone {inside} screen {SCREEN}"]
        cmds.append(f"set {iface} {condition.path_mtu}" if condition.path_mtu else f"delete {iface}")
        apps = [APPS[p.kind] for p in condition.parts if p.kind in APPS]
        for name, proto, port in apps:
            cmds.append(f"set applications application {name} protocol {proto}"
                        + (f" destination-port {port}" if port else ""))
        if apps:
            cmds += [f"set {policy} match source-address any destination-address any application "
                     f"[ {' '.join(a[0] for a in apps)} ]", f"set {policy} then deny"]
            before = self.host.var("condition_policy_before")
            if before:
                cmds.append(f"insert {policy} before policy {before}")
        return cmds

    def commit(self, conn: Any) -> None:
        conn.commit()

    def discard(self, conn: Any) -> None:
        conn.send_config_set(["rollback 0"], enter_config_mode=False, exit_config_mode=False,
                             error_pattern=self.error_pattern)

    def effective_rules(self) -> EffectiveRules:
        return parse_display_set(self.show("show configuration security | display set")
                                 + "\n" + self.show("show configuration applications | display set")
                                 + "\n" + self.show("show configuration interfaces | display set"))


def parse_display_set(text: str) -> EffectiveRules:
    """Deny policies, block-frag screens and inet MTUs from `show configuration ... | display set`."""
    apps: dict[str, dict[str, str]] = {}
    policies: dict[tuple[str, str], dict[str, list[str]]] = {}
    screens: set[str] = set()
    bound: dict[str, str] = {}
    mtus = []
    for w in setlines.lines(text):
        if w[:2] == ["applications", "application"] and len(w) >= 5:
            apps.setdefault(w[2], {})[w[3]] = w[4]
        elif w[:3] == ["security", "screen", "ids-option"] and w[4:6] == ["ip", "block-frag"]:
            screens.add(w[3])
        elif w[:3] == ["security", "zones", "security-zone"] and w[4:5] == ["screen"]:
            bound[w[3]] = w[5]
        elif w[:2] == ["security", "policies"] and len(w) > 8 and w[2] == "from-zone":
            fields = policies.setdefault((w[3], w[7]), {})
            rest = w[8:]
            if rest[:1] == ["match"] and "application" in rest:
                fields["application"] = setlines.members(rest[rest.index("application") + 1:])
            elif rest[:1] == ["then"]:
                fields["then"] = rest[1:2]
        elif w[:1] == ["interfaces"] and w[2:3] == ["unit"] and w[4:7] == ["family", "inet", "mtu"]:
            mtus.append(MtuSetting(int(w[7]), w[1]))
    rules = []
    for (zone, _), fields in policies.items():
        if fields.get("then") not in (["deny"], ["reject"]):
            continue
        for app in fields.get("application", []):
            a = apps.get(app, {})
            proto = a.get("protocol")
            if proto in ("udp", "tcp", "esp"):
                port = a.get("destination-port")
                rules.append(PortRule("deny", proto, int(port) if port and port.isdigit() else None, zone))
    frags = tuple(FragmentPolicy(screen in screens, zone) for zone, screen in bound.items())
    return EffectiveRules(tuple(rules), frags, tuple(mtus))
