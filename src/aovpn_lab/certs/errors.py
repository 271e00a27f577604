"""Exceptions raised by :mod:`aovpn_lab.certs`.

Both are :class:`aovpn_lab.errors.AovpnError` (the CLI prints them as one line and exits 2)
and ``ValueError`` (callers that only care about "bad input" can catch that). Messages are
one line, name the offending file and say what was expected.
"""
from __future__ import annotations

from aovpn_lab.errors import AovpnError


class CertificateInputError(AovpnError, ValueError):
    """A file given as a certificate is missing, unreadable or not a certificate."""

    def __init__(self, path: object, problem: str, hint: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}", hint)


class CertificateProfileError(AovpnError, ValueError):
    """profiles/certificates.yml is missing, malformed, or does not name the profile."""
