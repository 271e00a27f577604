"""Diagnose IKEv2 connection failures from two packet captures (client and server).

Modules:

- :mod:`aovpn_lab.capture.diagnose` - ``diagnose(client_pcap, server_pcap) -> Diagnosis``,
  built from :mod:`~aovpn_lab.capture.side` (one capture decoded),
  :mod:`~aovpn_lab.capture.exchanges` (messages matched across both captures),
  :mod:`~aovpn_lab.capture.rules` (the rules that name a cause: :class:`CaptureFinding`)
  and :mod:`~aovpn_lab.capture.diagnosis` (the result, its advice, text and JSON).
- :mod:`aovpn_lab.capture.capture` - :class:`Capture` (tcpdump in a namespace for a
  ``with`` block) and :func:`capture_both`.
- :mod:`aovpn_lab.capture.command` - ``aovpn-lab diagnose`` (argparse registration).
- :mod:`aovpn_lab.capture.pcapfile`, :mod:`~aovpn_lab.capture.packets`,
  :mod:`~aovpn_lab.capture.ikewire` - strict pcap/pcapng reading (scapy's readers), IP
  reassembly, IKE/ESP recognition (IKE decoded by :mod:`aovpn_lab.ike.wire`).
- :mod:`aovpn_lab.capture.trim` - a small copy of a capture (encrypted bytes cut).

The diagnosis is imported from its module (``from aovpn_lab.capture.diagnose import
diagnose``: a package attribute of that name would be the submodule once it is imported);
the other names here are imported when first used, so that importing the package (every
``aovpn-lab`` command builds its parser from it) does not import scapy.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_BPF",
    "Capture",
    "CaptureFinding",
    "CaptureInputError",
    "CaptureMismatchError",
    "CaptureToolError",
    "capture_both",
    "trim_capture",
]

_WHERE = {
    "Capture": "capture", "capture_both": "capture", "DEFAULT_BPF": "capture",
    "CaptureInputError": "errors", "CaptureMismatchError": "errors", "CaptureToolError": "errors",
    "trim_capture": "trim", "CaptureFinding": "rules",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
