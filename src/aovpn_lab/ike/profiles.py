"""Client profiles: what an IKEv2 client proposes, kept as data in profiles/clients.yml.

    >>> p = get("aovpn-recommended")
    >>> p.ike, p.fragmentation
    (('aes128-sha256-modp2048',), True)
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from .. import paths
from ..errors import AovpnError

CLIENTS_FILE = paths.PROFILES / "clients.yml"


@dataclass(frozen=True)
class ClientProfile:
    name: str
    description: str
    ike: tuple[str, ...]
    esp: tuple[str, ...]
    fragmentation: bool

    def with_fragmentation(self, on: bool) -> "ClientProfile":
        suffix = "" if on == self.fragmentation else ("+frag" if on else "-nofrag")
        return ClientProfile(self.name + suffix, self.description, self.ike, self.esp, on)


@lru_cache(maxsize=4)
def load(path: Path = CLIENTS_FILE) -> tuple[dict[str, ClientProfile], str]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    out = {}
    for name, p in (data.get("profiles") or {}).items():
        try:
            out[name] = ClientProfile(name, p.get("description", ""), tuple(p["ike"]), tuple(p["esp"]),
                                      bool(p.get("fragmentation", True)))
        except (KeyError, TypeError, AttributeError):
            raise AovpnError(f"{path}: profiles.{name}: expected ike: [...], esp: [...], fragmentation: bool")
    default = data.get("default") or next(iter(out), "")
    if default not in out:
        raise AovpnError(f"{path}: default: '{default}' is not a profile ({', '.join(out)})")
    return out, default


def get(name: str | None = None) -> ClientProfile:
    profiles, default = load()
    name = name or default
    if name not in profiles:
        raise AovpnError(f"unknown client profile '{name}'",
                         hint=f"use one of {', '.join(profiles)} (profiles/clients.yml)")
    return profiles[name]


def charon_settings() -> dict:
    """Plugins and retransmit policy every charon of the project uses (profiles/charon.yml)."""
    return yaml.safe_load((paths.PROFILES / "charon.yml").read_text())
