"""Which rules does the path between a VPN client and its gateway enforce?

    report = scan_path("client-ns", "203.0.113.10",
                       far_end_netns="gw-ns", far_end_interface="eth0")   # doctest: +SKIP
    print(report.render_text()); report.to_json()                        # doctest: +SKIP

Modules: :mod:`~aovpn_lab.pathscan.probes` (tagged probes: IKE on UDP 500/4500, TCP SYN
443, native ESP, L2TP on 1701, self-fragmented UDP 4500 datagrams; sent and answered, from
:mod:`~aovpn_lab.pathscan.plan`, :mod:`~aovpn_lab.pathscan.packets`,
:mod:`~aovpn_lab.pathscan.answers` and :mod:`~aovpn_lab.pathscan.outcome`),
:mod:`~aovpn_lab.pathscan.evidence` (arrival from the far-end capture),
:mod:`~aovpn_lab.pathscan.scan` (:func:`scan_path`, :class:`PathReport`, findings),
:mod:`~aovpn_lab.pathscan.command` (``aovpn-lab scan``).
"""
from __future__ import annotations

from typing import Any

__all__ = [
           "DEFAULT_CHECKS",
           "DEFAULT_FRAGMENT_SIZES",
           "CheckResult",
           "Finding",
           "PathReport",
           "PathScanError",
           "derive_findings",
           "scan_path",
]

_WHERE = {"DEFAULT_CHECKS": "plan", "DEFAULT_FRAGMENT_SIZES": "plan", "CheckResult": "scan", "Finding": "scan",
          "PathReport": "scan", "PathScanError": "scan", "derive_findings": "scan", "scan_path": "scan"}


def __getattr__(name: str) -> Any:
    """The names above, imported when first used: the command line imports this package to
    build its parser, and the probes import scapy."""
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
