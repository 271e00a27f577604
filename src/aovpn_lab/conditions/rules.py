"""What an edge device actually enforces, read back from it: one model for every platform.

Each driver's `effective_rules()` parses its device's own listing into these values, so a
test can compare what a condition should put in place with what the device says it has:

    >>> expected(Condition.parse("block-udp-500+drop-ip-fragments"), where="inside").summary()
    ['deny udp 500', 'drop fragments at inside']
    >>> expected(Condition.parse("mtu:1280"), where="outside").summary()
    ['mtu 1280 at outside']

Only the rules the lab's conditions are about are modelled (deny/allow by protocol and
destination port, fragment dropping, interface MTU); anything else a device lists is left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .model import Condition

PROTOCOLS = ("udp", "tcp", "esp", "any")
ACTIONS = ("allow", "deny")

# The port rule each blocking condition stands for.
BLOCKS = {
    "block-udp-500": ("udp", 500),
    "block-udp-4500": ("udp", 4500),
    "block-esp": ("esp", None),
    "block-tcp-443": ("tcp", 443),
}


@dataclass(frozen=True)
class PortRule:
    action: str                 # allow | deny
    protocol: str               # udp | tcp | esp | any
    port: int | None = None     # destination port; None = every port (or not a port protocol)
    where: str = ""             # the interface, zone or chain it is bound to, as the device names it
    source: str = "any"

    def __post_init__(self) -> None:
        if self.action not in ACTIONS or self.protocol not in PROTOCOLS:
            raise ValueError(f"PortRule({self.action!r}, {self.protocol!r}): action is one of {ACTIONS}, "
                             f"protocol one of {PROTOCOLS}")

    def __str__(self) -> str:
        return f"{self.action} {self.protocol}" + (f" {self.port}" if self.port is not None else "")


@dataclass(frozen=True)
class FragmentPolicy:
    drop_fragments: bool
    where: str = ""

    def __str__(self) -> str:
        return f"{'drop' if self.drop_fragments else 'pass'} fragments at {self.where or 'all'}"


@dataclass(frozen=True)
class MtuSetting:
    mtu: int
    where: str

    def __str__(self) -> str:
        return f"mtu {self.mtu} at {self.where}"


@dataclass(frozen=True)
class EffectiveRules:
    rules: tuple[PortRule, ...] = ()
    fragments: tuple[FragmentPolicy, ...] = ()
    mtus: tuple[MtuSetting, ...] = field(default=())

    @property
    def denied(self) -> set[tuple[str, int | None]]:
        """(protocol, port) of every deny rule, wherever bound."""
        return {(r.protocol, r.port) for r in self.rules if r.action == "deny"}

    @property
    def drops_fragments(self) -> bool:
        return any(f.drop_fragments for f in self.fragments)

    def mtu_at(self, where: str) -> int | None:
        return next((m.mtu for m in self.mtus if m.where == where), None)

    def summary(self) -> list[str]:
        """Deny rules and dropping fragment policies and MTUs, as short sorted sentences."""
        return sorted([str(r) for r in self.rules if r.action == "deny"]
                      + [str(f) for f in self.fragments if f.drop_fragments] + [str(m) for m in self.mtus])


def expected(condition: Condition, where: str = "", rule_where: str = "") -> EffectiveRules:
    """The rules `condition` should leave on a device (MTU only when the condition sets one)."""
    rules = tuple(PortRule("deny", *BLOCKS[p.kind], where=rule_where) for p in condition.parts if p.kind in BLOCKS)
    frags = (FragmentPolicy(True, where),) if condition.has("drop-ip-fragments") else ()
    mtus = (MtuSetting(condition.path_mtu, where),) if condition.path_mtu else ()
    return EffectiveRules(rules, frags, mtus)
