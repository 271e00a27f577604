"""results.json: the one record of a run, and its one reader.

Every page (report.html, the history, compare, certification) is built from this file
alone, so `aovpn-lab report rebuild` can regenerate them after a crash. The plugin
writes it after every cell (atomically: a reader never sees half a file).

    {"tool": "aovpn-lab", "schema": 2,
     "run_id": "20261202T101500Z-1a2b3c", "started": ISO-8601, "finished": ISO-8601 | null,
     "interrupted": null | "SIGINT" | "SIGTERM",     # why the run ended early, if it did
     "exit_status": int | null, "inventory": path, "selection": "-k expression" | null,
     "reruns": int,                                  # --rerun-failures N
     "environment": {...},                           # report/environment.py
     "matrix": {"planned": [nodeid...], "digest": sha256 of the sorted planned ids},
     "verdicts": {"pass": n, "fail": n, "inconclusive": n, "not-applicable": n, "error": n},
     "cells": [{
        "id": test id, "nodeid": pytest node id, "test": test function name,
        "place": {"protocol", "profile", "condition", "gateway"},   # where it sits in the matrix
        "requirements": [ID...], "outcome": pytest outcome, "state": verdict state or "error",
        "verdict": {requirement, expected, observed, state, reason, fix, evidence, holds},
        "message": pytest's text when not passed, "flaky": bool,
        "attempts": [{"state", "reason", "duration_s"}...],          # failed attempts before the last
        "started": ISO-8601, "timings": {"setup": s, "call": s, "teardown": s}, "duration_s": s,
        "captures": [paths relative to the run folder]}]}

    >>> r = RunResults.from_data({"tool": "aovpn-lab", "schema": 2, "run_id": "r1", "cells": [
    ...     {"id": "a", "nodeid": "t.py::test[a]", "state": "pass"}]}, "results.json")
    >>> r.run_id, [c.id for c in r.cells], r.cells[0].state
    ('r1', ['a'], 'pass')
    >>> RunResults.from_data({"cells": []}, "x/results.json")
    Traceback (most recent call last):
    ...
    aovpn_lab.report.runfile.ResultsFormatError: x/results.json: not an aovpn-lab results file (no "tool": "aovpn-lab")
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AovpnError

TOOL = "aovpn-lab"
SCHEMA = 2
RESULTS_NAME = "results.json"


class ResultsFormatError(AovpnError):
    """A results file this version cannot read: names the file and what differs."""


NOT_TESTED = "not-tested"  # a requirement no cell of the run cites


def requirement_status(states) -> str:
    """A requirement's status from the states of the cells that cite it: the worst wins
    (fail, then inconclusive, then error, then pass, then not-applicable); no cell: not-tested.
    Every page (report, compare, certification) judges a requirement by this one rule.

    >>> requirement_status(["pass", "inconclusive", "fail"]), requirement_status(["error", "pass"])
    ('fail', 'error')
    >>> requirement_status(["not-applicable", "pass"]), requirement_status(["not-applicable"]), requirement_status([])
    ('pass', 'not-applicable', 'not-tested')
    """
    states = set(states)
    for worst in ("fail", "inconclusive", "error", "pass", "not-applicable"):
        if worst in states:
            return worst
    return NOT_TESTED


def matrix_digest(nodeids: list[str]) -> str:
    """The identity of a matrix: two runs of the same matrix plan the same cells."""
    return hashlib.sha256("\n".join(sorted(nodeids)).encode()).hexdigest()


@dataclass(frozen=True)
class CellRecord:
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def nodeid(self) -> str:
        return self.data.get("nodeid") or self.data["id"]

    @property
    def state(self) -> str:
        return self.data.get("state", "error")

    @property
    def verdict(self) -> dict[str, Any]:
        return self.data.get("verdict") or {}

    @property
    def place(self) -> dict[str, str]:
        return self.data.get("place") or {}

    @property
    def requirements(self) -> list[str]:
        reqs = self.data.get("requirements")
        if reqs:
            return list(reqs)
        return [self.verdict["requirement"]] if self.verdict.get("requirement") else []

    @property
    def reason(self) -> str:
        return self.verdict.get("reason") or self.data.get("message") or ""

    @property
    def duration_s(self) -> float:
        return float(self.data.get("duration_s") or 0.0)

    @property
    def flaky(self) -> bool:
        return bool(self.data.get("flaky"))

    @property
    def captures(self) -> list[str]:
        return list(self.data.get("captures") or [])

    @property
    def anchor(self) -> str:
        """The HTML id of this cell's evidence in report.html (stable across runs)."""
        return "cell-" + hashlib.sha1(self.nodeid.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunResults:
    path: Path
    data: dict[str, Any]
    cells: tuple[CellRecord, ...] = field(default=())

    @property
    def run_id(self) -> str:
        return self.data.get("run_id") or self.path.parent.name

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def started(self) -> str:
        return self.data.get("started") or ""

    @property
    def environment(self) -> dict[str, Any]:
        return self.data.get("environment") or {}

    @property
    def variant(self) -> str:
        return str(self.environment.get("variant") or "-")

    @property
    def planned(self) -> list[str]:
        return list((self.data.get("matrix") or {}).get("planned") or [c.nodeid for c in self.cells])

    @property
    def matrix_digest(self) -> str:
        return (self.data.get("matrix") or {}).get("digest") or matrix_digest(self.planned)

    @property
    def complete(self) -> bool:
        """Every planned cell ended and the run was not interrupted."""
        done = {c.nodeid for c in self.cells}
        return not self.data.get("interrupted") and all(n in done for n in self.planned)

    def counts(self) -> dict[str, int]:
        from ..verdict import STATES
        return {k: sum(1 for c in self.cells if c.state == k) for k in (*STATES, "error")}

    def by_nodeid(self) -> dict[str, CellRecord]:
        return {c.nodeid: c for c in self.cells}

    @classmethod
    def from_data(cls, data: Any, path: str | Path) -> "RunResults":
        path = Path(path)
        if not isinstance(data, dict) or data.get("tool") != TOOL:
            raise ResultsFormatError(f"{path}: not an {TOOL} results file (no \"tool\": \"{TOOL}\")")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise ResultsFormatError(
                f"{path}: results schema {schema!r}, this {TOOL} reads schema {SCHEMA}",
                hint=f"rebuild it with the {TOOL} version that wrote it, or run the suite again")
        cells = data.get("cells")
        if not isinstance(cells, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str)
                                                  for c in cells):
            raise ResultsFormatError(f"{path}: \"cells\" must be a list of records with an \"id\"")
        return cls(path, data, tuple(CellRecord(c) for c in cells))


def load(where: str | Path) -> RunResults:
    """A run's results from its results.json or its run folder; one clear error otherwise."""
    path = Path(where)
    if path.is_dir():
        path = path / RESULTS_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ResultsFormatError(f"{path}: no such file", hint="give a run folder (reports/<run-id>) or its "
                                                               "results.json") from None
    except OSError as exc:
        raise ResultsFormatError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ResultsFormatError(f"{path}: not UTF-8 text: not a results file") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResultsFormatError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})",
                                 hint="the run that wrote it was killed mid-write, or it is another file") from None
    return RunResults.from_data(data, path)


def write(path: Path, data: dict[str, Any]) -> None:
    """Atomically: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)
