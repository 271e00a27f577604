"""The lab roles' actions (playbooks/action_plugins/) run by ansible-playbook itself, on
this machine with no lab: Ansible's argument checks, one-line failures, `absent` with
nothing recorded, and no password in anything Ansible prints, even at -vvv."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from aovpn_lab import paths

BIN = Path(sys.executable).parent
PASSWORD = "Never-Printed-4711"


def play(tmp_path: Path, tasks: str, *extra: str) -> subprocess.CompletedProcess:
    book = tmp_path / "play.yml"
    book.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
                    + textwrap.indent(textwrap.dedent(tasks), "    "))
    env = {**os.environ, "ANSIBLE_CONFIG": str(paths.ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_ACTION_PLUGINS": str(paths.PLAYBOOKS / "action_plugins")}
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(book), *extra],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_a_gateway_without_users_fails_with_one_line_naming_the_setting(tmp_path):
    done = play(tmp_path, f"""
        - lab_ocserv: {{state_dir: "{tmp_path}/oc", netns: no-such-ns, cert: /nonexistent, key: /nonexistent}}
        """)
    assert done.returncode == 2
    assert "tlsvpn_gateway.users (or ocserv_users) is empty" in done.stdout


def test_arguments_are_checked_by_ansibles_argument_spec(tmp_path):
    done = play(tmp_path, f"""
        - lab_softether: {{state_dir: "{tmp_path}/se", state: sideways}}
        """)
    assert done.returncode == 2
    assert "value of state must be one of: present, absent" in done.stdout


def test_absent_with_nothing_recorded_changes_nothing(tmp_path):
    done = play(tmp_path, f"""
        - lab_softether: {{state: absent, state_dir: "{tmp_path}/se"}}
        - lab_ocserv: {{state: absent, state_dir: "{tmp_path}/oc"}}
        - lab_radius: {{state: absent, state_dir: "{tmp_path}/rad"}}
        """)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "changed=0" in done.stdout and "failed=0" in done.stdout


def test_a_password_never_appears_in_what_ansible_prints(tmp_path):
    # fails inside the action (no such namespace), after the password was taken
    done = play(tmp_path, f"""
        - lab_softether:
            state_dir: "{tmp_path}/se"
            netns: aovpn-test-no-such-namespace
            cert: /nonexistent.pem
            key: /nonexistent.key
            users: [{{name: alice, password: "{PASSWORD}"}}]
        """, "-vvv")
    assert done.returncode == 2
    assert "SoftEther SSTP gateway (netns aovpn-test-no-such-namespace)" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr


def test_check_mode_changes_nothing(tmp_path):
    # an action that cannot tell what it would change is skipped, as a module without
    # check-mode support is: no certificate is issued, no gateway started
    done = play(tmp_path, f"""
        - lab_pki: {{profiles: [small], root: "{tmp_path}/pki", gateways: [vpn.example.net]}}
        - lab_softether: {{state: absent, state_dir: "{tmp_path}/se"}}
        """, "--check")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "skipped=2" in done.stdout and not (tmp_path / "pki").exists()
