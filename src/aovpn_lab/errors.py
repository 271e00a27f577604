"""Errors a user can act on: each carries what went wrong and what to do about it.

The CLI prints them as one line (`aovpn-lab: error: ... (fix: ...)`) and exits non-zero;
anything else that escapes is a bug and keeps its traceback.
"""
from __future__ import annotations


class AovpnError(Exception):
    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message


class InventoryError(AovpnError):
    """The inventory is malformed: names the file, the key and what was expected."""


class PreflightError(AovpnError):
    """This machine cannot run the lab: not root, a package or kernel feature missing."""


class LabError(AovpnError):
    """Bringing the lab up or down failed at a named host and step."""


class TargetError(AovpnError):
    """A host of the target is unreachable or misbehaves."""
