"""F5 BIG-IP: the tasks of playbooks/balancer-f5.yml with every value resolved.

The playbook is the one source: its play variables and task arguments are templated by
Ansible's own Templar with the inventory's values (loops expanded), so what the checks read
is what ansible-playbook would send to the BIG-IP. The connection (`provider`) is left out
of the rendering: it holds the password.
"""
from __future__ import annotations

import json
from typing import Any

import yaml

from ... import paths
from ...errors import AovpnError
from .artefact import Artefact
from .facts import Facts, Monitor, Persistence, Service
from ..spec import BalancerSpec

PLAYBOOK = paths.PLAYBOOKS / "balancer-f5.yml"
TASKS = "tasks.yml"
FILES = (TASKS,)
COLLECTION = "f5networks.f5_modules."
SECRET_KEYS = {"provider"}


def render(spec: BalancerSpec, host_vars: dict[str, Any] | None = None) -> Artefact:
    tasks = resolve(spec, host_vars or {})
    header = ("# F5 BIG-IP tasks of playbooks/balancer-f5.yml, values resolved from the inventory\n"
              "# (the provider connection is left out). Apply with ansible-playbook, not by hand.\n")
    return Artefact("f5", {TASKS: header + yaml.safe_dump(tasks, sort_keys=False, width=200)})


def resolve(spec: BalancerSpec, host_vars: dict[str, Any]) -> list[dict[str, Any]]:
    """[{name, module, args}] for every task and loop item of the playbook."""
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    loader = DataLoader()
    # the playbook is ours: its templates are trusted, as ansible-playbook trusts them
    plays = loader.load_from_file(str(PLAYBOOK), trusted_as_template=True)
    play = plays[0]
    play_vars = {k: v for k, v in (play.get("vars") or {}).items() if k not in SECRET_KEYS}
    variables = {**{k: v for k, v in host_vars.items() if k != "f5_password"}, **play_vars,
                 "load_balancer": spec.as_vars()}
    templar = Templar(loader=loader, variables=variables)
    out = []
    for task in play["tasks"]:
        module = next(k for k in task if k.startswith(COLLECTION))
        args = {k: v for k, v in task[module].items() if k not in SECRET_KEYS}
        try:
            items = templar.template(task["loop"]) if "loop" in task else [None]
            for item in items:
                t = templar.copy_with_new_env(available_variables={**variables, "item": item})
                out.append({"name": _plain(t.template(task["name"])), "module": module[len(COLLECTION):],
                            "args": _plain(t.template(args))})
        except AnsibleError as exc:
            raise AovpnError(f"{PLAYBOOK}: task '{task['name']}': {exc.message}",
                             hint="the inventory's load_balancer lacks a value the playbook uses") from None
    return out


def _plain(value: Any) -> Any:
    """Ansible's tagged str/int/list as plain Python (they are subclasses: JSON keeps the values)."""
    return json.loads(json.dumps(value))


def _name(ref: str | None) -> str | None:
    """/Common/aovpn_udp and aovpn_udp are the same object."""
    return ref.rsplit("/", 1)[-1] if ref else ref


def read(artefact: Artefact) -> Facts:
    tasks = yaml.safe_load(artefact.files[TASKS]) or []
    by: dict[str, list[dict]] = {}
    for t in tasks:
        by.setdefault(t["module"], []).append(t["args"])
    persist = {_name(a["name"]): a for a in by.get("bigip_profile_persistence_src_addr", [])}
    udp = {_name(a["name"]): a for a in by.get("bigip_profile_udp", [])}
    monitors = {_name(a["name"]): Monitor("udp-port", f"monitor {a['name']}") for a in by.get("bigip_monitor_udp", [])}
    monitors.update({_name(a["name"]): _https_monitor(a) for a in by.get("bigip_monitor_https", [])})
    pools = {_name(a["name"]): (tuple(_name(m) for m in a.get("monitors") or ()), []) for a in by.get("bigip_pool", [])}
    for m in by.get("bigip_pool_member", []):
        if _name(m["pool"]) in pools:
            pools[_name(m["pool"])][1].append(m["address"])
    vss = by.get("bigip_virtual_server", [])
    vip = vss[0]["destination"] if vss else None
    facts = Facts("f5", vip)
    for vs in vss:
        where = f"virtual server {vs['name']}"
        port = int(vs["port"])
        protocol = vs.get("ip_protocol", "tcp")
        pool_monitors, members = pools.get(_name(vs.get("pool")), ((), []))
        profile = persist.get(_name(vs.get("default_persistence_profile")))
        persistence = None
        if profile is not None:
            across = profile.get("match_across_services") is True
            shared = {int(o["port"]) for o in vss if across and o["destination"] == vs["destination"]
                      and _name(o.get("default_persistence_profile")) == _name(profile["name"])} | {port}
            timeout = profile.get("entry_timeout")
            persistence = Persistence("source", None if timeout is None else
                                      (2**32 if str(timeout) == "indefinite" else int(timeout)),
                                      frozenset(shared), f"persistence profile {profile['name']}")
        udp_profile = next((udp[_name(p)] for p in vs.get("profiles") or () if _name(p) in udp), None)
        idle = udp_profile.get("idle_timeout") if udp_profile else None
        facts.services[(protocol, port)] = Service(
            protocol=protocol, port=port, where=where, members=tuple(members),
            # a new virtual server translates nothing unless told to (Source Address Translation: None)
            source_nat=str(vs.get("snat") or "none").lower(),
            persistence=persistence, monitors=tuple(monitors[m] for m in pool_monitors if m in monitors),
            idle_timeout=None if idle is None else (2**32 if str(idle) == "indefinite" else int(idle)),
            per_packet=bool(udp_profile and udp_profile.get("datagram_load_balancing")))
    return facts


def _https_monitor(args: dict) -> Monitor:
    # send is written as BIG-IP takes it, with literal \r\n: the request line is its first part
    first = str(args.get("send", "")).split("\\r\\n")[0].split()
    host = next((h.split(":", 1)[1].strip() for h in str(args.get("send", "")).split("\\r\\n")
                 if h.lower().startswith("host:")), None)
    return Monitor("http", f"monitor {args['name']}", method=first[0] if first else None,
                   path=first[1] if len(first) > 1 else None, expect=args.get("receive"), secure=True, host=host)
