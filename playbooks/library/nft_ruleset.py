#!/usr/bin/python
"""Ansible module: keep an nftables ruleset file written and loaded, in one step (the edge
role): written where its text changed, loaded with `nft -f` when it changed or when the
table it names is missing (the namespace was made again)."""
from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lab_nft import keep_loaded

DOCUMENTATION = r"""
module: nft_ruleset
short_description: Write an nftables ruleset and keep it loaded
options:
  path: {type: path, required: true}
  content: {type: str, required: true}
  table: {type: str, description: "e.g. 'ip aovpn_edge_nat': loaded again when it is missing"}
"""


def main() -> None:
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True),
                                              content=dict(type="str", required=True),
                                              table=dict(type="str")))
    p = module.params
    module.exit_json(changed=keep_loaded(module, p["path"], p["content"], p["table"]))


if __name__ == "__main__":
    main()
