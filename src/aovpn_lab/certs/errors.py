"""Exceptions raised by :mod:`aovpn_lab.certs`.

Both derive from ``ValueError`` so callers that only care about "bad input" can catch that;
their messages are one line, name the offending file and say what was expected.
"""
from __future__ import annotations


class CertificateInputError(ValueError):
    """A file given as a certificate is missing, unreadable or not a certificate."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CertificateProfileError(ValueError):
    """profiles/certificates.yml is missing, malformed, or does not name the profile."""
