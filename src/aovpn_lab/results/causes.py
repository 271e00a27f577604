"""The cause catalogue: every cause a probe can name, its protocols, meaning and fix
(profiles/causes.yml).

    >>> names("tlsvpn")
    ('none', 'tcp-443-blocked', 'tls-failed', 'cert-untrusted', 'auth-failed', 'protocol-error', 'timeout')
    >>> get("no-proposal-chosen").protocols
    ('ikev2',)
    >>> get("udp-500-blocked").condition
    'block-udp-500'
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from .. import paths
from ..errors import AovpnError

CAUSES_FILE = paths.PROFILES / "causes.yml"
PROTOCOLS = ("ikev2", "sstp", "tlsvpn")


@dataclass(frozen=True)
class Cause:
    name: str
    protocols: tuple[str, ...]
    meaning: str
    fix: str
    condition: str | None = None  # the network condition that produces it (corroboration)


def load(path: Path = CAUSES_FILE) -> dict[str, Cause]:
    """The catalogue in file order; a malformed entry names the file, the cause and the key."""
    try:
        entries = (yaml.safe_load(path.read_text()) or {}).get("causes") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise AovpnError(f"cannot read the cause catalogue {path}: {exc}", hint="restore profiles/causes.yml") from None
    out: dict[str, Cause] = {}
    for name, entry in entries.items():
        entry = entry or {}
        for key in ("protocols", "meaning", "fix"):
            if not entry.get(key):
                raise AovpnError(f"{path}: cause '{name}' has no '{key}'", hint=f"add '{key}' to the entry")
        unknown = set(entry["protocols"]) - set(PROTOCOLS)
        if unknown:
            raise AovpnError(f"{path}: cause '{name}' names unknown protocol(s) {', '.join(sorted(unknown))}",
                             hint=f"use {', '.join(PROTOCOLS)}")
        out[name] = Cause(name, tuple(entry["protocols"]), " ".join(entry["meaning"].split()),
                          " ".join(entry["fix"].split()), entry.get("condition"))
    return out


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Cause]:
    return load()


def names(protocol: str) -> tuple[str, ...]:
    """The causes a probe of `protocol` can name, in catalogue order."""
    return tuple(name for name, cause in catalogue().items() if protocol in cause.protocols)


def get(name: str) -> Cause:
    try:
        return catalogue()[name]
    except KeyError:
        raise AovpnError(f"cause '{name}' is not in {CAUSES_FILE}", hint="add it with its meaning and fix") from None
