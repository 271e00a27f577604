"""What an inventory declares about the target it certifies: the `certification` variable.

    certification:
      vendor: Microsoft
      model: Windows Server 2022 Routing and Remote Access
      software_version: "10.0.20348.2582"     # a string: quoted, so 10.10 stays 10.10
      configuration: [rras1-vpnserver.txt]      # files relative to the inventory, hashed

A value left out is "not declared in the inventory": the report never guesses one. For the
embedded lab `software_version: measured` takes the strongSwan version from the run's
environment (the tester's dpkg record, which is what the lab's gateways run), and
`software_version: {measured: [strongSwan, SoftEther]}` names the packages to take; the
report labels it measured, not declared.

The configuration digest is SHA-256 over sha256sum's lines for the files in the order
given, so `cd INVENTORY_FOLDER && sha256sum FILE... | sha256sum` gives the same digest.

    >>> configuration_digest([("a.txt", "0" * 64)])
    '817d0524bc94fe7035d1cbf5451da4e8fe8617b3f0b877921f1db230648a351f'
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import InventoryError
from .manifest import file_sha256

VARIABLE = "certification"
NOT_DECLARED = "not declared in the inventory"
MEASURED = "measured"
MEASURED_DEFAULT = ("strongSwan",)  # the embedded lab's IKEv2 gateway
KEYS = ("vendor", "model", "software_version", "configuration")
FIX = (f"set {VARIABLE}: {{vendor, model, software_version, configuration: [files]}} once, in group_vars/all.yml "
       "or under all: vars:")


@dataclass(frozen=True)
class Value:
    """One fact about the target and how it is known: 'declared', 'measured', or '' (not known)."""
    text: str
    how: str = ""

    @property
    def known(self) -> bool:
        return bool(self.how)


@dataclass(frozen=True)
class Declaration:
    inventory: Path
    origin: str                                 # the file the block came from ('' when there is none)
    vendor: Value
    model: Value
    software_version: Value                     # 'measured' is resolved against a run: see software()
    measured: tuple[str, ...]                   # packages (environment labels) to measure, when measured
    configuration: tuple[tuple[str, str], ...]  # (file as declared, SHA-256)

    @property
    def configuration_digest(self) -> Value:
        if not self.configuration:
            return Value(NOT_DECLARED)
        return Value(configuration_digest(self.configuration), "declared")

    def software(self, environment: Mapping[str, Any]) -> Value:
        """The software version: as declared, or measured from a run's package versions."""
        if not self.measured:
            return self.software_version
        packages = environment.get("packages") or {}
        found = {label: str(packages[label]) for label in self.measured
                 if packages.get(label) and not str(packages[label]).startswith(("not installed", "unknown"))}
        if not found:
            return Value(f"not measured: the run recorded no version of {', '.join(self.measured)}")
        return Value(", ".join(f"{label} {found[label]}" if label in found else f"{label} not recorded"
                               for label in self.measured), MEASURED)


def configuration_digest(files: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    return hashlib.sha256("".join(f"{digest}  {name}\n" for name, digest in files).encode()).hexdigest()


def declaration(inventory) -> Declaration:
    """The inventory's `certification` block, checked: one line naming the file and key when wrong."""
    hosts = sorted(inventory.hosts.values(), key=lambda h: h.name)
    holders = [h for h in hosts if h.var(VARIABLE) is not None]
    base = inventory.path if inventory.path.is_dir() else inventory.path.parent
    if not holders:
        return Declaration(inventory.path, "", Value(NOT_DECLARED), Value(NOT_DECLARED), Value(NOT_DECLARED), (), ())
    first = holders[0]
    for other in holders[1:]:
        if other.var(VARIABLE) != first.var(VARIABLE):
            raise InventoryError(f"{other.where(VARIABLE)}: {VARIABLE} of host {other.name} differs from host "
                                 f"{first.name}'s ({first.where(VARIABLE)}): a certification names one target",
                                 hint=FIX)
    where = _relative(first.where(VARIABLE), base)
    block = first.var(VARIABLE)
    if not isinstance(block, Mapping):
        raise InventoryError(f"{where}: {VARIABLE}: expected a mapping of {', '.join(KEYS)}, got "
                             f"{type(block).__name__}", hint=FIX)
    unknown = sorted(set(block) - set(KEYS))
    if unknown:
        raise InventoryError(f"{where}: {VARIABLE}: unknown key(s) {', '.join(map(str, unknown))} "
                             f"(known: {', '.join(KEYS)})", hint=FIX)
    version, measured = _software(block.get("software_version"), where)
    return Declaration(inventory.path, where, _text(block, "vendor", where), _text(block, "model", where),
                       version, measured, _configuration(block.get("configuration"), base, where))


def _text(block: Mapping[str, Any], key: str, where: str) -> Value:
    value = block.get(key)
    if value is None or value == "":
        return Value(NOT_DECLARED)
    if not isinstance(value, str):
        raise InventoryError(f"{where}: {VARIABLE}.{key}: expected a string, got {type(value).__name__} {value!r}",
                             hint=f"quote it ({key}: \"{value}\"): YAML reads 10.10 as the number 10.1")
    return Value(value, "declared")


def _software(value: Any, where: str) -> tuple[Value, tuple[str, ...]]:
    if value == MEASURED:
        return Value(MEASURED), MEASURED_DEFAULT
    if isinstance(value, Mapping):
        labels = value.get(MEASURED)
        if set(value) != {MEASURED} or not isinstance(labels, list) or not labels \
                or not all(isinstance(x, str) for x in labels):
            raise InventoryError(f"{where}: {VARIABLE}.software_version: expected a string, \"{MEASURED}\" or "
                                 f"{{{MEASURED}: [package labels]}}",
                                 hint="e.g. software_version: {measured: [strongSwan, SoftEther]}")
        return Value(MEASURED), tuple(labels)
    return _text({"software_version": value}, "software_version", where), ()


def _configuration(value: Any, base: Path, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise InventoryError(f"{where}: {VARIABLE}.configuration: expected a list of file names relative to "
                             f"{base}", hint="configuration: [gateway-config.txt]")
    out = []
    for name in value:
        path = (base / Path(name).expanduser())
        if not path.is_file():
            raise InventoryError(f"{where}: {VARIABLE}.configuration: {name} is not a file (looked at {path})",
                                 hint="export the gateway's configuration beside the inventory, or fix the name")
        out.append((name, file_sha256(path)))
    return tuple(out)


def _relative(where: str, base: Path) -> str:
    """The file a value came from, named from the inventory's folder (the report travels)."""
    try:
        return Path(where).resolve().relative_to(base.resolve().parent).as_posix()
    except ValueError:
        return where
