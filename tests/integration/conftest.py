"""The embedded lab for integration tests: brought up once through the CLI, taken down at
the end, and checked to leave nothing behind."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

from aovpn_lab import inventory

from labcli import LAB_INVENTORY, aovpn, namespaces


@dataclass
class Lab:
    inventory: inventory.Inventory
    up_seconds: float

    @property
    def spec(self):
        return self.inventory.lab


@pytest.fixture(scope="session")
def lab() -> Lab:
    if os.geteuid() != 0:
        pytest.skip("the embedded lab needs root (network namespaces)")
    inv = inventory.load(LAB_INVENTORY)
    up = aovpn("lab", "up", "--quiet", "--json")
    assert up.returncode == 0, f"lab up failed: {up.stderr[-2000:]}"
    handle = Lab(inv, json.loads(up.stdout)["seconds"])
    yield handle
    down = aovpn("lab", "down", "--quiet", "--json")
    assert down.returncode == 0, down.stderr
    left = {n for n in namespaces() if n.startswith(inv.lab.prefix + "-")}
    assert not left, f"lab down left namespaces behind: {left}"
    assert not inv.lab.state_dir.exists(), "lab down left its state folder behind"
