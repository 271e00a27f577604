"""A pytest plugin for the run-modes tests: the first attempt of each cell whose node id
contains $AOVPN_FLAKY_ONCE fails before the cell runs; later attempts run the real cell.
It makes a real lab cell flaky on purpose, to see pytest-rerunfailures and the report mark it."""
from __future__ import annotations

import os

import pytest

_failed: set[str] = set()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    needle = os.environ.get("AOVPN_FLAKY_ONCE")
    if needle and needle in item.nodeid and item.nodeid not in _failed:
        _failed.add(item.nodeid)
        raise AssertionError(f"injected first-attempt failure of {item.nodeid} (tests/integration/flaky_once.py)")
