"""Where the project's data lives.

The package is installed from the repository (editable), and the repository's top-level
folders (profiles/, inventories/, playbooks/, requirements.yml) are data the code reads.
AOVPN_LAB_HOME points elsewhere when the data is kept outside the checkout.
"""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    env = os.environ.get("AOVPN_LAB_HOME")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


ROOT = project_root()
PROFILES = ROOT / "profiles"
INVENTORIES = ROOT / "inventories"
PLAYBOOKS = ROOT / "playbooks"
REPORTS = ROOT / "reports"
