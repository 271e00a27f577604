"""Ansible action: the lab's RADIUS server (FreeRADIUS, EAP-TLS: the NPS stand-in), in one
step (the freeradius role).

`present`: checks that freeradius is installed (its service stays stopped: the lab runs
its own instance) and that the server certificate was issued; creates a random shared
secret file (0600) unless one exists; writes the configuration and keeps a running
instance that runs exactly it (aovpn_lab.radius.server.up); writes each gateway's
eap-radius strongswan.conf fragment (0600); and sends a signed EAP-Identity from each
gateway's namespace, expecting EAP-TLS Start. `absent`: stops it by its recorded PID.

The secret reaches FreeRADIUS and charon only through files (0600). A secret the
controller supplies (``secret``, e.g. from its environment or a vault) is a no_log
argument, written to the secret file; it never appears in results or logs.

An action, not a module: the server runs in a namespace of the controller's own machine,
so it runs in Ansible's worker on the controller (playbooks/action_plugins/README.md).
"""
from __future__ import annotations

from ansible.errors import AnsibleActionFail

from aovpn_lab import tool
from aovpn_lab.lab.action import LabAction
from aovpn_lab.radius import server
from aovpn_lab.radius.config import Secret

DOCUMENTATION = r"""
action: lab_radius
short_description: Keep the lab's FreeRADIUS running, its gateways' eap-radius settings written, and check it
options:
  state: {type: str, choices: [present, absent], default: present}
  purge: {type: bool, default: false, description: "absent: also delete the state folder"}
  state_dir: {type: path, required: true}
  netns: {type: str}
  listen: {type: str}
  port: {type: int, default: 1812}
  cert: {type: path}
  key: {type: path}
  ca_files: {type: list, elements: path}
  fragment_size: {type: int, default: 1024}
  clients: {type: list, elements: dict, description: "the gateways: name, address"}
  secret_file: {type: path}
  secret: {type: str, no_log: true, description: "written to secret_file when given; else a random one unless the file exists"}
  server_name: {type: str}
  gateway_conf: {type: str, description: "each gateway's eap-radius fragment: a path with {name}, the gateway's"}
  health_check: {type: dict, description: "namespace_prefix: each gateway's namespace is PREFIX-NAME"}
"""


def present(p: dict) -> dict:
    installed = tool.run(["dpkg-query", "-W", "-f", "${Version}", "freeradius"], step="is freeradius installed")
    if not installed.ok:
        raise AnsibleActionFail("freeradius is not installed on this host: apt-get install -y --no-install-recommends "
                                "freeradius (its service stays stopped; the lab runs its own instance)")
    given = Secret(p["secret"]) if p["secret"] else None
    result: dict = {"secret": server.make_secret_file(p["secret_file"], value=given)}
    secret = given or server.read_secret(p["secret_file"], None)
    cfg = server.config(listen=p["listen"], port=p["port"], ca_files=p["ca_files"], cert=p["cert"], key=p["key"],
                        clients=[(c["name"], c["address"]) for c in p["clients"]], secret=secret,
                        fragment_size=p["fragment_size"])
    result["server"] = server.up(cfg, p["state_dir"], p["netns"])
    # charon re-reads eap-radius on `swanctl --reload-settings`, and the strongswan role
    # runs after this one: a gateway's charon starts with its fragment in place.
    result["gateways"] = [server.write_gateway_conf(p["gateway_conf"].format(name=c["name"]),
                                                    {p["server_name"]: p["listen"]}, secret, port=p["port"])
                          for c in p["clients"]] if p["gateway_conf"] else []
    check = p["health_check"]
    if check:
        health = {}
        for c in p["clients"]:
            r = server.check_from(f"{check['namespace_prefix']}-{c['name']}", p["listen"], secret,
                                  kind="eap", port=p["port"], source=c["address"])
            if not r.ok:
                raise AnsibleActionFail(f"RADIUS health check from {c['name']} ({c['address']}) to "
                                        f"{p['listen']}:{p['port']} failed: {r.to_json()}")
            health[c["name"]] = r.to_json()
        result["health"] = health
    result["changed"] = (result["secret"]["changed"] or result["server"]["changed"]
                         or any(g["changed"] for g in result["gateways"]))
    return result


SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    purge=dict(type="bool", default=False),
    state_dir=dict(type="path", required=True),
    netns=dict(type="str"), listen=dict(type="str"), port=dict(type="int", default=1812),
    cert=dict(type="path"), key=dict(type="path"), ca_files=dict(type="list", elements="path", default=[]),
    fragment_size=dict(type="int", default=1024), clients=dict(type="list", elements="dict", default=[]),
    secret_file=dict(type="path", no_log=False), secret=dict(type="str", no_log=True), server_name=dict(type="str"),
    gateway_conf=dict(type="str"), health_check=dict(type="dict"),
)
REQUIRED_IF = [("state", "present", ("listen", "cert", "key", "ca_files", "clients", "secret_file", "server_name"))]


class ActionModule(LabAction):
    SPEC = SPEC
    REQUIRED_IF = REQUIRED_IF

    def failure(self, p):
        return f"FreeRADIUS in {p['netns'] or 'this namespace'}"

    def act(self, p):
        if p["state"] == "absent":
            return server.down(p["state_dir"], purge=p["purge"])
        return present(p)
