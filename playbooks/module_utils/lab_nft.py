"""An nftables ruleset file a lab module keeps loaded: written when its text changed and
loaded with `nft -f` when it changed (or when the table it defines is missing, as after
the namespace was made again). nft is judged by its exit status."""
from __future__ import annotations

from ansible.module_utils.lab_files import put


def keep_loaded(module, path: str, content: str, table: str | None = None, *, force: bool = False) -> bool:
    """`table` ("ip NAME"): loaded only if `nft list table` fails for it; True when loaded."""
    written = put(module, path, content)
    missing = False
    if table and not (written or force):
        rc, _, _ = module.run_command(["nft", "list", "table", *table.split()])
        missing = rc != 0
    if not (written or force or missing):
        return False
    rc, out, err = module.run_command(["nft", "-f", path])
    if rc != 0:
        module.fail_json(msg=f"nft -f {path} failed (exit {rc}): {err.strip() or out.strip()}")
    return True
