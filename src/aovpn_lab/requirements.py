"""The requirement catalogue (requirements.yml), read once.

    >>> get("AOVPN-IKE-CONN-001").source
    'docs/domain.md, "Why deployments break"; RFC 7296'
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import yaml

from . import paths
from .errors import AovpnError

CATALOGUE = paths.ROOT / "requirements.yml"


@dataclass(frozen=True)
class Requirement:
    id: str
    text: str
    source: str


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Requirement]:
    data = yaml.safe_load(CATALOGUE.read_text()) or {}
    return {rid: Requirement(rid, " ".join(str(r["text"]).split()), str(r.get("source", "")))
            for rid, r in (data.get("requirements") or {}).items() if not r.get("retired")}


def get(rid: str) -> Requirement:
    try:
        return catalogue()[rid]
    except KeyError:
        raise AovpnError(f"requirement {rid} is not in {CATALOGUE}") from None
