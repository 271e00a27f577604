"""The error every part of the lab SoftEther gateway reports with."""
from __future__ import annotations

from ...errors import AovpnError


class SoftEtherError(AovpnError):
    """The lab SoftEther gateway could not be prepared, started, configured or stopped."""
