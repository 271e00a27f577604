"""Running the aovpn-lab CLI from integration tests, as a user would."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aovpn_lab import paths

CLI = str(Path(sys.executable).with_name("aovpn-lab"))
LAB_INVENTORY = paths.INVENTORIES / "lab"


def aovpn(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}
