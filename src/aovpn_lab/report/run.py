"""`aovpn-lab run`: the conformance suite into reports/<run-id>/.

    reports/<run-id>/report.html   self-contained pytest-html, one row per matrix cell
    reports/<run-id>/junit.xml     for CI systems (verdicts as test properties)
    reports/<run-id>/results.json  machine-readable, rewritten after every cell
    reports/latest -> <run-id>

Exit status: 0 when every applicable cell passed and none is inconclusive (and at least
one applicable cell ran); 1 on any failed or inconclusive cell, or when nothing applicable
ran; 2 when the run itself broke (an error without a verdict, an interrupted or unusable
pytest run, no cell selected).
"""
from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from .. import paths


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def check_target(inventory: str, prefix: str | None, vault=None) -> None:
    """Refuse to start a run that could only error cell after cell."""
    from .. import inventory as inv_mod
    from ..errors import LabError, PreflightError
    from ..lab import lifecycle
    inv = inv_mod.load(inventory, prefix=prefix, vault=vault)
    if inv.lab is not None:
        if os.geteuid() != 0:
            raise PreflightError("testing the embedded lab needs root (its namespaces and charon sockets)",
                                 hint="run as root")
        st = lifecycle.status(inv)
        down = [f"{h}: {', '.join(k for k, v in e.items() if v is False)}" for h, e in st["hosts"].items()
                if any(v is False for v in e.values())]
        if not any(e["namespace_up"] for e in st["hosts"].values()):
            raise LabError(f"lab {st['prefix']} is not up", hint="aovpn-lab lab up")
        if down:
            raise LabError(f"lab {st['prefix']} is only partly up ({'; '.join(down)})",
                           hint="aovpn-lab lab down && aovpn-lab lab up")


def run_suite(*, inventory: str, prefix: str | None, select: str | None, reports_dir: Path,
              extra: list[str] | None = None, vault=None) -> int:
    check_target(inventory, prefix, vault)
    run_id = new_run_id()
    run_dir = reports_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    _point_latest(reports_dir, run_id)  # before the run: an interrupted run is still 'latest'
    args = [
        str(paths.ROOT / "tests" / "conformance"),
        "-p", "aovpn_lab.pytest_plugin",
        "--rootdir", str(paths.ROOT), "-c", str(paths.ROOT / "pyproject.toml"),
        "--inventory", str(inventory), "--run-dir", str(run_dir),
        f"--html={run_dir / 'report.html'}", "--self-contained-html",
        # xunit1: the family whose testcases may carry properties (the verdicts).
        f"--junitxml={run_dir / 'junit.xml'}", "-o", "junit_family=xunit1",
        "-o", "testpaths=tests/conformance", "-p", "no:cacheprovider", "-rfE", "-q",
    ]
    if prefix:
        args += ["--lab-prefix", prefix]
    if vault is not None:
        args += vault.args()  # the same secrets: a prompt is not asked again in this process
    if select:
        args += ["-k", select]
    args += list(extra or [])
    print(f"aovpn-lab: run {run_id} -> {run_dir}", file=sys.stderr, flush=True)
    code = int(pytest.main(args))
    print(f"aovpn-lab: report {run_dir / 'report.html'}", file=sys.stderr)
    return exit_status(code, run_dir / "results.json")


def exit_status(pytest_code: int, results: Path) -> int:
    """The run's exit status from its cells' verdicts; prints the four counts."""
    from ..pytest_plugin import run_status, verdict_counts
    if pytest_code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        why = {pytest.ExitCode.NO_TESTS_COLLECTED: "no cell was selected"}.get(pytest_code, "pytest did not finish")
        print(f"aovpn-lab: {why} (pytest exit status {pytest_code})", file=sys.stderr)
        return 2
    try:
        cells = json.loads(results.read_text())["cells"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"aovpn-lab: cannot read {results}: {exc}", file=sys.stderr)
        return 2
    counts = verdict_counts(cells)
    status, why = run_status(counts)
    print(f"aovpn-lab: {len(cells)} cells: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n or k != "error")
          + f"; {why}", file=sys.stderr)
    return status


def _point_latest(reports_dir: Path, run_id: str) -> None:
    latest = reports_dir / "latest"
    tmp = reports_dir / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_id)
    os.replace(tmp, latest)
