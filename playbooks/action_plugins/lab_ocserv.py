"""Ansible action: the lab TLS VPN gateway (ocserv) of one host (the ocserv role), in one step.

`present`: OcservInstance.up (aovpn_lab.tlsvpn.ocserv) keeps a running instance in the
host's namespace and restarts it only when its configuration, certificate or passwords
changed; `absent`: stops the processes it recorded, by PID.

An action, not a module: the gateway runs in a namespace of the controller's own machine,
so it runs in Ansible's worker on the controller (playbooks/action_plugins/README.md;
the shape all of them share: aovpn_lab.lab.action). The users' passwords are no_log
arguments, hashed into the instance's ocpasswd file (they reach openssl on stdin only);
results carry user names only.
"""
from __future__ import annotations

from aovpn_lab.lab.action import SERVICE_SPEC, ServiceAction

DOCUMENTATION = r"""
action: lab_ocserv
short_description: Keep a lab host's ocserv running with its configuration
notes: "Also the options of every service action: state (present, absent), purge, state_dir, netns, cert (fullchain PEM), key, users (name, password: no_log); aovpn_lab.lab.action.SERVICE_SPEC"
options:
  port: {type: int, default: 443}
  udp: {type: bool, default: true, description: "DTLS on the same UDP port"}
  listen: {type: str, description: "one address only; empty: every address of the namespace"}
  pool: {type: str}
  routes: {type: list, elements: str, description: "extra split-include routes (CIDR)"}
"""


class ActionModule(ServiceAction):
    NAME = "ocserv"
    USERS_SETTING = "tlsvpn_gateway.users (or ocserv_users)"
    SPEC = dict(SERVICE_SPEC,
                port=dict(type="int", default=443), udp=dict(type="bool", default=True),
                listen=dict(type="str", default=""), pool=dict(type="str", default="198.19.3.0/24"),
                routes=dict(type="list", elements="str", default=[]))

    def instance(self, p):
        from aovpn_lab.tlsvpn.ocserv import OcservInstance
        return OcservInstance(p["state_dir"], p["netns"])

    def up(self, instance, users, p):
        from aovpn_lab.tlsvpn.ocserv import OcservSettings
        settings = OcservSettings(users=users, port=p["port"], udp=p["udp"], listen_host=p["listen"] or None,
                                  pool=p["pool"], routes=p["routes"])
        return instance.up(settings, p["cert"], p["key"])
