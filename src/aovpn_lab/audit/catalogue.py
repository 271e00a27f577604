"""profiles/rras.yml read into what the audit judges by (one loader; unknown keys are ignored,
so the catalogue can grow without breaking the audit).

    >>> c = load()
    >>> c.policy.requirement, c.policy.sets["standard"]["DHGroup"]
    ('AOVPN-IKE-CRYPTO-001', 'Group14')
    >>> [r.name for r in c.registry][:2]
    ['EnableServerFragmentation', 'CertAuthFlags']
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .. import paths
from ..errors import AovpnError

FROM_INVENTORY = "from-inventory"


@dataclass(frozen=True)
class Policy:
    requirement: str
    default_set: str
    sets: dict[str, dict[str, Any]]
    weak: dict[str, list[str]]


@dataclass(frozen=True)
class RegistryValue:
    id: str
    requirement: str
    key: str
    name: str
    type: str
    value: Any
    restart: str | None = None
    only_when: str | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    protocol: str
    port: int | None = None


@dataclass(frozen=True)
class NpsPolicy:
    name: str
    requirement: str
    auth: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    path: Path
    policy: Policy
    registry: tuple[RegistryValue, ...]
    schannel: dict[str, Any]
    protocols: dict[str, Any]
    firewall_requirement: str
    firewall: tuple[Rule, ...]
    authentication: dict[str, Any]
    nps_policies: tuple[NpsPolicy, ...] = field(default=())


def _need(data: dict, key: str, path: Path, where: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise AovpnError(f"{path}: {where} has no '{key}'", hint="restore it from profiles/rras.yml on main")
    return data[key]


@lru_cache(maxsize=4)
def load(path: str | Path | None = None) -> Catalogue:
    path = Path(path) if path else paths.PROFILES / "rras.yml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise AovpnError(f"{path}: cannot read the RRAS catalogue: {exc}", hint="check the file's YAML") from None
    rras = _need(data, "rras", path, "the file")
    pol = _need(rras, "ikev2_policy", path, "rras")
    policy = Policy(str(pol["requirement"]), str(pol.get("default_set", "standard")),
                    {k: dict(v) for k, v in _need(pol, "sets", path, "rras.ikev2_policy").items()},
                    {k: [str(x) for x in v] for k, v in (pol.get("weak") or {}).items()})
    registry = tuple(
        RegistryValue(str(r["id"]), str(r["requirement"]), str(r["key"]), str(r["name"]), str(r.get("type", "dword")),
                      r.get("value"), r.get("restart"), r.get("only_when"))
        for r in _need(rras, "registry", path, "rras"))
    fw = _need(rras, "firewall", path, "rras")
    rules = tuple(Rule(str(r["name"]), str(r["protocol"]), r.get("port")) for r in fw.get("rules", ()))
    nps = (data.get("nps") or {}).get("policies") or ()
    return Catalogue(
        path=path, policy=policy, registry=registry,
        schannel=dict(_need(rras, "schannel", path, "rras")),
        protocols=dict(_need(rras, "protocols", path, "rras")),
        firewall_requirement=str(fw["requirement"]), firewall=rules,
        authentication=dict(_need(rras, "authentication", path, "rras")),
        nps_policies=tuple(NpsPolicy(str(p["name"]), str(p["requirement"]), tuple(str(a) for a in p.get("auth", ())))
                           for p in nps),
    )
