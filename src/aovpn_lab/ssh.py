"""How to reach an inventory host over SSH: the one place netmiko and testinfra ask.

For lab hosts the key, known_hosts and ssh_config come from the lab's state folder
(written by `lab up`); for real devices from the usual Ansible variables. A password
is handed to the library only, never logged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import InventoryError
from .inventory import Host, Inventory


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    username: str
    key_file: str | None
    known_hosts: str | None
    ssh_config: str | None
    password: str | None = field(default=None, repr=False)


def target_of(inventory: Inventory, host: Host) -> SshTarget:
    if not host.address:
        raise InventoryError(f"{inventory.path}: host '{host.name}' has no ansible_host",
                             hint="set ansible_host to its management address")
    lab = inventory.lab if inventory.lab and host.name in inventory.lab.hosts else None
    if lab:
        ssh_dir = lab.state_dir / "ssh"
        return SshTarget(host.address, lab.ssh_port, "root", str(ssh_dir / "id_ed25519"),
                         str(ssh_dir / "known_hosts"), str(ssh_dir / "config"))
    key = host.var("ansible_ssh_private_key_file") or host.var("ansible_private_key_file")
    return SshTarget(host.address, int(host.var("ansible_port", 22)), host.var("ansible_user", "root"),
                     str(Path(key).expanduser()) if key else None, None, None,
                     password=host.var("ansible_password") or host.var("ansible_ssh_pass"))
