"""The requirement catalogue (requirements.yml), read once.

    >>> get("AOVPN-IKE-CONN-001").source
    'docs/domain.md, "Why deployments break"; RFC 7296'
    >>> get("AOVPN-IKE-CONN-001").level, get("AOVPN-FALLBACK-001").level
    ('MUST', 'SHOULD')

Levels are RFC 2119's: a MUST that fails fails a certification; a SHOULD that fails is
reported with its fix but is a recommendation.
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
    level: str = "MUST"

LEVELS = ("MUST", "SHOULD")


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Requirement]:
    data = yaml.safe_load(CATALOGUE.read_text()) or {}
    out = {}
    for rid, r in (data.get("requirements") or {}).items():
        if r.get("retired"):
            continue
        level = str(r.get("level", ""))
        if level not in LEVELS:
            raise AovpnError(f"{CATALOGUE}: {rid}: level {level!r} is not one of {', '.join(LEVELS)}")
        out[rid] = Requirement(rid, " ".join(str(r["text"]).split()), str(r.get("source", "")), level)
    return out


def get(rid: str) -> Requirement:
    try:
        return catalogue()[rid]
    except KeyError:
        raise AovpnError(f"requirement {rid} is not in {CATALOGUE}") from None
