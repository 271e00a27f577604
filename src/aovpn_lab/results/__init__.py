"""What a probe returns: :class:`ProbeResult` (one shape for every protocol) and the
cause catalogue (:mod:`aovpn_lab.results.causes`, data in profiles/causes.yml)."""
from .causes import Cause
from .probe_result import Phase, ProbeResult

__all__ = ["Cause", "Phase", "ProbeResult"]
