"""A Check Point gateway (Gaia), driven with netmiko (device_type checkpoint_gaia).

Gaia's clish configures the operating system, not the firewall: the Access Control policy
and IPS protections (IP fragment dropping among them) live on the Management Server and
reach the gateway only by "Install Policy" from SmartConsole or the Management API. So this
driver applies what clish owns, the outside interface's MTU (`set interface IF mtu N`), and
refuses the rest in one line naming where to do it.
"""
from __future__ import annotations

import re

from .model import Condition
from .rules import EffectiveRules, MtuSetting
from .vendor import VendorDriver

POLICY_ONLY = ("the Access Control policy lives on the Management Server, not in Gaia clish; add a Drop rule "
               "for the service in SmartConsole (Security Policies > Access Control) or with the Management "
               "API (add access-rule, then install-policy)")


class CheckpointGaiaDriver(VendorDriver):
    supports = frozenset({"open", "mtu"})
    device_type = "checkpoint_gaia"
    vendor = "Gaia"
    # clish: "CLINFR0329  Invalid command:'...'." and "CLINFR0409  ..." style errors.
    error_pattern = r"^(?:CLINFR\d+|Invalid command|Incomplete command|Error:).*$"
    unsupported = {
        "drop-ip-fragments": "IP fragment dropping is an IPS/Inspection Settings protection set on the "
                             "Management Server; do it in SmartConsole (IPS > IP Fragments, "
                             "'Forbid IP fragments') and install policy",
        "block-udp-500": POLICY_ONLY, "block-udp-4500": POLICY_ONLY, "block-esp": POLICY_ONLY,
        "block-tcp-443": POLICY_ONLY,
        "nat": "NAT rules are part of the policy on the Management Server (SmartConsole > NAT)",
    }
    fixes = (
        # Gaia gives its configuration lock to one administrator at a time; taking it is a person's call.
        (r"Config lock", "another administrator holds Gaia's configuration lock: wait for them, or run "
                         "'lock database override' in clish as ansible_user (it takes their write access), then again"),
        (r"interface", "set condition_interfaces to the gateway's interface names (show interfaces)"),
    )

    def commands(self, condition: Condition) -> list[str]:
        # clish applies each 'set' at once; 'save config' makes it survive a reboot, which a test edge need not.
        return [f"set interface {self.outside} mtu {condition.path_mtu or self.default_mtu}"]

    def send(self, commands: list[str]) -> None:
        conn = self._session()
        self.changed = []
        for step, cmd in enumerate(commands, 1):
            out = conn.send_command(cmd, read_timeout=30)
            m = re.search(self.error_pattern, out, flags=re.M)
            if m:
                self._rejected(step, cmd, commands, m.group(0).strip())
            self.changed.append(cmd)

    def leave_config(self, conn) -> None:
        """clish has no configuration mode to leave."""

    def effective_rules(self) -> EffectiveRules:
        out = self.show(f"show interface {self.outside} mtu")
        m = re.search(r"^\s*mtu\s+(\d+)", out, flags=re.M | re.I)
        return EffectiveRules(mtus=(MtuSetting(int(m.group(1)), self.outside),) if m else ())
