"""Ansible action: the certificate profiles a lab's gateways use, in one step (the pki role).

Each of ``profiles`` (of profiles/certificates.yml) is issued into its own folder under
``root`` (aovpn_lab.certs.pki.issue_pki), with a leaf for every gateway, machine and user
name, and the load-balancing crowd's machines in the crowd's profile only. A cached set
whose names, profile and validity still match is reused in milliseconds (RSA-4096 keys take
seconds each to make). Results carry file paths only; keys stay in their 0600 files.

An action, not a module: the certificates are the controller's own files, so it runs in
Ansible's worker on the controller (playbooks/action_plugins/README.md says why; the shape
all of them share: aovpn_lab.lab.action).
"""
from __future__ import annotations

from pathlib import Path

from ansible.errors import AnsibleActionFail

from aovpn_lab.lab.action import LabAction

DOCUMENTATION = r"""
action: lab_pki
short_description: Issue (or reuse) the lab's certificate profiles
options:
  profiles: {type: list, elements: str, required: true, description: "profile names; each goes to ROOT/NAME"}
  root: {type: path, required: true}
  gateways: {type: list, elements: str, default: []}
  machines: {type: list, elements: str, default: []}
  users: {type: list, elements: str, default: []}
  crowd: {type: dict, description: "profile, machines: leaves issued in that profile only"}
"""

SPEC = dict(
    profiles=dict(type="list", elements="str", required=True),
    root=dict(type="path", required=True),
    gateways=dict(type="list", elements="str", default=[]),
    machines=dict(type="list", elements="str", default=[]),
    users=dict(type="list", elements="str", default=[]),
    crowd=dict(type="dict", default={}, options=dict(
        profile=dict(type="str"), machines=dict(type="list", elements="str", default=[]))),
)


class ActionModule(LabAction):
    SPEC = SPEC

    def act(self, p):
        from aovpn_lab.certs.errors import CertificateProfileError
        from aovpn_lab.certs.pki import issue_pki
        issued = {}
        for profile in p["profiles"]:
            out = Path(p["root"]) / profile
            crowd = p["crowd"]["machines"] if p["crowd"] and p["crowd"]["profile"] == profile else []
            try:
                files = issue_pki(profile, out, p["gateways"], p["machines"] + crowd, p["users"])
            except (CertificateProfileError, ValueError) as exc:
                raise AnsibleActionFail(f"certificate profile {profile}: {exc}") from None
            except OSError as exc:
                raise AnsibleActionFail(f"certificate profile {profile}: cannot write to {out}: "
                                        f"{exc.strerror or exc}") from None
            issued[profile] = files.to_json()
        return {"changed": any(f["generated"] for f in issued.values()), "profiles": issued}
