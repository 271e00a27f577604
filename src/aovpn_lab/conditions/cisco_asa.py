"""A Cisco ASA edge, driven with netmiko (device_type cisco_asa).

No ASA runs on this machine: this driver is exercised only by unit tests of the
commands it generates (labelled `exercised_in_lab = False`), and by users against their
own devices. Set `condition_driver: cisco_asa` and `condition_interfaces: {inside:
NAME, outside: NAME}` on the edge host; the driver owns the access-list AOVPN-COND.
"""
from __future__ import annotations

from typing import Any

from ..errors import AovpnError, TargetError
from ..ssh import target_of
from .base import ConditionDriver, interfaces_of
from .model import Condition

ACL = "AOVPN-COND"
ACE = {
    "block-udp-500": "deny udp any any eq isakmp",
    "block-udp-4500": "deny udp any any eq 4500",
    "block-esp": "deny esp any any",
    "block-tcp-443": "deny tcp any any eq https",
}


class CiscoAsaDriver(ConditionDriver):
    supports = frozenset(ACE) | {"open", "drop-ip-fragments", "mtu"}
    exercised_in_lab = False

    def __init__(self, inventory, host):
        super().__init__(inventory, host)
        self.conn: Any = None

    @property
    def inside(self) -> str:
        return (interfaces_of(self.host, "inside") or ["inside"])[0]

    @property
    def outside(self) -> str:
        return (interfaces_of(self.host, "outside") or ["outside"])[0]

    def commands(self, condition: Condition) -> list[str]:
        # Start from a clean slate every time, so conditions never stack.
        cmds = [f"clear configure access-list {ACL}",
                # 'fragment chain 1' = only unfragmented packets pass; 24 is the ASA default.
                f"fragment chain {1 if condition.has('drop-ip-fragments') else 24} {self.inside}",
                f"mtu {self.outside} {condition.path_mtu or 1500}"]
        aces = [ACE[p.kind] for p in condition.parts if p.kind in ACE]
        if aces:
            cmds += [f"access-list {ACL} extended {ace}" for ace in aces]
            cmds += [f"access-list {ACL} extended permit ip any any",
                     f"access-group {ACL} in interface {self.inside}"]
        return cmds

    def open(self) -> None:
        from netmiko import ConnectHandler
        t = target_of(self.inventory, self.host)
        try:
            self.conn = ConnectHandler(device_type="cisco_asa", host=t.host, port=t.port, username=t.username,
                                       password=t.password, secret=self.host.var("ansible_become_password"),
                                       key_file=t.key_file, use_keys=bool(t.key_file), conn_timeout=10)
        except Exception as exc:
            raise TargetError(f"ASA {self.host.name} ({t.host}) is unreachable: {str(exc).splitlines()[0]}") from None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.disconnect()
            self.conn = None

    def send(self, commands: list[str]) -> None:
        if self.conn is None:
            raise AovpnError(f"ASA {self.host.name}: no session")
        self.conn.send_config_set(commands, error_pattern=r"ERROR:|% Invalid")
