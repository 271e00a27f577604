"""Exceptions of :mod:`aovpn_lab.capture`.

Both are :class:`aovpn_lab.errors.AovpnError` (one line, exit code 2 in the CLI); the
message always names the file or the namespace/interface concerned.
"""
from __future__ import annotations

from aovpn_lab.errors import AovpnError


class CaptureInputError(AovpnError, ValueError):
    """A capture file is missing, unreadable, not pcap/pcapng, truncated, or holds no IKE."""

    def __init__(self, path: object, problem: str, hint: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}", hint)


class CaptureMismatchError(AovpnError, ValueError):
    """Two captures that cannot be about the same connection (no IKE SA in common)."""


class CaptureToolError(AovpnError):
    """tcpdump could not be started or stopped in the requested namespace/interface."""
