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
    # 'suite': the conformance cells observe it; 'audit': only a reading of the deployment's
    # configuration can (aovpn-lab audit), so a run's certification lists it and does not judge it.
    checked_by: str = "suite"

LEVELS = ("MUST", "SHOULD")
CHECKED_BY = ("suite", "audit")


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
        checked_by = str(r.get("checked_by", "suite"))
        if checked_by not in CHECKED_BY:
            raise AovpnError(f"{CATALOGUE}: {rid}: checked_by {checked_by!r} is not one of {', '.join(CHECKED_BY)}")
        out[rid] = Requirement(rid, " ".join(str(r["text"]).split()), str(r.get("source", "")), level, checked_by)
    return out


def get(rid: str) -> Requirement:
    try:
        return catalogue()[rid]
    except KeyError:
        raise AovpnError(f"requirement {rid} is not in {CATALOGUE}") from None
