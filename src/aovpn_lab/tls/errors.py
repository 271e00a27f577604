"""Why a TLS scan or health check cannot run at all (as opposed to what the server does)."""
from __future__ import annotations

import os

from ..errors import AovpnError

__all__ = ["TlsScanError", "check_netns"]


class TlsScanError(AovpnError):
    """The scan could not run at all (sslyze missing, bad arguments, no namespace)."""


def check_netns(netns: str | None) -> None:
    """Nothing when ``netns`` is None or exists; :class:`TlsScanError` otherwise."""
    if not netns:
        return
    from ..ike.craft_netns import netns_path
    try:
        path = netns_path(netns)
    except ValueError as exc:
        raise TlsScanError(str(exc)) from None
    if not os.path.exists(path):
        raise TlsScanError(f"network namespace {netns!r} does not exist ({path})")
