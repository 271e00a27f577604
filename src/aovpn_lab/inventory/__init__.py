"""An Ansible inventory, read by Ansible and checked into typed objects.

The same inventory Ansible provisions from is what the suite tests against, read the
way ansible-playbook reads it (inventory plugins, group_vars/host_vars precedence,
`{{ }}` values, vaulted values with the secrets given), so a mistake in it is reported
once, here, naming the file, the key and what was expected:

    >>> inv = load("inventories/lab")                       # doctest: +SKIP
    >>> inv.lab.prefix, [h.name for h in inv.group("ikev2_gateways")]  # doctest: +SKIP
    ('aovpn', ['gw1'])
    >>> load("inventories/examples/rras-behind-asa.yml",    # doctest: +SKIP
    ...      vault=Vault(("tests/data/vault/example-vault-password",)))

An inventory is read once per process for each (path, prefix, vault, files' mtimes):
the suite and the CLI ask for it often, Ansible takes a fraction of a second. Other
processes of the same run (pytest-xdist's workers) take the reading of the process that
started them (:func:`snapshot`, :func:`adopt`) instead of reading it again: Ansible's
imports and its read cost each process about as much as collecting the whole matrix.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from ..errors import InventoryError
from .checks import lab_spec
from .model import Host, Inventory, LabSpec, Link, LinkEnd
from .vault import Vault

__all__ = ["Host", "Inventory", "LabSpec", "Link", "LinkEnd", "Vault", "adopt", "load", "snapshot"]

_CACHE: dict[tuple, Inventory] = {}


def load(path: str | Path, prefix: str | None = None, vault: Vault | None = None) -> Inventory:
    """Load and validate an inventory folder or file. `prefix` overrides lab_prefix."""
    path = Path(path)
    if not path.exists():
        raise InventoryError(f"inventory {path} does not exist", hint="pass --inventory with a folder or YAML file")
    vault = vault or Vault()
    key = _key(path, prefix, vault)
    if key not in _CACHE:
        _CACHE[key] = _read(path, prefix, vault)
    return _CACHE[key]


def snapshot(inv: Inventory) -> bytes:
    """What Ansible read for `inv` (hosts with their variables, groups), for :func:`adopt`
    in another process of the same run. It holds the decrypted vault values: it goes
    through that process's pipe only, never into a file or a log."""
    return pickle.dumps(([(h.name, h.groups, dict(h.vars), dict(h.origin)) for h in inv.hosts.values()],
                         dict(inv.groups)))


def adopt(path: str | Path, data: bytes, prefix: str | None = None, vault: Vault | None = None) -> None:
    """Make :func:`load` (same path, prefix and vault) answer with `data`, another process's
    :func:`snapshot` of this inventory, instead of reading it with Ansible. Keyed as load
    keys its own readings: if a file changed since the snapshot, load reads it again."""
    path, vault = Path(path), vault or Vault()
    found, groups = pickle.loads(data)  # from the process that started this one (its own pipe)
    _CACHE[_key(path, prefix, vault)] = _inventory(path, found, groups, vault)


def _key(path: Path, prefix: str | None, vault: Vault) -> tuple:
    return (path.resolve(), prefix, vault, _fingerprint(path), _record_stamp(prefix))


def _read(path: Path, prefix: str | None, vault: Vault) -> Inventory:
    from .reader import read
    _local_tmp()
    found, groups = read(path, vault.secrets(), prefix)
    return _inventory(path, [(h.name, h.groups, h.vars, h.origin) for h in found], groups, vault)


def _inventory(path: Path, found: list[tuple], groups: dict[str, tuple[str, ...]], vault: Vault) -> Inventory:
    """The checked inventory from (name, groups, vars, origin) of every host."""
    hosts = {name: Host(name=name, address=hv.get("ansible_host"), groups=gs,
                        vars=MappingProxyType(hv), origin=MappingProxyType(origin)) for name, gs, hv, origin in found}
    inv = Inventory(path=path, hosts=hosts, groups=groups, vault=vault)
    return replace(inv, lab=lab_spec(inv)) if "lab" in groups else inv


def _record_stamp(prefix: str | None) -> str | None:
    """What a lab under `prefix` recorded about itself (its management network): part of the
    cache key, so an inventory read again after `lab up` recorded one sees it."""
    if prefix is None:
        return None
    from .reader import STATE_ROOT, recorded_management_network
    return recorded_management_network(Path(STATE_ROOT) / prefix)


def _local_tmp() -> None:
    """Ansible's configuration creates its local temp folder (~/.ansible/tmp) when first
    imported; where HOME is not writable (a command run as another user, to be refused
    with its own message) let it use the system's, where it removes its folder at exit."""
    home = Path(os.environ.get("ANSIBLE_HOME", Path.home() / ".ansible"))
    writable = os.access(home, os.W_OK) or (not os.access(home, os.F_OK) and os.access(home.parent, os.W_OK))
    if "ANSIBLE_LOCAL_TEMP" not in os.environ and not writable:
        os.environ["ANSIBLE_LOCAL_TEMP"] = tempfile.gettempdir()


def _fingerprint(path: Path) -> tuple:
    """The files Ansible reads for `path` (with group_vars/host_vars beside a file), by mtime."""
    roots = [path] if path.is_dir() else [path, path.parent / "group_vars", path.parent / "host_vars"]
    seen = []
    for root in roots:
        if root.is_file():
            seen.append((str(root), root.stat().st_mtime_ns))
        for folder, _, files in os.walk(root):
            seen += [(os.path.join(folder, f), os.stat(os.path.join(folder, f)).st_mtime_ns) for f in files]
    return tuple(sorted(seen))
