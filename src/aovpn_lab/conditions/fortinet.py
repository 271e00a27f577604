"""A FortiGate (FortiOS) edge, driven with netmiko (device_type fortinet).

Set `condition_driver: fortinet` and `condition_interfaces: {inside: [port2], outside:
[port1]}`. The driver owns firewall policy `condition_policy_id` (default 9990, named
AOVPN-COND, a deny from the inside to the outside interface; disabled when no port is
blocked; FortiOS matches policies in order, so `move` it up once by hand or set
`condition_policy_before`), the custom services AOVPN-*, and the outside interface's MTU
(`mtu-override`). FortiOS saves a table entry at `next` and a shell at `end`, so a rejection
leaves the entries saved before it in place; the driver sends `abort` to discard the entry it
was in the middle of, and the error lists what was saved.

FortiOS has no switch that drops IP fragments: it reassembles them for inspection, and
neither firewall policies nor DoS policy anomalies match "is a fragment"; that condition is
refused in one line.
"""
from __future__ import annotations

import re
from typing import Any

from .model import Condition
from .rules import EffectiveRules, MtuSetting, PortRule
from .vendor import VendorDriver

SERVICES = {
    "block-udp-500": ("AOVPN-udp-500", ["set udp-portrange 500"]),
    "block-udp-4500": ("AOVPN-udp-4500", ["set udp-portrange 4500"]),
    "block-tcp-443": ("AOVPN-tcp-443", ["set tcp-portrange 443"]),
    "block-esp": ("AOVPN-esp", ["set protocol IP", "set protocol-number 50"]),
}


class FortinetDriver(VendorDriver):
    supports = frozenset(SERVICES) | {"open", "mtu"}
    device_type = "fortinet"
    vendor = "FortiOS"
    # FortiOS explains a refusal over a few lines ("entry not found in datasource", a blank line,
    # "value parse error before 'x'", "Command fail. Return code -N"): take them all, so the
    # message keeps the word the device stumbled on.
    error_pattern = (r"^(?:command parse error|value parse error|Command fail|entry not found|node_check_object fail)"
                     r"[^\n]*(?:\n+(?:value parse error|Command fail)[^\n]*)*")
    unsupported = {
        "drop-ip-fragments": "FortiOS has no setting that drops IP fragments (it reassembles them; firewall "
                             "and DoS policies cannot match a fragment); put a Linux or ASA edge in front for "
                             "that condition",
    }
    fixes = (
        (r"command parse error before '(?:firewall|system)'",
         "this FortiGate has VDOMs enabled (get system status: 'Virtual domain configuration: multiple'), where "
         "firewall and interface settings sit under config vdom / config global; the driver configures a "
         "FortiGate without VDOMs (docs/firewalls.md)"),
        (r"entry not found|node_check_object|interface|port",
         "set condition_interfaces to the FortiGate's interface names (show system interface: port1, ...)"),
    )

    @property
    def policy_id(self) -> int:
        return int(self.host.var("condition_policy_id", 9990))

    def commands(self, condition: Condition) -> list[str]:
        services = [SERVICES[p.kind] for p in condition.parts if p.kind in SERVICES]
        cmds: list[str] = []
        if services:
            cmds.append("config firewall service custom")
            for name, body in services:
                cmds += [f'edit "{name}"', *body, "next"]
            cmds.append("end")
        names = " ".join(f'"{name}"' for name, _ in services) or '"ALL"'
        cmds += ["config firewall policy", f"edit {self.policy_id}", 'set name "AOVPN-COND"',
                 f'set srcintf "{self.inside}"', f'set dstintf "{self.outside}"', 'set srcaddr "all"',
                 'set dstaddr "all"', f"set service {names}", 'set schedule "always"', "set action deny",
                 f"set status {'enable' if services else 'disable'}", "next"]
        before = self.host.var("condition_policy_before")
        if before:
            cmds.append(f"move {self.policy_id} before {before}")
        cmds.append("end")
        cmds += ["config system interface", f'edit "{self.outside}"']
        cmds += (["set mtu-override enable", f"set mtu {condition.path_mtu}"] if condition.path_mtu
                 else ["set mtu-override disable"])
        cmds += ["next", "end"]
        return cmds

    def config_mode_args(self) -> dict[str, Any]:
        return {}

    def leave_config(self, conn: Any) -> None:
        """After a refusal: `abort` the shell the session is in; only entries closed by next/end were saved."""
        depth, saved = 0, 0
        for i, cmd in enumerate(self.changed, 1):
            word = cmd.split()[0]
            if word in ("config", "edit"):
                depth += 1
            elif word == "next":
                depth, saved = depth - 1, i
            elif word == "end":
                depth, saved = 0, i
        self.changed = self.changed[:saved]
        if depth:
            conn.send_config_set(["abort"], enter_config_mode=False, exit_config_mode=False, cmd_verify=True)

    def effective_rules(self) -> EffectiveRules:
        policy = blocks(self.show(f"show firewall policy {self.policy_id}"))
        services = blocks(self.show("show firewall service custom"))
        iface = blocks(self.show(f"show system interface {self.outside}"))
        rules = []
        for fields in policy.values():
            # `show` leaves out settings at their default, and a policy's defaults are action deny, status enable.
            if fields.get("action", ["deny"]) != ["deny"] or fields.get("status", ["enable"]) != ["enable"]:
                continue
            where = " ".join(fields.get("srcintf", []))
            for svc in fields.get("service", []):
                s = services.get(svc, {})
                if s.get("protocol-number") == ["50"]:
                    rules.append(PortRule("deny", "esp", None, where))
                for proto in ("udp", "tcp"):
                    for rng in s.get(f"{proto}-portrange", []):
                        port = rng.split(":")[0].split("-")[0]
                        rules.append(PortRule("deny", proto, int(port) if port.isdigit() else None, where))
        mtus = tuple(MtuSetting(int(f["mtu"][0]), name) for name, f in iface.items()
                     if f.get("mtu-override") == ["enable"] and f.get("mtu"))
        return EffectiveRules(tuple(rules), (), mtus)


def blocks(text: str) -> dict[str, dict[str, list[str]]]:
    """The `edit NAME` blocks of a FortiOS `show` listing: {name: {key: [values]}}.

    >>> blocks('config firewall policy\\n    edit 9990\\n        set service "A" "B"\\n    next\\nend\\n')
    {'9990': {'service': ['A', 'B']}}
    """
    out: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r'edit "?([^"]+)"?$', line)
        if m:
            current = out.setdefault(m.group(1), {})
        elif line.startswith("set ") and current is not None:
            words = re.findall(r'"([^"]*)"|(\S+)', line[4:])
            vals = [a or b for a, b in words]
            current[vals[0]] = vals[1:]
        elif line == "next":
            current = None
    return out
