"""Ansible action: the lab SSTP gateway of one host (the softether role), in one step.

`present`: SoftEtherInstance.up (aovpn_lab.sstp.softether) keeps a running instance in the
host's namespace, restarts it only when the certificate or ports changed, and re-applies
the hub, its users and SecureNAT; `absent`: stops the processes it recorded, by PID.

An action, not a module: the gateway runs in a namespace of the controller's own machine,
so it runs in Ansible's worker on the controller (playbooks/action_plugins/README.md).
The users' passwords are no_log arguments handed to the instance in memory (never on a
command line or in an environment a process listing shows); results carry user names only.
"""
from __future__ import annotations

from pathlib import Path

from ansible.errors import AnsibleActionFail, AnsibleActionSkip
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
action: lab_softether
short_description: Keep a lab host's SoftEther SSTP gateway running and configured
options:
  state: {type: str, choices: [present, absent], default: present}
  purge: {type: bool, default: false, description: "absent: also delete the instance folder"}
  state_dir: {type: path, required: true}
  netns: {type: str}
  cert: {type: path, description: "fullchain PEM, leaf first"}
  key: {type: path}
  users: {type: list, elements: dict, description: "name, password (no_log)"}
  hub: {type: str, default: LAB}
  port: {type: int, default: 443}
  admin_port: {type: int, default: 5555}
  nat_host: {type: str}
  nat_mask: {type: str}
  dhcp_start: {type: str}
  dhcp_end: {type: str}
"""

SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    purge=dict(type="bool", default=False),
    state_dir=dict(type="path", required=True),
    netns=dict(type="str"), cert=dict(type="path"), key=dict(type="path"),
    users=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True), password=dict(type="str", required=True, no_log=True))),
    hub=dict(type="str", default="LAB"), port=dict(type="int", default=443),
    admin_port=dict(type="int", default=5555),
    nat_host=dict(type="str", default="198.19.2.1"), nat_mask=dict(type="str", default="255.255.255.0"),
    dhcp_start=dict(type="str", default="198.19.2.10"), dhcp_end=dict(type="str", default="198.19.2.200"),
)
REQUIRED_IF = [("state", "present", ("netns", "cert", "key", "users"))]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, p = self.validate_argument_spec(argument_spec=SPEC, required_if=REQUIRED_IF)
        if self._task.check_mode:
            raise AnsibleActionSkip("check mode: the gateway's state is only known by starting it")
        from aovpn_lab.errors import AovpnError
        from aovpn_lab.service.cli import down
        from aovpn_lab.sstp.softether import SoftEtherInstance
        from aovpn_lab.sstp.softether.settings import SoftEtherSettings
        try:
            if p["state"] == "absent":
                result.update(down(SoftEtherInstance(p["state_dir"]), purge=p["purge"]))
                return result
            if not p["users"]:
                raise AnsibleActionFail("sstp_gateway.users (or softether_users) is empty: the hub needs a user")
            settings = SoftEtherSettings(users={u["name"]: u["password"] for u in p["users"]}, hub=p["hub"],
                                         port=p["port"], admin_port=p["admin_port"], nat_host=p["nat_host"],
                                         nat_mask=p["nat_mask"], dhcp_start=p["dhcp_start"], dhcp_end=p["dhcp_end"])
            result.update(SoftEtherInstance(p["state_dir"], p["netns"]).up(settings, Path(p["cert"]), Path(p["key"])))
        except AovpnError as exc:
            raise AnsibleActionFail(f"SoftEther SSTP gateway (netns {p['netns'] or '-'}): {exc}") from None
        return result
