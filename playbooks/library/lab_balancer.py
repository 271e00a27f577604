#!/usr/bin/python
"""Ansible module: the lab load balancer, in one step (the balancer role).

On the balancer host: its folders; balancer.json (the inventory's load_balancer, read by
the mode switch and the health monitor); HAProxy's offload certificate (leaf, chain and
key in one file, as HAProxy reads them, built here from the PKI so the key never travels
as a module argument); haproxy.cfg; HAProxy kept running through the supervisor
(aovpn_lab.service, entry `haproxy`: restarted only when its configuration changed); and
the balancer's mode applied (aovpn_lab.balancer.switch: keeps the current mode and live
gateways, the first time load_balancer.mode and all of them).

Runs with the project's interpreter (the lab hosts share this machine's venv).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lab_files import folder, put

from aovpn_lab.balancer import switch
from aovpn_lab.errors import AovpnError
from aovpn_lab.service import Daemon
from aovpn_lab.service.daemon import config_digest

DOCUMENTATION = r"""
module: lab_balancer
short_description: Write the lab balancer's files, keep HAProxy running and its mode applied
options:
  state_dir: {type: path, required: true}
  settings: {type: dict, required: true, description: "written as balancer.json"}
  haproxy_cfg: {type: str, required: true, description: "haproxy.cfg, rendered"}
  offload_sources: {type: list, elements: path, required: true, description: "PEM files, concatenated (0600)"}
  offload_pem: {type: path, required: true}
"""


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        state_dir=dict(type="path", required=True),
        settings=dict(type="dict", required=True),
        haproxy_cfg=dict(type="str", required=True),
        offload_sources=dict(type="list", elements="path", required=True),
        offload_pem=dict(type="path", required=True),
    ))
    p = module.params
    state = Path(p["state_dir"])
    changed = any([folder(str(d)) for d in (state, state / "haproxy", state / "nginx")])
    changed |= put(module, str(state / "balancer.json"), json.dumps(p["settings"], indent=4, sort_keys=True) + "\n")
    try:
        pem = "".join(Path(src).read_text() for src in p["offload_sources"])
    except OSError as exc:
        module.fail_json(msg=f"{exc.filename}: {exc.strerror} (the pki role issues the offload certificate)")
    changed |= put(module, p["offload_pem"], pem)
    changed |= put(module, str(state / "haproxy" / "haproxy.cfg"), p["haproxy_cfg"])
    try:
        haproxy = Daemon("haproxy", state / "haproxy")
        started = haproxy.ensure(config_digest(haproxy))
        mode = switch.apply(state)
    except AovpnError as exc:
        module.fail_json(msg=f"balancer in {state}: {exc}")
    module.exit_json(changed=changed or started["changed"] or mode["changed"], haproxy=started, mode=mode,
                     pids=haproxy.pids(), where=os.fspath(state))


if __name__ == "__main__":
    main()
