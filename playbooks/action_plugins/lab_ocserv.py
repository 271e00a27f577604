"""Ansible action: the lab TLS VPN gateway (ocserv) of one host (the ocserv role), in one step.

`present`: OcservInstance.up (aovpn_lab.tlsvpn.ocserv) keeps a running instance in the
host's namespace and restarts it only when its configuration, certificate or passwords
changed; `absent`: stops the processes it recorded, by PID.

An action, not a module: the gateway runs in a namespace of the controller's own machine,
so it runs in Ansible's worker on the controller (playbooks/action_plugins/README.md).
The users' passwords are no_log arguments, hashed into the instance's ocpasswd file
(they reach openssl on stdin only); results carry user names only.
"""
from __future__ import annotations

from ansible.errors import AnsibleActionFail, AnsibleActionSkip
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
action: lab_ocserv
short_description: Keep a lab host's ocserv running with its configuration
options:
  state: {type: str, choices: [present, absent], default: present}
  purge: {type: bool, default: false, description: "absent: also delete the instance folder"}
  state_dir: {type: path, required: true}
  netns: {type: str}
  cert: {type: path, description: "fullchain PEM, leaf first"}
  key: {type: path}
  users: {type: list, elements: dict, description: "name, password (no_log)"}
  port: {type: int, default: 443}
  udp: {type: bool, default: true, description: "DTLS on the same UDP port"}
  listen: {type: str, description: "one address only; empty: every address of the namespace"}
  pool: {type: str}
  routes: {type: list, elements: str, description: "extra split-include routes (CIDR)"}
"""

SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    purge=dict(type="bool", default=False),
    state_dir=dict(type="path", required=True),
    netns=dict(type="str"), cert=dict(type="path"), key=dict(type="path"),
    users=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True), password=dict(type="str", required=True, no_log=True))),
    port=dict(type="int", default=443), udp=dict(type="bool", default=True),
    listen=dict(type="str", default=""), pool=dict(type="str", default="198.19.3.0/24"),
    routes=dict(type="list", elements="str", default=[]),
)
REQUIRED_IF = [("state", "present", ("netns", "cert", "key"))]


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
        from aovpn_lab.tlsvpn.ocserv import OcservInstance, OcservSettings
        try:
            if p["state"] == "absent":
                result.update(down(OcservInstance(p["state_dir"]), purge=p["purge"]))
                return result
            if not p["users"]:
                raise AnsibleActionFail("tlsvpn_gateway.users (or ocserv_users) is empty: ocserv needs a user")
            settings = OcservSettings(users={u["name"]: u["password"] for u in p["users"]}, port=p["port"],
                                      udp=p["udp"], listen_host=p["listen"] or None, pool=p["pool"],
                                      routes=p["routes"])
            result.update(OcservInstance(p["state_dir"], p["netns"]).up(settings, p["cert"], p["key"]))
        except AovpnError as exc:
            raise AnsibleActionFail(f"ocserv (netns {p['netns'] or '-'}): {exc}") from None
        return result
