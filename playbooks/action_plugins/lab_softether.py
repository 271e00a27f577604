"""Ansible action: the lab SSTP gateway of one host (the softether role), in one step.

`present`: SoftEtherInstance.up (aovpn_lab.sstp.softether) keeps a running instance in the
host's namespace, restarts it only when the certificate or ports changed, and re-applies
the hub, its users and SecureNAT; `absent`: stops the processes it recorded, by PID.

An action, not a module: the gateway runs in a namespace of the controller's own machine,
so it runs in Ansible's worker on the controller (playbooks/action_plugins/README.md;
the shape all of them share: aovpn_lab.lab.action). The users' passwords are no_log
arguments handed to the instance in memory (never on a command line or in an environment
a process listing shows); results carry user names only.
"""
from __future__ import annotations

from pathlib import Path

from aovpn_lab.lab.action import SERVICE_SPEC, ServiceAction

DOCUMENTATION = r"""
action: lab_softether
short_description: Keep a lab host's SoftEther SSTP gateway running and configured
notes: "Also the options of every service action: state (present, absent), purge, state_dir, netns, cert (fullchain PEM), key, users (name, password: no_log); aovpn_lab.lab.action.SERVICE_SPEC"
options:
  hub: {type: str, default: LAB}
  port: {type: int, default: 443}
  admin_port: {type: int, default: 5555}
  nat_host: {type: str}
  nat_mask: {type: str}
  dhcp_start: {type: str}
  dhcp_end: {type: str}
"""


class ActionModule(ServiceAction):
    NAME = "SoftEther SSTP gateway"
    USERS_SETTING = "sstp_gateway.users (or softether_users)"
    SPEC = dict(SERVICE_SPEC,
                hub=dict(type="str", default="LAB"), port=dict(type="int", default=443),
                admin_port=dict(type="int", default=5555),
                nat_host=dict(type="str", default="198.19.2.1"), nat_mask=dict(type="str", default="255.255.255.0"),
                dhcp_start=dict(type="str", default="198.19.2.10"), dhcp_end=dict(type="str", default="198.19.2.200"))

    def instance(self, p):
        from aovpn_lab.sstp.softether import SoftEtherInstance
        return SoftEtherInstance(p["state_dir"], p["netns"])

    def up(self, instance, users, p):
        from aovpn_lab.sstp.softether.settings import SoftEtherSettings
        settings = SoftEtherSettings(users=users, hub=p["hub"], port=p["port"], admin_port=p["admin_port"],
                                     nat_host=p["nat_host"], nat_mask=p["nat_mask"],
                                     dhcp_start=p["dhcp_start"], dhcp_end=p["dhcp_end"])
        return instance.up(settings, Path(p["cert"]), Path(p["key"]))
