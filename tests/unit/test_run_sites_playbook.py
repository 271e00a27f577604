"""playbooks/run-sites.yml and execution-environment.yml: the play passes ansible-playbook's
syntax check and ansible-lint; the execution environment passes ansible-builder's own
schema and becomes a build context (an image cannot be built here: no container runtime)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aovpn_lab import paths

BIN = Path(sys.executable).parent
EE = paths.ROOT / "execution-environment.yml"


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(paths.ROOT / "ansible.cfg")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_run_sites_passes_the_syntax_check_against_the_lab_inventory():
    done = run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(paths.INVENTORIES / "lab"),
                str(paths.PLAYBOOKS / "run-sites.yml")], paths.ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_run_sites_passes_ansible_lint():
    done = run([str(BIN / "ansible-lint"), "-c", ".ansible-lint", "run-sites.yml"], paths.PLAYBOOKS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_every_tester_of_the_lab_names_its_site_inventory_and_client():
    from aovpn_lab import inventory
    inv = inventory.load(paths.INVENTORIES / "lab")
    testers = inv.group("testers")
    assert [h.name for h in testers] == ["tester1", "tester2"]
    names = [h.var("site_name") for h in testers]
    clients = [h.var("site_run_args")[h.var("site_run_args").index("--client") + 1] for h in testers]
    assert len(set(names)) == 2 and len(set(clients)) == 2   # two sites, each through its own client


def test_the_execution_environment_passes_ansible_builders_schema():
    from ansible_builder.user_definition import UserDefinition
    definition = UserDefinition(str(EE))
    definition.validate()
    assert definition.version == 3


def test_a_broken_execution_environment_is_refused_by_that_schema(tmp_path):
    from ansible_builder.exceptions import DefinitionError
    from ansible_builder.user_definition import UserDefinition
    broken = yaml.safe_load(EE.read_text())
    broken["dependencies"]["ansible_core"] = {"package": "ansible-core"}   # not a key of schema 3
    (tmp_path / "ee.yml").write_text(yaml.safe_dump(broken))
    with pytest.raises(DefinitionError):
        UserDefinition(str(tmp_path / "ee.yml")).validate()


def test_ansible_builder_makes_a_build_context_with_the_project_in_it(tmp_path):
    done = run([str(BIN / "ansible-builder"), "create", "-f", str(EE), "--context", str(tmp_path / "ctx")],
               paths.ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    build = tmp_path / "ctx" / "_build"
    assert (build / "aovpn-lab" / "src" / "aovpn_lab" / "report" / "merge.py").is_file()
    assert (build / "aovpn-lab" / "playbooks" / "run-sites.yml").is_file()
    containerfile = next((tmp_path / "ctx").glob("[CD]*file")).read_text()
    assert "pip install --no-cache-dir /opt/aovpn-lab" in containerfile
