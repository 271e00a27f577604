"""`aovpn-lab run`: the conformance suite into reports/<run-id>/.

    reports/<run-id>/results.json       the record of the run, written as each cell ends (report/runfile.py)
    reports/<run-id>/report.html        matrix summary, requirements, what changed since earlier runs, detail
    reports/<run-id>/summary.png        a screenshot of the matrix summary (headless Chromium)
    reports/<run-id>/pytest-html.html   pytest-html's own page (pytest's logs per cell)
    reports/<run-id>/junit.xml          for CI systems (verdicts as test properties)
    reports/<run-id>/captures/          per-cell evidence files (pcaps, logs)
    reports/history.html, history.json  the index of every run in the folder (report/history.py)
    reports/latest -> <run-id>

The pages are built from results.json alone, after pytest ends, also when it ended by
Ctrl-C or SIGTERM; `aovpn-lab report rebuild DIR` builds them again (after a crash).

Exit status: 0 when every applicable cell passed and none is inconclusive (and at least
one applicable cell ran); 1 on any failed or inconclusive cell, or when nothing applicable
ran; 2 when the run itself broke (an error without a verdict, an interrupted or unusable
pytest run, no cell selected).
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


AUTO = "auto"
MAX_AUTO_WORKERS = 4  # beyond this the 2 cores of a small tester, not the cells' waiting, set the pace


def workers_for(inventory: str, prefix: str | None, vault, requested: str | int | None, client: str | None) -> int:
    """How many pytest-xdist workers a run gets. auto: one per client of ikev2_clients (at
    most MAX_AUTO_WORKERS) where the edge can scope conditions to a client, else 1."""
    from .. import inventory as inv_mod
    from ..conditions.base import driver_class
    from ..errors import AovpnError
    inv = inv_mod.load(inventory, prefix=prefix, vault=vault)
    clients = len(inv.group("ikev2_clients"))
    edges = inv.group("edges")
    scopes = not edges or driver_class(str(edges[0].var("condition_driver") or "linux_nft")).scopes_clients
    if requested in (None, AUTO):
        return 1 if client or not scopes or not inv.lab else max(1, min(clients, MAX_AUTO_WORKERS))
    try:
        n = int(requested)
    except ValueError:
        raise AovpnError(f"--workers {requested!r}: expected a number or 'auto'", hint="e.g. --workers 4") from None
    if n < 1:
        raise AovpnError(f"--workers {n}: expected 1 or more", hint="--workers 1 runs the cells one after another")
    if n > 1 and client:
        raise AovpnError(f"--workers {n} and --client {client}: each worker tests from a client of its own",
                         hint="give one of them")
    if n > 1 and not scopes:
        raise AovpnError(f"--workers {n}: edge {edges[0].name} ({edges[0].var('condition_driver')}) cannot apply a "
                         "condition to one client alone, so cells on several clients would see each other's",
                         hint="run with --workers 1")
    if n > clients:
        raise AovpnError(f"--workers {n}: {inv.path} has {clients} host(s) in group ikev2_clients, one per worker",
                         hint=f"--workers {clients}, or add clients to the inventory")
    return n


def run_suite(*, inventory: str, prefix: str | None, select: str | None, reports_dir: Path,
              extra: list[str] | None = None, vault=None, reruns: int = 0, workers: str | int | None = 1,
              client: str | None = None, site: str | None = None) -> int:
    check_target(inventory, prefix, vault)
    workers = workers_for(inventory, prefix, vault, workers, client)
    run_id = new_run_id()
    run_dir = reports_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    _point_latest(reports_dir, run_id)  # before the run: an interrupted run is still 'latest'
    args = [
        str(paths.ROOT / "tests" / "conformance"),
        "-p", "aovpn_lab.pytest_plugin",
        "--rootdir", str(paths.ROOT), "-c", str(paths.ROOT / "pyproject.toml"),
        "--inventory", str(inventory), "--run-dir", str(run_dir),
        f"--html={run_dir / 'pytest-html.html'}", "--self-contained-html",
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
    if reruns:
        args += ["--reruns", str(reruns)]  # pytest-rerunfailures; the plugin marks fail-then-pass cells flaky
    if client:
        args += ["--client", client]
    if site:
        args += ["--site", site]
    if workers > 1:
        # pytest-xdist: each worker takes a client; loadgroup keeps an xdist_group on one worker
        args += ["-n", str(workers), "--dist", "loadgroup"]
    args += list(extra or [])
    print(f"aovpn-lab: run {run_id} -> {run_dir}"
          + (f" ({workers} workers, one client each)" if workers > 1 else ""), file=sys.stderr, flush=True)
    from .pages import Screenshot, build_run_pages
    shot = Screenshot(run_dir)
    try:
        code = int(pytest.main(args, plugins=[_ScreenshotAtFirstCell(shot)]))
    finally:  # whatever ended pytest, the pages of what was done are written
        build_run_pages(run_dir, history_dir=reports_dir, shot=shot.start())
    print(f"aovpn-lab: report {run_dir / 'report.html'}", file=sys.stderr)
    return exit_status(code, run_dir / "results.json")


class _ScreenshotAtFirstCell:
    """A plugin of this run alone: once the first cell has reported, Chromium starts for the
    summary's screenshot, so it is ready when the last cell ends (not at the start, where
    it would compete with the workers' own start for the CPU)."""

    def __init__(self, shot):
        self.shot = shot

    def pytest_runtest_logreport(self, report) -> None:
        self.shot.start()


def exit_status(pytest_code: int, results: Path) -> int:
    """The run's exit status from its cells' verdicts; prints the four counts."""
    from ..pytest_plugin import run_status, verdict_counts
    if pytest_code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        why = {pytest.ExitCode.NO_TESTS_COLLECTED: "no cell was selected",
               pytest.ExitCode.INTERRUPTED: "the run was interrupted; the report holds the cells done"
               }.get(pytest_code, "pytest did not finish")
        print(f"aovpn-lab: {why} (pytest exit status {pytest_code})", file=sys.stderr)
        return 2
    from .runfile import ResultsFormatError, load
    try:
        cells = [c.data for c in load(results).cells]
    except ResultsFormatError as exc:
        print(f"aovpn-lab: cannot read {exc}", file=sys.stderr)
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
