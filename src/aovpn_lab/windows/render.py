"""Every change the rras or nps role would send to one inventory host, as data.

The role's own files are the source: its defaults (which read profiles/rras.yml), its
tasks, its PowerShell scripts. Task arguments are templated by Ansible's Templar with the
host's variables as ansible-playbook would template them (loops expanded, `when`
evaluated, the role's asserts applied), so a check reads what the host would receive.
Secrets never reach a Change: a task's sensitive_parameters values are replaced.

    >>> from aovpn_lab import inventory                                        # doctest: +SKIP
    >>> inv = inventory.load("inventories/examples/rras-behind-asa.yml", vault=...)  # doctest: +SKIP
    >>> [c.step for c in render(inv, "rras1", "rras")][:2]                     # doctest: +SKIP
    ['Install the Remote Access VPN role service with its management tools', ...]
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from .. import paths
from ..errors import AovpnError
from ..inventory import Inventory

ROLES = ("rras", "nps")
# The modules whose arguments are changes to the host; connection checks, restarts and
# failure reports depend on what the host answers and are not part of a rendering.
RENDERED = ("ansible.windows.win_feature", "ansible.windows.win_powershell", "ansible.windows.win_regedit",
            "community.windows.win_firewall_rule")
ASSERT = "ansible.builtin.assert"
REDACTED = "<vaulted>"


@dataclass(frozen=True)
class Change:
    """One task (one loop item) of a role: its name, module and templated arguments."""
    role: str
    step: str
    module: str
    args: Mapping[str, Any]
    script: str | None = field(default=None, repr=False)   # a win_powershell task's script text

    @property
    def script_name(self) -> str | None:
        return self.args.get("path") if self.module.endswith("win_powershell") else None

    @property
    def parameters(self) -> Mapping[str, Any]:
        return self.args.get("parameters") or {}


def role_dir(role: str) -> Path:
    return paths.PLAYBOOKS / "roles" / role


def render(inv: Inventory, host: str, role: str) -> list[Change]:
    """The changes `role` would make on `host`, in task order."""
    if role not in ROLES:
        raise AovpnError(f"no Windows role {role!r}", hint=f"one of {', '.join(ROLES)}")
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    _plugins()
    loader = DataLoader()
    base = role_dir(role)
    # the role is ours: its templates are trusted, as ansible-playbook trusts them
    defaults = loader.load_from_file(str(base / "defaults" / "main.yml"), trusted_as_template=True) or {}
    tasks = loader.load_from_file(str(base / "tasks" / "main.yml"), trusted_as_template=True) or []
    variables = {**defaults, **_host_vars(inv, host)}
    templar = Templar(loader=loader, variables=variables)
    out: list[Change] = []
    for task in _flatten(tasks):
        module = next((k for k in task if k in RENDERED or k == ASSERT), None)
        if module is None:
            continue
        try:
            out += _expand(templar, variables, role, task, module, base, host)
        except AnsibleError as exc:
            raise AovpnError(f"{base / 'tasks' / 'main.yml'}: host {host}: task '{task.get('name')}': "
                             f"{exc.message.splitlines()[0]}",
                             hint="the inventory lacks a value the role uses (see docs/windows.md)") from None
    return out


def _plugins() -> None:
    """Ansible's plugin loader (lookups, filters by their FQCN), set up once per process."""
    from ..inventory.reader import plugins_ready
    plugins_ready()


def _host_vars(inv: Inventory, host: str) -> dict[str, Any]:
    """What the play sees for `host`: its variables and Ansible's magic ones."""
    h = inv.host(host)
    hostvars = {name: dict(other.vars) for name, other in inv.hosts.items()}
    return {**dict(h.vars), "inventory_hostname": host, "playbook_dir": str(paths.PLAYBOOKS),
            "groups": {g: list(members) for g, members in inv.groups.items()}, "hostvars": hostvars,
            "ansible_check_mode": False}


def _flatten(tasks: list[dict]) -> Iterator[dict]:
    """Tasks in order, a block's tasks in place of the block (its rescue only runs on failure)."""
    for task in tasks:
        if "block" in task:
            yield from _flatten(task["block"])
        else:
            yield task


def _expand(templar: Any, variables: dict, role: str, task: dict, module: str, base: Path,
            host: str) -> list[Change]:
    items = templar.template(task["loop"]) if "loop" in task else [None]
    out = []
    for index, item in enumerate(items, 1):
        scope = {**variables, "item": item, "ansible_loop": {"index": index, "index0": index - 1}}
        t = templar.copy_with_new_env(available_variables=scope)
        if "when" in task and not all(t.evaluate_conditional(w) for w in _as_list(task["when"])):
            continue
        if module == ASSERT:
            _assert(t, task[module], host)
            continue
        args = _plain(t.template(_without_secrets(task[module])))
        script = (base / "files" / args["path"]).read_text() if module.endswith("win_powershell") else None
        out.append(Change(role, str(_plain(t.template(task["name"]))), module,
                          MappingProxyType(args), script))
    return out


def _assert(templar: Any, args: dict, host: str) -> None:
    """The role's assert: stop with its one line, as ansible-playbook would."""
    if all(templar.evaluate_conditional(c) for c in _as_list(args["that"])):
        return
    said = " ".join(str(templar.template(args.get("fail_msg", f"{host}: an inventory check failed"))).split())
    message, _, fix = said.partition(" (fix: ")
    raise AovpnError(message, hint=fix.rstrip(")") or None)


def _without_secrets(args: dict) -> dict:
    """Sensitive parameters are never templated: their values are vaulted secrets."""
    if "sensitive_parameters" not in args:
        return args
    return {**args, "sensitive_parameters": [{**p, "value": REDACTED} for p in args["sensitive_parameters"]]}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _plain(value: Any) -> Any:
    """Ansible's tagged values as plain Python; omitted options left out."""
    return json.loads(json.dumps(value, default=str))
