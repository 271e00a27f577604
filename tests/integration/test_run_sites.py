"""playbooks/run-sites.yml on the lab: two tester hosts (namespaces reached over SSH) run the
suite at once, each through its own client; their runs come back and merge into one report."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aovpn_lab import paths
from aovpn_lab.report import runfile

pytestmark = pytest.mark.lab
BIN = Path(sys.executable).parent


def test_two_testers_run_their_sites_at_once_and_one_report_merges_them(lab, tmp_path):
    env = {**os.environ, "ANSIBLE_CONFIG": str(paths.ROOT / "ansible.cfg")}
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(paths.INVENTORIES / "lab"),
                           str(paths.PLAYBOOKS / "run-sites.yml"), "-e", f"sites_out={tmp_path}",
                           "-e", f"aovpn_lab_local={BIN / 'aovpn-lab'}"],
                          cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    merged = runfile.load(tmp_path / "merged")
    sites = {s["site"]: s for s in merged.data["merged"]["sites"]}
    assert set(sites) == {"site-a", "site-b"}
    for name, site in sites.items():
        own = [c for c in merged.cells if c.data.get("site") == name]
        assert len(own) == 4 and {c.state for c in own} == {"pass"}, [(c.id, c.state, c.reason) for c in own]
        # each tester tested through the client its host vars name
        assert {c.data.get("client") for c in own} == {"client" if name == "site-a" else "client2"}
        assert (tmp_path / "merged" / site["folder"] / "report.html").is_file()
    # the two runs overlapped in time: the testers ran in parallel, not one after the other
    runs = [runfile.load(tmp_path / "merged" / s["folder"]) for s in sites.values()]
    (a_start, a_end), (b_start, b_end) = ((r.started, r.data["finished"]) for r in runs)
    assert a_start < b_end and b_start < a_end
    html = (tmp_path / "merged" / "report.html").read_text()
    assert "site-a / gw1" in html and "site-b / gw1" in html
