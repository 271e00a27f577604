#!/usr/bin/python
"""Ansible module: the certificate profiles a lab's gateways use, in one step (the pki role).

Each of ``profiles`` (of profiles/certificates.yml) is issued into its own folder under
``root`` (aovpn_lab.certs.pki.issue_pki), with a leaf for every gateway, machine and user
name, and the load-balancing crowd's machines in the crowd's profile only. A cached set
whose names, profile and validity still match is reused in milliseconds (RSA-4096 keys take
seconds each to make). One module run for all profiles: a module run costs the controller
more than a reused profile does. Results carry file paths only; keys stay in their 0600
files. Runs with the controller's own interpreter (the project's venv), like lab_topology.
"""
from __future__ import annotations

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from aovpn_lab.certs.errors import CertificateProfileError
from aovpn_lab.certs.pki import issue_pki

DOCUMENTATION = r"""
module: lab_pki
short_description: Issue (or reuse) the lab's certificate profiles
options:
  profiles: {type: list, elements: str, required: true, description: "profile names; each goes to ROOT/NAME"}
  root: {type: path, required: true}
  gateways: {type: list, elements: str, default: []}
  machines: {type: list, elements: str, default: []}
  users: {type: list, elements: str, default: []}
  crowd: {type: dict, description: "profile, machines: leaves issued in that profile only"}
"""


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        profiles=dict(type="list", elements="str", required=True),
        root=dict(type="path", required=True),
        gateways=dict(type="list", elements="str", default=[]),
        machines=dict(type="list", elements="str", default=[]),
        users=dict(type="list", elements="str", default=[]),
        crowd=dict(type="dict", default={}, options=dict(
            profile=dict(type="str"), machines=dict(type="list", elements="str", default=[]))),
    ))
    p = module.params
    issued = {}
    for profile in p["profiles"]:
        out = Path(p["root"]) / profile
        crowd = p["crowd"]["machines"] if p["crowd"] and p["crowd"]["profile"] == profile else []
        try:
            files = issue_pki(profile, out, p["gateways"], p["machines"] + crowd, p["users"])
        except (CertificateProfileError, ValueError) as exc:
            module.fail_json(msg=f"certificate profile {profile}: {exc}")
        except OSError as exc:
            module.fail_json(msg=f"certificate profile {profile}: cannot write to {out}: {exc.strerror or exc}")
        issued[profile] = files.to_json()
    module.exit_json(changed=any(f["generated"] for f in issued.values()), profiles=issued)


if __name__ == "__main__":
    main()
