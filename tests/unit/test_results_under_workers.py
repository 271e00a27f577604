"""results.json of a run on several pytest-xdist workers: written by the controller alone,
from the workers' reports, with the plan the workers collected and the ids a serial run
gives the same cells."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CELLS = textwrap.dedent('''
    import pytest
    from aovpn_lab.verdict import Expectation, Verdict

    @pytest.mark.parametrize("n", range(4))
    def test_a_cell(n, cell):
        cell.place(protocol="ikev2", profile="p", condition=f"c{n}", gateway="gw")
        cell.conclude(Verdict.compare(_expected(), "connected", {"n": n}))

    @pytest.mark.xdist_group("together")
    @pytest.mark.parametrize("n", range(2))
    def test_a_grouped_cell(n, cell):
        cell.conclude(Verdict.compare(_expected(), "connected" if n else "udp-500-blocked", {"n": n}))

    def _expected():
        return Expectation("connected", "AOVPN-IKE-CONN-001", "a test expectation")
''')


def run(tmp_path, *extra):
    (tmp_path / "test_cells.py").write_text(CELLS)
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_cells.py"), "-p", "aovpn_lab.pytest_plugin",
                           "--run-dir", str(run_dir), "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           *extra], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    return proc, json.loads((run_dir / "results.json").read_text())


def test_the_controller_writes_every_workers_cell_under_the_ids_of_a_serial_run(tmp_path):
    proc, parallel = run(tmp_path, "-n", "2", "--dist", "loadgroup")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]   # one grouped cell fails
    (tmp_path / "serial").mkdir()
    _, serial = run(tmp_path / "serial")
    ids = sorted(c["nodeid"] for c in parallel["cells"])
    assert ids == sorted(c["nodeid"] for c in serial["cells"]) and len(ids) == 6
    assert not any("@" in i for i in ids)                         # loadgroup's suffix is not part of the id
    assert sorted(parallel["matrix"]["planned"]) == ids and parallel["matrix"]["digest"] == serial["matrix"]["digest"]
    assert parallel["workers"] == 2 and serial["workers"] == 1
    states = {c["id"]: c["state"] for c in parallel["cells"]}
    assert states == {c["id"]: c["state"] for c in serial["cells"]}
    assert list(states.values()).count("fail") == 1
    assert all("teardown" in c["timings"] for c in parallel["cells"])  # each record found again by its id


def test_workers_take_the_controllers_reading_of_the_inventory(tmp_path):
    """Each xdist worker gets the inventory the controller read (pytest_configure_node), so
    Ansible reads it once per run rather than once more per worker."""
    (tmp_path / "test_inv.py").write_text(textwrap.dedent('''
        from aovpn_lab.inventory import reader
        from aovpn_lab.pytest_plugin import inventory_of

        def test_the_inventory_without_ansible(request, monkeypatch):
            def no_ansible(*args, **kwargs):
                raise AssertionError("this worker read the inventory with Ansible")
            monkeypatch.setattr(reader, "read", no_ansible)
            assert [h.name for h in inventory_of(request.config).group("ikev2_clients")][0] == "client"
    '''))
    proc = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_inv.py"), "-p", "aovpn_lab.pytest_plugin",
                           "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-n", "2"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
