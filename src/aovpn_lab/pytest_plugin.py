"""The conformance suite's pytest plugin (loaded by the repository's conftest.py).

Options: --inventory PATH (the target, default the embedded lab), --lab-prefix NAME,
--run-dir DIR (where results.json is written, cell by cell), --client NAME (the host of
ikev2_clients to test from; its conditions, counters and captures are then its own),
--vault-password-file FILE / --ask-vault-pass (the inventory's vault secrets, as for
ansible-playbook).

Under pytest-xdist (`aovpn-lab run --workers N`: `-n N --dist loadgroup`) each worker tests
from its own client (worker K: the K-th host of ikev2_clients), every cell's condition is
scoped to that client, and only the controller writes results.json, from the reports the
workers send it. Cells that share something beyond a client (the load balancer, the
reference SSTP server's port) carry an xdist_group mark: one worker runs all of a group.

Fixtures: `target` (gateways and client from the inventory), `edge` (an open session
to the device that applies network conditions), `cell` (where a test puts its
verdict and its place in the matrix). Each cell's verdict becomes report columns
(expected, observed, reason) plus an evidence block in pytest-html, a property in
junit.xml, and a record in results.json (report/runfile.py), which is rewritten as each
cell ends so an interrupted run still leaves readable results. SIGTERM (what a CI time-out
sends) ends the run the way Ctrl-C does: the session finishes and every page is written.

Under pytest-rerunfailures (`aovpn-lab run --rerun-failures N`), a cell whose earlier
attempts failed and whose last attempt passed is recorded as flaky with those attempts:
never silently green.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from . import paths
from .report import runfile
from .verdict import FAIL, INCONCLUSIVE, NOT_APPLICABLE, PASS, STATES, Verdict

ERROR = "error"  # a cell that ended without a verdict (an exception): the run's fault, not the target's

RESULTS = pytest.StashKey[dict]()
_CONFIG: dict[str, pytest.Config] = {}  # pytest_runtest_logreport gets no config argument


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("aovpn-lab", "aovpn-lab conformance")
    g.addoption("--inventory", default=str(paths.INVENTORIES / "lab"),
                help="Ansible inventory describing the target (default: the embedded lab)")
    g.addoption("--lab-prefix", default=None, help="prefix of the embedded lab (default: the inventory's)")
    g.addoption("--run-dir", default=None, help="folder for results.json (written by `aovpn-lab run`)")
    g.addoption("--client", default=None, help="host of group ikev2_clients to test from (default: the first; "
                "under --workers each worker takes its own); conditions then apply to its traffic alone")
    g.addoption("--site", default=None, help="the site this run tests (results.json `site`; report merge's column)")
    from .inventory.vault import add_options as add_vault_options
    add_vault_options(g.addoption)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs the embedded lab (root, network namespaces)")
    config.addinivalue_line("markers", "requirement(id): the requirement a test checks")
    _CONFIG["config"] = config
    run_dir = config.getoption("--run-dir")
    config.stash[RESULTS] = {
        # A worker of pytest-xdist sends its reports to the controller, which writes the file.
        "path": Path(run_dir) / runfile.RESULTS_NAME if run_dir and not is_worker(config) else None,
        "pending": {},  # nodeid -> earlier (rerun) attempts of the cell
        "data": {"tool": runfile.TOOL, "schema": runfile.SCHEMA,
                 "run_id": Path(run_dir).name if run_dir else None, "inventory": config.getoption("--inventory"),
                 **({"site": config.getoption("--site")} if config.getoption("--site") else {}),
                 "workers": int(getattr(config.option, "numprocesses", 0) or 0) or 1,
                 "selection": config.getoption("keyword") or None,
                 "reruns": int(getattr(config.option, "reruns", 0) or 0),
                 "started": _now(), "finished": None, "interrupted": None, "exit_status": None,
                 "environment": {}, "matrix": {"planned": [], "digest": None},
                 "summary": {}, "verdicts": {}, "cells": []},
    }
    if run_dir and not is_worker(config):
        _catch_sigterm(config)
    _write_results(config)
    try:  # the Environment table of the HTML report
        from pytest_metadata.plugin import metadata_key
        meta = config.stash[metadata_key]
        meta["Run"] = store_run_id(config) or "-"
        meta["Inventory"] = str(config.getoption("--inventory"))
        meta["Requirements"] = str(paths.ROOT / "requirements.yml")
        for key in ("JAVA_HOME", "Packages", "Plugins"):
            meta.pop(key, None)
    except (ImportError, KeyError):
        pass


def is_worker(config: pytest.Config) -> bool:
    """A pytest-xdist worker (the controller and a plain run are not)."""
    return hasattr(config, "workerinput")


def run_client(config: pytest.Config) -> tuple[str | None, bool]:
    """(the client host this process tests from, whether its conditions are its own).
    An xdist worker takes the client of its number; --client names one for a plain run
    (another process may be testing from another client)."""
    named = config.getoption("--client")
    if is_worker(config):
        from .target import client_names
        names = client_names(inventory_of(config))
        worker = int(str(config.workerinput["workerid"]).removeprefix("gw"))
        count = int(config.workerinput.get("workercount", 1))
        if count > len(names):
            from .errors import InventoryError
            raise InventoryError(f"{count} workers but {len(names)} host(s) in group ikev2_clients "
                                 f"({', '.join(names)}): each worker needs a client of its own",
                                 hint=f"run with --workers {len(names)} or fewer, or add clients to the inventory")
        return names[worker], True
    return named, named is not None


def store_run_id(config: pytest.Config) -> str | None:
    return config.stash[RESULTS]["data"]["run_id"]


def _catch_sigterm(config: pytest.Config) -> None:
    """SIGTERM ends the run as Ctrl-C does (pytest finishes the session: results and pages
    are written); the signal's name is kept in results.json."""
    def stop(signum: int, frame: Any) -> None:
        config.stash[RESULTS]["data"]["interrupted"] = signal.Signals(signum).name
        signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM is not caught again
        raise KeyboardInterrupt(signal.Signals(signum).name)
    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (pytest run inside another program's thread)
        pass


def pytest_collection_finish(session: pytest.Session) -> None:
    """The planned matrix (every collected cell) and the environment, before the first cell."""
    if is_worker(session.config):
        return
    _planned(session.config, [item.nodeid for item in session.items])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under xdist the controller collects nothing itself: the workers' collection is the plan
    (xdist checks that every worker collected the same)."""
    config = _CONFIG.get("config")
    if config is not None and not config.stash[RESULTS]["data"]["matrix"]["planned"]:
        _planned(config, [plain_nodeid(i) for i in ids])


def _planned(config: pytest.Config, planned: list[str]) -> None:
    store = config.stash.get(RESULTS, None)
    if store is None:
        return
    store["data"]["matrix"] = {"planned": planned, "digest": runfile.matrix_digest(planned)}
    from .report.environment import collect
    variant = None
    if TARGET in config.stash:
        variant = getattr(config.stash[TARGET], "variant", None)
    else:
        from . import variants
        inv = inventory_of(config)
        variant = variants.provisioned(inv.lab.state_dir).name if inv.lab else None
    store["data"]["environment"] = collect(config.getoption("--inventory"), variant)
    _write_results(config)


# -- fixtures ---------------------------------------------------------------------

TARGET = pytest.StashKey[object]()


def target_of(config: pytest.Config):
    """The target, loaded once per run: test modules parametrize their cells from it."""
    if TARGET not in config.stash:
        from .target import Target
        client, scoped = run_client(config)
        config.stash[TARGET] = Target.from_inventory(inventory_of(config), client, scoped=scoped)
    return config.stash[TARGET]


INVENTORY_SNAPSHOT = "aovpn_inventory"  # the controller's reading, in each xdist worker's workerinput


def inventory_of(config: pytest.Config):
    """The run's inventory (--inventory, --lab-prefix, the vault secrets given). An xdist
    worker takes the controller's reading (pytest_configure_node) rather than its own."""
    from . import inventory as inv_mod
    where, prefix, vault = config.getoption("--inventory"), config.getoption("--lab-prefix"), _vault(config)
    data = getattr(config, "workerinput", {}).pop(INVENTORY_SNAPSHOT, None)
    if data is not None:
        inv_mod.adopt(where, data, prefix=prefix, vault=vault)
    return inv_mod.load(where, prefix=prefix, vault=vault)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Hand each xdist worker the controller's reading of the inventory: read by Ansible
    once per run rather than once more in every worker (each read costs a worker about a
    second and a half of CPU at start). An inventory that cannot be read is left to the
    workers, which report it as they would without this."""
    from .errors import AovpnError
    from .inventory import snapshot
    try:
        node.workerinput[INVENTORY_SNAPSHOT] = snapshot(inventory_of(node.config))
    except AovpnError:
        pass


@pytest.fixture(scope="session")
def inventory(request: pytest.FixtureRequest):
    return inventory_of(request.config)


def _vault(config: pytest.Config):
    from .inventory.vault import Vault
    return Vault.of(config.getoption("--vault-password-file"), config.getoption("--ask-vault-pass"))


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest):
    t = target_of(request.config)
    if t.client.scope is not None:
        for gw in t.gateways:
            gw.count_drops_of(t.client)
    return t


class NoEdge:
    """A target without an edge device: the network is what it is ('open'); any other
    condition makes the cell not applicable to this target (a verdict, with the reason)."""

    def __init__(self, inventory) -> None:
        self.inventory = inventory

    def apply(self, condition) -> None:
        if condition.kind != "open":
            pytest.skip(f"{NOT_APPLICABLE}: {self.inventory.path} names no edge device (group 'edges'): "
                        f"condition '{condition}' cannot be applied to this target")

    def counters(self) -> dict:
        return {}


@pytest.fixture(scope="session")
def edge(inventory, target):
    """The condition device, one session for the whole run; left 'open' at the end. For a
    scoped client its conditions apply to that client's traffic alone."""
    from .conditions.base import edge_device
    from .conditions.model import OPEN
    from .errors import TargetError
    if not inventory.group("edges"):
        yield NoEdge(inventory)
        return
    scoped = target.client.scope is not None
    device = edge_device(inventory, client=inventory.host(target.client.name) if scoped else None)
    if scoped and device.scope is None:
        raise TargetError(f"edge {device.host.name} ({type(device).__name__}) applies conditions to everything "
                          f"through it, not to one client: cells on several clients at once would see each "
                          f"other's conditions", hint="run with --workers 1 and without --client")
    with device:
        device.apply(OPEN)
        yield device
        device.apply(OPEN)


@pytest.fixture(scope="session")
def ike_vici(target):
    """The client's charon: the lab client's own, or a private one for the run (external targets)."""
    if target.client.vici is not None:
        yield target.client.vici
        return
    from .ike.charon import PrivateCharon
    with PrivateCharon(netns=target.client.netns) as charon:
        yield charon.vici


@pytest.fixture(scope="session")
def half_open_ledger():
    """The half-open SAs this client may have left on each gateway: before an attempt
    the gateway's DoS protection could turn into silence, it is waited out (ike/halfopen.py).
    Thresholds: the lab gateways' own (profiles/charon.yml), strongSwan's defaults."""
    from .ike.halfopen import Ledger, default_path
    from .ike.profiles import charon_settings
    gw = charon_settings().get("gateway") or {}
    # Kept on disk like the probe's: a run that starts right after another inherits its SAs.
    return Ledger(default_path(), threshold=int(gw.get("block_threshold", 5)),
                  timeout=float(gw.get("half_open_timeout", 30)))


class Cell:
    """Where a conformance test leaves its verdict for the report, its place in the matrix
    summary, and files it keeps (captures) under the run folder."""

    def __init__(self, artifacts: Path) -> None:
        self.verdict: Verdict | None = None
        self.artifacts = artifacts  # created only when something is kept
        self.placement: dict[str, str] | None = None

    def place(self, *, protocol: str, profile: str, condition: str = "-", gateway: str = "-") -> None:
        """Where the cell sits in report.html's matrix: row `condition` ('-' for checks that
        set no network condition), column profile x protocol x gateway."""
        self.placement = {"protocol": protocol, "profile": profile, "condition": str(condition),
                          "gateway": gateway}

    def record(self, verdict: Verdict) -> Verdict:
        self.verdict = verdict
        return verdict

    def conclude(self, verdict: Verdict) -> Verdict:
        """Record the verdict and end the test by it: pass returns, not-applicable skips
        (with its reason), fail and inconclusive fail (an inconclusive cell is never green)."""
        self.record(verdict)
        if verdict.state == NOT_APPLICABLE:
            pytest.skip(f"{NOT_APPLICABLE}: {verdict.reason}")
        if verdict.state != PASS:
            pytest.fail(f"{verdict.state}: {verdict.reason}", pytrace=False)
        return verdict


@pytest.fixture
def cell(request: pytest.FixtureRequest, tmp_path: Path) -> Cell:
    run_dir = request.config.getoption("--run-dir")
    name = _artifact_name(request.node.name)
    return Cell(Path(run_dir) / "captures" / name if run_dir else tmp_path / "captures")


# -- reporting --------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    c = item.funcargs.get("cell") if hasattr(item, "funcargs") else None
    if report.when != "call" or not isinstance(c, Cell):
        return
    # Plain JSON values: under xdist the report travels to the controller (execnet), which
    # takes no str subclasses such as the tagged strings of Ansible's inventory values.
    if c.placement:
        report.aovpn_place = _plain(c.placement)
    if TARGET in item.config.stash:  # which client ran it (under --workers, one of several)
        report.aovpn_client = str(item.config.stash[TARGET].client.name)
    if c.verdict is None:
        return
    v = c.verdict
    report.aovpn_verdict = _plain(v.to_json())
    props = [(k, None if x is None else str(x)) for k, x in (
        ("verdict", v.state), ("requirement", v.requirement), ("expected", v.expected),
        ("observed", v.observed), ("reason", v.reason))]
    # junit.xml takes properties from the teardown report, which copies the item's list.
    item.user_properties.extend(props)
    report.user_properties.extend(props)
    try:
        from pytest_html import extras
    except ImportError:
        return
    from .report.html import evidence
    report.extras = getattr(report, "extras", []) + [extras.html(evidence(v.to_json()))]


def _plain(value: Any) -> Any:
    """`value` as plain JSON types (what execnet and results.json take)."""
    import json
    return json.loads(json.dumps(value, default=str))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Record every finished cell (call phase, or a setup that failed/skipped) as it happens;
    # its teardown then adds the timings and the capture files, and the record is written again.
    config = _CONFIG.get("config")
    if config is None:
        return
    store = config.stash[RESULTS]
    v = getattr(report, "aovpn_verdict", None)
    nodeid = plain_nodeid(report.nodeid)
    if report.outcome == "rerun":  # pytest-rerunfailures: this attempt failed, another follows
        store["pending"].setdefault(nodeid, []).append(
            {"state": cell_state("failed", v), "reason": (v or {}).get("reason") or _short(report.longreprtext, 300),
             "when": report.when, "duration_s": round(report.duration, 3)})
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        attempts = store["pending"].pop(nodeid, [])
        state = cell_state(report.outcome, v)
        place = getattr(report, "aovpn_place", None) or default_place(nodeid)
        started = time.time() - report.duration
        store["data"]["cells"].append({
            "id": nodeid.split("::")[-1], "nodeid": nodeid,
            "test": nodeid.split("::")[-1].split("[")[0], "place": place,
            **({"client": report.aovpn_client} if getattr(report, "aovpn_client", None) else {}),
            "requirements": [v["requirement"]] if v and v.get("requirement") else [],
            "outcome": report.outcome, "state": state,
            "flaky": bool(attempts) and state == PASS, "attempts": attempts,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "timings": {report.when: round(report.duration, 3)}, "duration_s": round(report.duration, 3),
            "captures": [],
            **({"verdict": v} if v else {}),
            **({"message": _short(report.longreprtext)} if report.outcome != "passed" else {}),
        })
        _write_results(config)
    elif report.when == "teardown":
        # under xdist, other workers' cells may have ended since this one's call phase
        rec = next((c for c in reversed(store["data"]["cells"]) if c["nodeid"] == nodeid), None)
        if rec is not None and "teardown" not in rec["timings"]:
            rec["timings"]["teardown"] = round(report.duration, 3)
            rec["captures"] = _captures(store["path"], rec["id"])
            _write_results(config)


def plain_nodeid(nodeid: str) -> str:
    """A cell's node id without the `@group` xdist's loadgroup appends to grouped cells: the
    same cell has the same id whether the run was parallel or not.

    >>> plain_nodeid("tests/conformance/test_load_balancing.py::test_x[per-flow]@load-balancer")
    'tests/conformance/test_load_balancing.py::test_x[per-flow]'
    >>> plain_nodeid("tests/conformance/test_tls.py::test_tls_posture[of-sstp-on-gw1]")
    'tests/conformance/test_tls.py::test_tls_posture[of-sstp-on-gw1]'
    """
    head, at, group = nodeid.rpartition("@")
    if at and group and "]" not in group and "::" not in group and "/" not in group:
        return head
    return nodeid


def default_place(nodeid: str) -> dict[str, str]:
    """A cell that did not place itself (e.g. skipped in setup): the checks grid, by test.

    >>> default_place("tests/conformance/test_tls.py::test_tls_posture[of-sstp-on-gw1]")
    {'protocol': 'tls', 'profile': 'tls posture', 'condition': '-', 'gateway': 'of-sstp-on-gw1'}
    """
    module, _, name = nodeid.rpartition("::")
    test, _, param = name.partition("[")
    protocol = Path(module).stem.removeprefix("test_")
    return {"protocol": protocol, "profile": test.removeprefix("test_").replace("_", " "), "condition": "-",
            "gateway": param.rstrip("]") or "-"}


def _captures(results_path: Path | None, cell_id: str) -> list[str]:
    """The cell's kept files, relative to the run folder (the Cell fixture's artifacts folder)."""
    if results_path is None:
        return []
    run_dir = results_path.parent
    folder = run_dir / "captures" / _artifact_name(cell_id)
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(run_dir).as_posix() for p in folder.rglob("*") if p.is_file())


def _artifact_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    store = session.config.stash.get(RESULTS, None)
    if store is None:
        return
    data = store["data"]
    cells = data["cells"]
    data["finished"] = _now()
    data["exit_status"] = int(exitstatus)
    if int(exitstatus) == int(pytest.ExitCode.INTERRUPTED) and not data["interrupted"]:
        data["interrupted"] = "SIGINT"
    data["summary"] = {k: sum(1 for c in cells if c["outcome"] == k) for k in ("passed", "failed", "skipped")}
    data["verdicts"] = verdict_counts(cells)
    _write_results(session.config)


def cell_state(outcome: str, verdict: dict | None) -> str:
    """The cell's verdict state; a skip without a verdict is not applicable (its message says
    why), a failure without one is an error of the run, and a cell that failed a check after
    a passing verdict failed."""
    if verdict:
        # a check after the verdict (e.g. that a "connected" tunnel carried traffic) failed
        return FAIL if outcome == "failed" and verdict["state"] == PASS else verdict["state"]
    return {"passed": ERROR, "skipped": NOT_APPLICABLE}.get(outcome, ERROR)


def verdict_counts(cells: list[dict]) -> dict[str, int]:
    return {k: sum(1 for c in cells if c.get("state") == k) for k in (*STATES, ERROR)}


def run_status(counts: dict[str, int]) -> tuple[int, str]:
    """`aovpn-lab run`'s exit status from the cells' verdicts, and the sentence that says why.

    >>> run_status({"pass": 80, "fail": 0, "inconclusive": 0, "not-applicable": 5, "error": 0})
    (0, 'every applicable cell passed')
    >>> run_status({"pass": 0, "fail": 0, "inconclusive": 0, "not-applicable": 9, "error": 0})[0]
    1
    """
    if counts.get(ERROR):
        return 2, f"{counts[ERROR]} cell(s) ended in an error of the run, without a verdict"
    bad = counts.get(FAIL, 0) + counts.get(INCONCLUSIVE, 0)
    if bad:
        return 1, f"{counts.get(FAIL, 0)} cell(s) failed, {counts.get(INCONCLUSIVE, 0)} inconclusive"
    if not counts.get(PASS):
        return 1, "no applicable cell ran: nothing was shown to work"
    return 0, "every applicable cell passed"


def _short(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


def _write_results(config: pytest.Config) -> None:
    store = config.stash[RESULTS]
    if store["path"] is not None:
        runfile.write(store["path"], store["data"])


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "aovpn-lab conformance report"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(2, "<th>Verdict</th>")
    cells.insert(3, "<th>Requirement</th>")
    cells.insert(4, "<th>Expected</th>")
    cells.insert(5, "<th>Observed</th>")
    cells.insert(6, "<th>Reason</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: Any, cells: list[str]) -> None:
    v = getattr(report, "aovpn_verdict", None) or {}
    state = v.get("state") or cell_state(getattr(report, "outcome", ""), None)
    from .report.html import esc
    cells.insert(2, f"<td>{esc(state)}</td>")
    cells.insert(3, f"<td>{esc(v.get('requirement', ''))}</td>")
    cells.insert(4, f"<td>{esc(v.get('expected', ''))}</td>")
    cells.insert(5, f"<td>{esc(v.get('observed', ''))}</td>")
    cells.insert(6, f"<td>{esc(v.get('reason', ''))}</td>")
