"""The one exception the SSTP client core raises for bad input from the wire.

Conformance checks catch it to turn "the server sent something malformed" into a verdict
reason, so every message names what was wrong and where::

    >>> from aovpn_lab.sstp.errors import SstpProtocolError
    >>> try:
    ...     raise SstpProtocolError("SSTP header: version 0x20, expected 0x10")
    ... except ValueError as exc:
    ...     print(exc)
    SSTP header: version 0x20, expected 0x10
"""
from __future__ import annotations


class SstpProtocolError(ValueError):
    """Malformed or out-of-specification SSTP/PPP input (or unusable parameters)."""
