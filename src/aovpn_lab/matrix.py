"""The conformance matrix (profiles/matrix.yml): which cells `aovpn-lab run` tests, per
protocol, validated on load. What a cell must show is the reason model's
(aovpn_lab.expectations); the test modules only parametrise from these lists.

    >>> m = get()
    >>> m.ikev2[0].auth, m.ikev2[0].profile.name, m.ikev2[0].condition
    ('pubkey', 'aovpn-recommended', 'open')
    >>> m.path
    ('open', 'drop-ip-fragments', 'block-udp-500', 'block-udp-4500')
    >>> m.fallback.strategy.name, m.fallback.cells[0]
    ('Ikev2Sstp', ('block-udp-500', 'initial-failure'))
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .conditions.model import Condition
from .errors import AovpnError
from .fallback import FALLBACK_MODES, VpnStrategy
from .ike import profiles
from .ike.profiles import ClientProfile

MATRIX_FILE = paths.PROFILES / "matrix.yml"
AUTHS = ("pubkey", "eap-tls")          # machine certificate (device tunnel), EAP-TLS user (user tunnel)
BINDING_CERTIFICATES = ("gateway", "ca")


@dataclass(frozen=True)
class IkeCell:
    auth: str
    profile: ClientProfile             # with the block's RFC 7383 setting
    condition: str


@dataclass(frozen=True)
class FallbackMatrix:
    strategy: VpnStrategy
    cells: tuple[tuple[str, str], ...]         # (condition, fallback rule)
    clients: dict[str, tuple[str, str]]        # fallback rule -> (name in the id, description)


@dataclass(frozen=True)
class Matrix:
    ikev2: tuple[IkeCell, ...]
    sstp: tuple[str, ...]
    sstp_binding: dict[str, str]               # case -> the certificate whose hash the server expects
    tlsvpn: tuple[str, ...]
    path: tuple[str, ...]
    fallback: FallbackMatrix


class _Reader:
    """Typed access to the file's keys; every error names the file, the key and the fix."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, key: str, problem: str, fix: str) -> AovpnError:
        return AovpnError(f"{self.name}: {key}: {problem}", hint=fix)

    def mapping(self, value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, "expected a mapping", "see the file's other sections")
        return value

    def items(self, value: Any, key: str) -> list:
        if not isinstance(value, list) or not value:
            raise self.fail(key, "expected a non-empty list", f"e.g. {key}: [open, nat]")
        return value

    def conditions(self, value: Any, key: str) -> tuple[str, ...]:
        out = []
        for i, text in enumerate(self.items(value, key)):
            try:
                Condition.parse(str(text))
            except AovpnError as exc:
                raise self.fail(f"{key}[{i}]", exc.message, exc.hint or "see aovpn_lab.conditions.model") from None
            out.append(str(text))
        return tuple(out)

    def choice(self, value: Any, key: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(key, f"'{value}' is not one of {', '.join(allowed)}", f"use one of {', '.join(allowed)}")
        return str(value)


def _ikev2(r: _Reader, blocks: Any) -> tuple[IkeCell, ...]:
    cells = []
    for b, block in enumerate(r.items(blocks, "ikev2")):
        key = f"ikev2[{b}]"
        block = r.mapping(block, key)
        auth = r.choice(block.get("auth"), f"{key}.auth", AUTHS)
        conditions = r.conditions(block.get("conditions"), f"{key}.conditions")
        names = r.items(block.get("profiles"), f"{key}.profiles")
        known = profiles.load()[0]
        for i, name in enumerate(names):
            if name not in known:
                raise r.fail(f"{key}.profiles[{i}]", f"unknown client profile '{name}'",
                             f"use one of {', '.join(known)} (profiles/clients.yml)")
        frags = block.get("client_fragmentation", [True])
        if not isinstance(frags, list) or not frags or not all(isinstance(f, bool) for f in frags):
            raise r.fail(f"{key}.client_fragmentation", "expected a list of true/false", "e.g. [true, false]")
        # the order of the cells (and so of the report): condition, then profile, then RFC 7383 setting
        cells += [IkeCell(auth, profiles.get(p).with_fragmentation(f), c)
                  for c in conditions for p in names for f in frags]
    return tuple(cells)


def _fallback(r: _Reader, body: Any) -> FallbackMatrix:
    body = r.mapping(body, "fallback")
    try:
        strategy = VpnStrategy.parse(body.get("strategy", ""))
    except ValueError as exc:
        raise r.fail("fallback.strategy", str(exc), "name a VpnStrategy, e.g. Ikev2Sstp") from None
    clients = {}
    for mode, client in r.mapping(body.get("clients"), "fallback.clients").items():
        r.choice(mode, "fallback.clients", FALLBACK_MODES)
        client = r.mapping(client, f"fallback.clients.{mode}")
        if not client.get("name") or not client.get("description"):
            raise r.fail(f"fallback.clients.{mode}", "expected {name, description}",
                         "name: how a cell's id names the client; description: what it does")
        clients[mode] = (str(client["name"]), str(client["description"]))
    cells = []
    for i, cell in enumerate(r.items(body.get("cells"), "fallback.cells")):
        cell = r.mapping(cell, f"fallback.cells[{i}]")
        condition = r.conditions([cell.get("condition")], f"fallback.cells[{i}].condition")[0]
        mode = r.choice(cell.get("fallback_on"), f"fallback.cells[{i}].fallback_on", tuple(clients))
        cells.append((condition, mode))
    return FallbackMatrix(strategy, tuple(cells), clients)


def load(path: Path = MATRIX_FILE) -> Matrix:
    r = _Reader(str(path))
    data = r.mapping(yaml.safe_load(Path(path).read_text()), "(top level)")
    sections = tuple(Matrix.__dataclass_fields__)
    missing = [k for k in sections if k not in data]
    if missing:
        raise r.fail(missing[0], "missing", "every protocol's section is needed (see the file's comments)")
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise r.fail(unknown[0], "unknown section", f"use {', '.join(sections)}")
    binding = r.mapping(r.mapping(data["sstp_binding"], "sstp_binding").get("cases"), "sstp_binding.cases")
    return Matrix(
        ikev2=_ikev2(r, data["ikev2"]),
        sstp=r.conditions(r.mapping(data["sstp"], "sstp").get("conditions"), "sstp.conditions"),
        sstp_binding={str(case): r.choice(cert, f"sstp_binding.cases.{case}", BINDING_CERTIFICATES)
                      for case, cert in binding.items()},
        tlsvpn=r.conditions(r.mapping(data["tlsvpn"], "tlsvpn").get("conditions"), "tlsvpn.conditions"),
        path=r.conditions(r.mapping(data["path"], "path").get("conditions"), "path.conditions"),
        fallback=_fallback(r, data["fallback"]))


@lru_cache(maxsize=1)
def get() -> Matrix:
    return load()
