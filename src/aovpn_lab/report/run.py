"""`aovpn-lab run`: the conformance suite into reports/<run-id>/.

    reports/<run-id>/report.html   self-contained pytest-html, one row per matrix cell
    reports/<run-id>/junit.xml     for CI systems (verdicts as test properties)
    reports/<run-id>/results.json  machine-readable, rewritten after every cell
    reports/latest -> <run-id>

Returns pytest's exit code: 0 when every expectation holds.
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from .. import paths


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def check_target(inventory: str, prefix: str | None) -> None:
    """Refuse to start a run that could only error cell after cell."""
    from .. import inventory as inv_mod
    from ..errors import LabError, PreflightError
    from ..lab import lifecycle
    inv = inv_mod.load(inventory, prefix=prefix)
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
              extra: list[str] | None = None) -> int:
    check_target(inventory, prefix)
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
    if select:
        args += ["-k", select]
    args += list(extra or [])
    print(f"aovpn-lab: run {run_id} -> {run_dir}", file=sys.stderr, flush=True)
    code = int(pytest.main(args))
    print(f"aovpn-lab: report {run_dir / 'report.html'}", file=sys.stderr)
    return code


def _point_latest(reports_dir: Path, run_id: str) -> None:
    latest = reports_dir / "latest"
    tmp = reports_dir / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_id)
    os.replace(tmp, latest)
