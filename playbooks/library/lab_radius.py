#!/usr/bin/python
"""Ansible module: the lab's RADIUS server (FreeRADIUS, EAP-TLS: the NPS stand-in), in one
step (the freeradius role).

`present`: checks that freeradius is installed (its service stays stopped: the lab runs
its own instance) and that the server certificate was issued; creates a random shared
secret file (0600) unless one exists; writes the configuration and keeps a running
instance that runs exactly it (aovpn_lab.radius.server.up); writes each gateway's
eap-radius strongswan.conf fragment (0600); and sends a signed EAP-Identity from each
gateway's namespace, expecting EAP-TLS Start. `absent`: stops it by its recorded PID.

The secret reaches FreeRADIUS and charon only through files (0600). A secret the
controller supplies (``secret``, e.g. from its environment or a vault) is a no_log
argument, written to the secret file; it never appears in results or logs. Runs with the
controller's own interpreter (the project's venv), like lab_topology.
"""
from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from aovpn_lab.errors import AovpnError
from aovpn_lab.radius import server
from aovpn_lab.radius.config import Secret

DOCUMENTATION = r"""
module: lab_radius
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


def present(module: AnsibleModule) -> dict:
    p = module.params
    rc, _, _ = module.run_command(["dpkg-query", "-W", "-f", "${Version}", "freeradius"])
    if rc != 0:
        module.fail_json(msg="freeradius is not installed on this host: apt-get install -y --no-install-recommends "
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
    if check and not module.check_mode:
        health = {}
        for c in p["clients"]:
            r = server.check_from(f"{check['namespace_prefix']}-{c['name']}", p["listen"], secret,
                                  kind="eap", port=p["port"], source=c["address"])
            if not r.ok:
                module.fail_json(msg=f"RADIUS health check from {c['name']} ({c['address']}) to "
                                     f"{p['listen']}:{p['port']} failed: {r.to_json()}")
            health[c["name"]] = r.to_json()
        result["health"] = health
    result["changed"] = (result["secret"]["changed"] or result["server"]["changed"]
                         or any(g["changed"] for g in result["gateways"]))
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        purge=dict(type="bool", default=False),
        state_dir=dict(type="path", required=True),
        netns=dict(type="str"), listen=dict(type="str"), port=dict(type="int", default=1812),
        cert=dict(type="path"), key=dict(type="path"), ca_files=dict(type="list", elements="path", default=[]),
        fragment_size=dict(type="int", default=1024), clients=dict(type="list", elements="dict", default=[]),
        secret_file=dict(type="path", no_log=False), secret=dict(type="str", no_log=True), server_name=dict(type="str"),
        gateway_conf=dict(type="str"), health_check=dict(type="dict"),
    ), required_if=[("state", "present", ("listen", "cert", "key", "ca_files", "clients", "secret_file",
                                          "server_name"))])
    try:
        if module.params["state"] == "absent":
            result = server.down(module.params["state_dir"], purge=module.params["purge"])
        else:
            result = present(module)
    except AovpnError as exc:
        module.fail_json(msg=f"FreeRADIUS in {module.params['netns'] or 'this namespace'}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
