"""playbooks/rras.yml and playbooks/nps.yml: ansible-playbook --syntax-check and ansible-lint
pass (each judged by its exit status). Nothing connects to a host."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aovpn_lab import paths

BIN = Path(sys.executable).parent
PASSWORD_FILE = paths.ROOT / "tests" / "data" / "vault" / "example-vault-password"
ASA = paths.INVENTORIES / "examples" / "rras-behind-asa.yml"
CONFIG = paths.ROOT / "ansible.cfg"


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(CONFIG), "ANSIBLE_ROLES_PATH": str(paths.PLAYBOOKS / "roles")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("play", ["rras.yml", "nps.yml"])
def test_the_play_passes_ansible_playbook_syntax_check(play):
    done = run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(ASA), "--vault-password-file",
                str(PASSWORD_FILE), str(paths.PLAYBOOKS / play)], paths.ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.skipif(not (BIN / "ansible-lint").exists() and not shutil.which("ansible-lint"),
                    reason="ansible-lint (the dev extra) is not installed")
def test_the_roles_and_plays_pass_ansible_lint():
    lint = str(BIN / "ansible-lint") if (BIN / "ansible-lint").exists() else shutil.which("ansible-lint")
    done = run([lint, "-c", ".ansible-lint", "roles/rras", "roles/nps", "rras.yml", "nps.yml"], paths.PLAYBOOKS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
