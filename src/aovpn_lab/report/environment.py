"""The environment block of results.json: what produced the verdicts, so that a run can be
reproduced and two runs compared knowing what differed besides the target.

Package versions are the tester host's (dpkg's own record); for the embedded lab that is
also what the lab's daemons run, for an external target it is only the client side.

    >>> env = collect("inventories/lab", variant="default")
    >>> sorted(env)[:4]
    ['aovpn_lab', 'commit', 'host', 'inventory']
    >>> len(env["inventory_sha256"])
    64
"""
from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

from .. import __version__, paths

# Package name -> what the report calls it. The lab runs these; a target may run others.
PACKAGES = {
    "strongswan-charon": "strongSwan",
    "softether-vpnserver": "SoftEther",
    "ocserv": "ocserv",
    "freeradius": "FreeRADIUS",
    "nftables": "nftables",
    "haproxy": "HAProxy",
    "nginx-light": "nginx",
}


def package_versions(names: dict[str, str] = PACKAGES) -> dict[str, str]:
    """Installed versions by dpkg's database; 'not installed' where dpkg-query says so (exit 1)."""
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\\t${db:Status-Status}\\t${Version}\\n",
                               *names], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {label: "unknown (no dpkg-query)" for label in names.values()}
    found = {}
    for line in proc.stdout.splitlines():
        pkg, status, version = (line.split("\t") + ["", ""])[:3]
        if status == "installed":
            found[pkg] = version
    return {label: found.get(pkg, "not installed") for pkg, label in names.items()}


def project_commit(root: Path = paths.ROOT) -> str:
    """The checkout's commit, with '+changes' when the tree differs from it; 'unknown' outside git."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no git)"
    return head.stdout.strip() + ("+changes" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def inventory_digest(path: str | Path) -> str:
    """SHA-256 over the inventory's files (relative name and bytes, in name order): the same
    inventory gives the same digest on any machine. Vaulted values are hashed encrypted."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        rel = f.relative_to(path).as_posix() if path.is_dir() else f.name
        h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def collect(inventory: str | Path, variant: str | None = None) -> dict[str, Any]:
    return {
        "aovpn_lab": __version__,
        "commit": project_commit(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "host": platform.node(),
        "packages": package_versions(),
        "inventory": str(inventory),
        "inventory_sha256": inventory_digest(inventory) if Path(inventory).exists() else "missing",
        "variant": variant or "-",
    }
