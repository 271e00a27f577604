"""An inventory read by Ansible itself: its inventory plugins, variable precedence,
Jinja and vault, as ansible-playbook would see it.

Every value keeps the file and line it came from (Ansible's data tags), so a mistake is
reported as `FILE:LINE: key: what was expected`. Ansible's own failures (YAML syntax, a
vaulted value without a password) become the same one-line InventoryError.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..errors import InventoryError
from .vault import FIX as VAULT_FIX


@dataclass(frozen=True)
class HostVars:
    name: str
    groups: frozenset[str]
    vars: dict[str, Any]
    origin: dict[str, str]


def read(path: Path, secrets: list, prefix: str | None = None) -> tuple[list[HostVars], dict[str, tuple[str, ...]]]:
    """Every host with its variables (templated, decrypted, plain Python), and every group."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    plugins_ready()
    loader = DataLoader()
    loader.set_vault_secrets(secrets)  # encrypted vars files; inline values: _decrypt
    with _captured_warnings() as warned:
        try:
            manager = InventoryManager(loader=loader, sources=[str(path)])
            if not manager.hosts:
                raise _no_hosts(path, loader, warned, secrets)
            variables = VariableManager(loader=loader, inventory=manager)
            hosts = [_host(host, variables.get_vars(host=host, include_hostvars=False), loader, path, secrets, prefix)
                     for host in manager.get_hosts()]
        except AnsibleError as exc:
            raise _error(exc, path, secrets) from None
    _forward(warned)
    groups = {name: tuple(h.name for h in g.get_hosts()) for name, g in manager.groups.items()}
    return hosts, groups


def plugins_ready() -> None:
    """Collections' filters (ansible.utils.nthhost) for the inventory's templates, as
    ansible-playbook has them; set up once per process (Ansible warns on a second time)."""
    import sys
    from ansible.plugins.loader import init_plugin_loader
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    if not any(isinstance(f, _AnsibleCollectionFinder) for f in sys.meta_path):
        init_plugin_loader()


def _host(host: Any, everything: dict[str, Any], loader: Any, path: Path, secrets: list,
          prefix: str | None) -> HostVars:
    """One host's own variables (not Ansible's magic ones), each templated with all of them."""
    from ansible.constants import INTERNAL_STATIC_VARS
    from ansible.errors import AnsibleError
    from ansible.template import Templar
    own = [k for k in everything if k not in INTERNAL_STATIC_VARS]
    origin = {k: _where(everything[k], line=False) or _where(k, line=False) or str(path) for k in own}
    if prefix is not None and "lab_prefix" in everything:
        # like an extra var: above every file, and derived values follow it
        everything["lab_prefix"], origin["lab_prefix"] = prefix, "--prefix"
        # a lab brought up under this prefix beside another keeps the management network it got
        network = recorded_management_network(Path(str(everything.get("lab_state_root", STATE_ROOT))) / prefix)
        if network and "lab_management_network" in everything:
            everything["lab_management_network"], origin["lab_management_network"] = network, f"lab {prefix}"
    everything = {k: _decrypt(v, secrets, k, origin.get(k, str(path))) for k, v in everything.items()}
    templar = Templar(loader=loader, variables=everything)
    values = {}
    for k in own:
        try:
            values[str(k)] = _plain(templar.template(everything[k]))
        except AnsibleError as exc:
            raise InventoryError(f"{origin[k]}: {k}: {_reason(exc)}",
                                 hint="define what the template uses, or quote it as {% raw %}") from None
    return HostVars(host.name, frozenset(g.name for g in host.get_groups()), values,
                    {str(k): v for k, v in origin.items()})


STATE_ROOT = "/var/lib/aovpn-lab"
MANAGEMENT_RECORD = "management-network"


def recorded_management_network(state_dir: Path) -> str | None:
    """The management network `lab up` chose for the lab whose state is in `state_dir`."""
    try:
        return (state_dir / MANAGEMENT_RECORD).read_text().strip() or None
    except OSError:
        return None


def _decrypt(value: Any, secrets: list, key: str, where: str) -> Any:
    """Inline `!vault |` values, decrypted with the secrets given (encrypted files the loader decrypts)."""
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import EncryptedString, VaultHelper, VaultLib
    if isinstance(value, EncryptedString):
        try:
            return VaultLib(secrets).decrypt(VaultHelper.get_ciphertext(value, with_tags=False)).decode()
        except AnsibleError:
            raise _vault_error(_where(value) or where, key, secrets) from None
    if isinstance(value, dict):
        return {k: _decrypt(v, secrets, f"{key}.{k}", where) for k, v in value.items()}
    if isinstance(value, list):
        return [_decrypt(v, secrets, f"{key}[{i}]", where) for i, v in enumerate(value)]
    return value


def _plain(value: Any) -> Any:
    """Ansible's tagged values as plain Python (what the rest of the suite compares and prints)."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    for kind in (bool, str, int, float, bytes):
        if isinstance(value, kind):
            return kind(value)
    return value


# -- where, and why not ---------------------------------------------------------

def _where(value: Any, line: bool = True) -> str | None:
    """The file (and line) a value was read from: Ansible's Origin data tag."""
    from ansible._internal._datatag._tags import Origin
    origin = value if isinstance(value, Origin) else Origin.get_tag(value)
    if origin is None or not origin.path:
        return None
    return f"{origin.path}:{origin.line_num}" if line and origin.line_num else origin.path


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _reason(exc: BaseException) -> str:
    return (getattr(exc, "message", None) or str(exc)).splitlines()[0]


def _vault_error(where: str, key: str | None, secrets: list) -> InventoryError:
    why = "the vault password given does not decrypt it" if secrets else "no vault password was given"
    return InventoryError(f"{where}: {key + ': ' if key else ''}vaulted, and {why}", hint=VAULT_FIX)


def _error(exc: BaseException, path: Path, secrets: list) -> InventoryError:
    if isinstance(exc, InventoryError):
        return exc
    from ansible.parsing.vault import AnsibleVaultError
    chain = list(_chain(exc))
    where = next((w for w in (_where(getattr(e, "obj", None)) for e in chain) if w), str(path))
    if any(isinstance(e, AnsibleVaultError) for e in chain):
        return _vault_error(where, None, secrets)
    bad_yaml = next((e for e in chain if isinstance(e, yaml.MarkedYAMLError)), None)
    if bad_yaml is not None:
        return InventoryError(f"{where}: not valid YAML ({bad_yaml.problem})", hint="fix the YAML syntax")
    return InventoryError(f"{where}: {_reason(exc)}", hint="fix the inventory (`ansible-inventory -i PATH --list` "
                                                           "shows what Ansible reads)")


def _no_hosts(path: Path, loader: Any, warned: list, secrets: list) -> InventoryError:
    """Ansible parsed no host: say why, from the file that is broken if one is."""
    from ansible.errors import AnsibleError
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for f in files:
        if f.suffix in (".yml", ".yaml", ".json"):
            try:
                loader.load_from_file(str(f))
            except AnsibleError as exc:
                return _error(exc, f, secrets)
    said = f" (Ansible: {_warning_text(warned[0])})" if warned else ""
    if path.is_dir():
        return InventoryError(f"inventory folder {path} holds no inventory file with a host{said}",
                              hint="add hosts.yml (see inventories/lab/hosts.yml)")
    return InventoryError(f"{path}: no host in it{said}: expected an Ansible inventory, for YAML with a "
                          "top-level 'all:' key", hint="see inventories/lab/hosts.yml for the layout")


# -- Ansible's warnings ---------------------------------------------------------

@contextlib.contextmanager
def _captured_warnings() -> Iterator[list]:
    """Ansible's warnings while reading: part of an error when reading fails, shown otherwise."""
    from ansible._internal._display_utils import DeferredWarningContext
    with DeferredWarningContext(variables={}) as ctx:
        yield ctx.get_warnings()


def _warning_text(warning: Any) -> str:
    event = warning.event.chain.event if warning.event.chain else warning.event
    return event.msg.splitlines()[0]


def _forward(warned: list) -> None:
    from ansible.utils.display import Display
    for w in warned:
        Display().warning(_warning_text(w))
