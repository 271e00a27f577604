#!/usr/bin/python
"""Ansible module: one lab host's charon, in one step (the strongswan role).

Every step of a task is a module run over SSH, and on two cores each one costs about as
much as the work it does; so the role hands its rendered files to this module, which on
the host:

- creates swanctl's standard subfolders;
- on a gateway, links its private key from the PKI into swanctl/private (swanctl loads
  keys only from its own folders) and splits the PKI's chain.pem into x509ca/chain-N.pem,
  one certificate per file as swanctl loads them (charon sends the intermediates it
  holds: send_cert = always);
- writes strongswan.conf and swanctl.conf (0600) where their text changed;
- starts charon through the supervisor (aovpn_lab.service, entry `charon` of
  profiles/daemons.yml), which keeps a running charon whose strongswan.conf is unchanged
  (charon reads it once) and restarts it otherwise;
- loads connections, pools and credentials (`swanctl --load-all --clear`: a variant that
  changed certificates must not leave the old ones loaded) when anything changed;
- on a gateway, keeps its own firewall loaded, and flushes connection tracking after
  loading it (flows the old rules admitted would bypass the new ones).

Runs with the project's interpreter (the lab hosts share this machine's venv).
"""
from __future__ import annotations

import glob
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lab_files import folder, link, put
from ansible.module_utils.lab_nft import keep_loaded

from aovpn_lab.errors import AovpnError
from aovpn_lab.service import Daemon
from aovpn_lab.service.daemon import config_digest

DOCUMENTATION = r"""
module: lab_charon
short_description: Write a lab host's strongSwan configuration, keep its charon running and loaded
options:
  state_dir: {type: path, required: true, description: "the host's strongswan folder"}
  vici: {type: path, required: true}
  subdirs: {type: list, elements: str, required: true, description: "swanctl's subfolders"}
  files: {type: dict, required: true, description: "path relative to state_dir -> text (written 0600)"}
  gateway_key: {type: path, description: "a gateway's private key (linked as swanctl/private/gateway.key.pem)"}
  chain: {type: path, description: "a gateway's intermediate CAs (PEM), split into swanctl/x509ca"}
  firewall: {type: dict, description: "a gateway's own ruleset: path, content, table"}
"""

CERT = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", re.S)


def _chain(module: AnsibleModule, chain: str, x509ca: str) -> bool:
    with open(chain) as f:
        certs = CERT.findall(f.read())
    changed = False
    for i, pem in enumerate(certs, start=1):
        changed |= put(module, os.path.join(x509ca, f"chain-{i}.pem"), pem if pem.endswith("\n") else pem + "\n")
    for old in glob.glob(os.path.join(x509ca, "chain-*.pem")):  # a previous variant's longer chain
        n = os.path.basename(old)[len("chain-"):-len(".pem")]
        if not n.isdigit() or int(n) > len(certs):
            os.unlink(old)
            changed = True
    return changed


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state_dir=dict(type="path", required=True),
            vici=dict(type="path", required=True),
            subdirs=dict(type="list", elements="str", required=True),
            files=dict(type="dict", required=True),
            gateway_key=dict(type="path"),
            chain=dict(type="path"),
            firewall=dict(type="dict"),
        ),
    )
    p = module.params
    state = p["state_dir"]
    swanctl = os.path.join(state, "swanctl")
    steps: list[str] = []
    changed_files = any([folder(os.path.join(swanctl, sub)) for sub in p["subdirs"]])
    if p["gateway_key"]:
        changed_files |= link(os.path.join(swanctl, "private", "gateway.key.pem"), p["gateway_key"])
    if p["chain"]:
        changed_files |= _chain(module, p["chain"], os.path.join(swanctl, "x509ca"))
    for rel, text in sorted(p["files"].items()):
        if put(module, os.path.join(state, rel), text):
            changed_files = True
            steps.append(f"wrote {rel}")
    try:
        daemon = Daemon("charon", state)
        started = daemon.ensure(config_digest(daemon))
    except AovpnError as exc:
        module.fail_json(msg=f"charon in {state}: {exc}")
    if started["changed"]:
        steps.append("restarted charon" if started["restarted"] else "started charon")
    if started["changed"] or changed_files:
        rc, out, err = module.run_command(
            ["swanctl", "--load-all", "--clear", "--noprompt", "--uri", f"unix://{p['vici']}"],
            environ_update={"SWANCTL_DIR": swanctl, "STRONGSWAN_CONF": os.path.join(state, "strongswan.conf")})
        # swanctl exits non-zero when anything fails to load (and may warn on stderr when all is well)
        if rc != 0:
            module.fail_json(msg=f"swanctl --load-all failed (exit {rc}): {(err or out).strip()}", steps=steps)
        steps.append("loaded connections and credentials")
    fw = p["firewall"]
    if fw:
        if keep_loaded(module, fw["path"], fw["content"], fw.get("table"), force=started["changed"]):
            rc, _, err = module.run_command(["conntrack", "-F"])
            if rc != 0:
                module.fail_json(msg=f"conntrack -F failed (exit {rc}): {err.strip()}", steps=steps)
            steps.append("loaded the gateway firewall")
    module.exit_json(changed=bool(steps) or changed_files, steps=steps, pids=daemon.pids())


if __name__ == "__main__":
    main()
