"""Vaulted inventory values: decrypted with the secrets given as to ansible-playbook, refused
in one line without them, and never shown anywhere but to the library that logs in."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import paramiko
import pytest

from aovpn_lab import cli, inventory, paths
from aovpn_lab.conditions.cisco_asa import CiscoAsaDriver
from aovpn_lab.errors import InventoryError, TargetError
from aovpn_lab.inventory import Vault
from aovpn_lab.lab import playbook
from aovpn_lab.ssh import target_of
from aovpn_lab.target import Target

EXAMPLE = paths.INVENTORIES / "examples" / "rras-behind-asa.yml"
PASSWORD_FILE = paths.ROOT / "tests" / "data" / "vault" / "example-vault-password"
VAULT = Vault((str(PASSWORD_FILE),))
SECRET = "example-asa-Pa55-word"  # what the example's vaulted ansible_password decrypts to


def test_the_vaulted_example_decrypts_with_its_password_file():
    inv = inventory.load(EXAMPLE, vault=VAULT)
    asa = inv.host("asa")
    assert asa.var("ansible_password") == SECRET
    assert type(asa.var("ansible_password")) is str
    assert asa.where("ansible_password") == str(EXAMPLE)
    assert inv.vault == VAULT


def test_without_a_password_one_line_names_file_key_and_fix():
    with pytest.raises(InventoryError) as exc:
        inventory.load(EXAMPLE)
    msg = str(exc.value)
    assert "\n" not in msg
    assert f"{EXAMPLE}:" in msg and "ansible_password" in msg and "no vault password was given" in msg
    assert "--vault-password-file" in msg and "--ask-vault-pass" in msg


def test_a_wrong_password_is_named_as_such(tmp_path: Path):
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-example-password\n")
    with pytest.raises(InventoryError, match="ansible_password: vaulted, and the vault password given does not "
                                             "decrypt it"):
        inventory.load(EXAMPLE, vault=Vault((str(wrong),)))


def test_a_missing_password_file_is_named(tmp_path: Path):
    with pytest.raises(InventoryError, match="vault password"):
        inventory.load(EXAMPLE, vault=Vault((str(tmp_path / "nope"),)))


def _encrypted_host_vars(tmp_path: Path) -> Path:
    from ansible.parsing.vault import VaultLib, VaultSecret
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    edges:\n      hosts:\n        fw:\n"
                                        "          ansible_host: 192.0.2.1\n")
    lib = VaultLib([("default", VaultSecret(PASSWORD_FILE.read_text().strip().encode()))])
    (tmp_path / "host_vars" / "fw.yml").write_bytes(lib.encrypt(f"ansible_password: {SECRET}\n"))
    return tmp_path


def test_an_encrypted_vars_file_decrypts_and_without_a_password_is_named(tmp_path: Path):
    inv_dir = _encrypted_host_vars(tmp_path)
    assert inventory.load(inv_dir, vault=VAULT).host("fw").var("ansible_password") == SECRET
    with pytest.raises(InventoryError) as exc:
        inventory.load(inv_dir)
    assert "host_vars/fw.yml" in str(exc.value) and "--vault-password-file" in str(exc.value)


def test_the_cli_refuses_a_vaulted_inventory_without_a_password(capsys):
    code = cli.main(["--inventory", str(EXAMPLE), "lab", "status"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert "ansible_password" in err and "--vault-password-file" in err


def test_the_cli_decrypts_with_vault_password_file_and_never_prints_the_secret(capsys):
    code = cli.main(["--inventory", str(EXAMPLE), "--vault-password-file", str(PASSWORD_FILE), "lab", "status"])
    out = capsys.readouterr()
    assert code == 2 and "describes no embedded lab" in out.err  # read fine: it is not a lab
    assert SECRET not in out.out + out.err


def test_no_repr_shows_the_secret():
    inv = inventory.load(EXAMPLE, vault=VAULT)
    asa = inv.host("asa")
    target = Target.from_inventory(inv)
    for text in (repr(inv), str(inv), repr(asa), repr(target), repr(target_of(inv, asa)),
                 repr(CiscoAsaDriver(inv, asa).__dict__)):
        assert SECRET not in text
    assert asa == inventory.load(EXAMPLE, vault=VAULT).host("asa")


class _RecordingServer(paramiko.ServerInterface):
    """An SSH server on loopback that writes down the password it is offered and refuses it."""

    def __init__(self) -> None:
        self.passwords: list[str] = []

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        self.passwords.append(password)
        return paramiko.AUTH_FAILED


def _serve_once(sock: socket.socket, server: _RecordingServer) -> None:
    conn, _ = sock.accept()
    transport = paramiko.Transport(conn)
    transport.add_server_key(paramiko.RSAKey.generate(2048))
    try:
        transport.start_server(server=server)
        transport.join(10)
    finally:
        transport.close()


def test_netmiko_is_handed_the_decrypted_password_and_no_error_shows_it(tmp_path: Path):
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    text = EXAMPLE.read_text().replace("ansible_host: 192.0.2.254",
                                       f"ansible_host: 127.0.0.1\n          ansible_port: {port}")
    (tmp_path / "asa.yml").write_text(text)
    inv = inventory.load(tmp_path / "asa.yml", vault=VAULT)
    server = _RecordingServer()
    thread = threading.Thread(target=_serve_once, args=(sock, server), daemon=True)
    thread.start()
    with pytest.raises(TargetError) as exc:
        CiscoAsaDriver(inv, inv.host("asa")).open()
    thread.join(15)
    sock.close()
    assert server.passwords and set(server.passwords) == {SECRET}
    assert SECRET not in str(exc.value)


def test_ansible_playbook_is_handed_the_same_vault(tmp_path: Path):
    import ansible_runner
    book = tmp_path / "check.yml"
    book.write_text("- hosts: edges\n  gather_facts: false\n  tasks:\n"
                    f"    - assert: {{that: \"ansible_password == '{SECRET}'\"}}\n      no_log: true\n")
    private = tmp_path / "runner"
    private.mkdir()
    env = {"ANSIBLE_CONFIG": str(paths.ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    r = ansible_runner.run(private_data_dir=str(private), playbook=str(book), inventory=str(EXAMPLE), envvars=env,
                           quiet=True, suppress_env_files=True, **playbook._vault_arguments(VAULT))
    out = r.stdout.read()
    assert r.status == "successful", out[-2000:]
    assert SECRET not in out
    assert not any(SECRET.encode() in p.read_bytes() for p in private.rglob("*") if p.is_file())


def test_the_suite_reports_never_show_the_secret(tmp_path: Path):
    (tmp_path / "test_cell.py").write_text(
        "from aovpn_lab.verdict import Verdict\n"
        "def test_cell(target, inventory, cell):\n"
        "    cell.record(Verdict('R', 'connected', 'connected', 'pass', 'read', evidence={'host': repr(inventory.host('asa'))}))\n"
        "def test_a_failing_comparison(inventory):\n"
        "    assert inventory.host('asa') == inventory.host('tester')\n")
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_cell.py"), "-p", "aovpn_lab.pytest_plugin",
                           "-p", "no:cacheprovider", "-vv", "--rootdir", str(tmp_path), "-c", os.devnull,
                           "--inventory", str(EXAMPLE), "--vault-password-file", str(PASSWORD_FILE),
                           "--run-dir", str(run), f"--junitxml={run / 'junit.xml'}", f"--html={run / 'report.html'}",
                           "--self-contained-html"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    results = json.loads((run / "results.json").read_text())
    assert [c["state"] for c in results["cells"]] == ["pass", "error"], proc.stdout[-3000:]
    for text in (proc.stdout, proc.stderr, *(p.read_text() for p in run.rglob("*") if p.is_file())):
        assert SECRET not in text
