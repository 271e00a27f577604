"""The vault secrets of a run, taken the way ansible-playbook takes them.

    aovpn-lab --inventory inventories/examples/rras-behind-asa.yml --vault-password-file ~/.vault-pass run
    aovpn-lab --inventory ... --ask-vault-pass run

Ansible's own VaultSecrets hold them (FileVaultSecret: a password file, or an executable
that prints the password; PromptVaultSecret: the prompt), with ANSIBLE_VAULT_PASSWORD_FILE
/ ansible.cfg's vault_password_file added as ansible-playbook adds them. They are read once per process, so
`--ask-vault-pass` asks once for the CLI, the suite and every playbook run.

    >>> Vault(("pw.txt",), ask=True).args()
    ['--vault-password-file', 'pw.txt', '--ask-vault-pass']
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ..errors import InventoryError

FIX = "give --vault-password-file FILE or --ask-vault-pass"
# ansible-playbook's prompt for --ask-vault-pass (ansible.cli.CLI.setup_vault_secrets)
PROMPT = r"^Vault password:\s*?$"

# The options, for argparse and pytest alike (both take add_argument's keywords).
OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--vault-password-file", {"action": "append", "default": [], "metavar": "FILE",
                               "help": "file holding the Ansible vault password of the inventory (or an "
                                       "executable printing it), as for ansible-playbook; may be repeated"}),
    ("--ask-vault-pass", {"action": "store_true", "default": False,
                          "help": "ask for the Ansible vault password of the inventory"}),
)


def add_options(add) -> None:
    """Register the vault options with `add` (ArgumentParser.add_argument, pytest's addoption)."""
    for flag, kwargs in OPTIONS:
        add(flag, **kwargs)


@dataclass(frozen=True)
class Vault:
    """Where the vault secrets come from (never the secrets themselves)."""
    password_files: tuple[str, ...] = ()
    ask: bool = False

    @classmethod
    def of(cls, password_files: list[str] | tuple[str, ...] | None, ask: bool | None) -> "Vault":
        return cls(tuple(password_files or ()), bool(ask))

    def args(self) -> list[str]:
        """The same choice as ansible-playbook / pytest arguments."""
        out = [arg for f in self.password_files for arg in ("--vault-password-file", f)]
        return out + (["--ask-vault-pass"] if self.ask else [])

    def secrets(self) -> list[tuple[str, Any]]:
        """Ansible's (vault id, VaultSecret) pairs; empty when none was given."""
        return _secrets(self.password_files, self.ask)

    def prompted(self) -> str | None:
        """The password typed at --ask-vault-pass, to answer ansible-playbook's own prompt."""
        if not self.ask:
            return None
        from ansible.parsing.vault import PromptVaultSecret
        prompt = next(s for _, s in self.secrets() if isinstance(s, PromptVaultSecret))
        return prompt.bytes.decode()


@functools.cache
def _secrets(password_files: tuple[str, ...], ask: bool) -> list[tuple[str, Any]]:
    """What `ansible.cli.CLI.setup_vault_secrets` builds for --vault-password-file and
    --ask-vault-pass (importing ansible.cli itself costs a second and resets the locale)."""
    from ansible import constants as C
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import PromptVaultSecret, get_file_vault_secret
    files = list(password_files) + ([C.DEFAULT_VAULT_PASSWORD_FILE] if C.DEFAULT_VAULT_PASSWORD_FILE else [])
    secrets: list[tuple[str, Any]] = []
    try:
        for f in files:
            secret = get_file_vault_secret(filename=f, vault_id=C.DEFAULT_VAULT_IDENTITY, loader=DataLoader())
            secret.load()
            secrets.append((C.DEFAULT_VAULT_IDENTITY, secret))
        if ask:
            # the prompt ansible-playbook shows for --ask-vault-pass (PROMPT answers it)
            secret = PromptVaultSecret(prompt_formats=["Vault password: "], vault_id=C.DEFAULT_VAULT_IDENTITY)
            secret.load()
            secrets.append((C.DEFAULT_VAULT_IDENTITY, secret))
    except AnsibleError as exc:
        raise InventoryError(f"vault password: {exc.message.splitlines()[0]}",
                             hint="give a readable --vault-password-file, or --ask-vault-pass") from None
    return secrets
