"""Gateway variants (profiles/variants.yml): how a lab gateway deviates from the recommendations.

    >>> get("rras-defaults").ikev2_gateway["crypto_policy"], get("rras-defaults").breaks
    ('weak', ('AOVPN-IKE-CRYPTO-001', 'AOVPN-IKE-FRAG-001'))

`lab up --variant NAME` provisions it and records it in the lab's state folder, so the
suite (and a later `run` without --variant) judges the gateway that is really there.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from . import paths
from .errors import AovpnError

VARIANTS_FILE = paths.PROFILES / "variants.yml"
STATE_NAME = "variant.json"


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    ikev2_gateway: dict
    breaks: tuple[str, ...]


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Variant]:
    data = yaml.safe_load(VARIANTS_FILE.read_text()) or {}
    return {name: Variant(name, " ".join(str(v.get("description", "")).split()), dict(v.get("ikev2_gateway") or {}),
                          tuple(v.get("breaks") or ()))
            for name, v in (data.get("variants") or {}).items()}


def get(name: str | None) -> Variant:
    name = name or "default"
    try:
        return catalogue()[name]
    except KeyError:
        raise AovpnError(f"unknown gateway variant '{name}'",
                         hint=f"use one of {', '.join(catalogue())} (profiles/variants.yml)") from None


def record(state_dir: Path, variant: Variant) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_NAME).write_text(json.dumps({"variant": variant.name}))


def provisioned(state_dir: Path) -> Variant:
    """The variant the lab was last brought up as (default when unknown)."""
    try:
        return get(json.loads((state_dir / STATE_NAME).read_text())["variant"])
    except (OSError, ValueError, KeyError):
        return get("default")
