"""Recommended balancer configuration for products that cannot run here (F5 BIG-IP, Citrix
NetScaler ADC, Kemp LoadMaster), rendered from an inventory's `load_balancer` and read back
to be checked against the AOVPN-LB requirements (docs/load-balancing.md, "Vendor
configuration")."""
from __future__ import annotations

from types import ModuleType


def vendors() -> dict[str, ModuleType]:
    """Each vendor's module: render(spec, host_vars) -> Artefact, read(Artefact) -> Facts, FILES."""
    from . import f5, kemp, netscaler
    return {"f5": f5, "netscaler": netscaler, "kemp": kemp}
