"""Views shared by every report that carries findings with a code and a severity
(fail / warn / info): certificate chains, TLS postures."""
from __future__ import annotations


class FindingsView:
    """Mixed into a report class with a `findings` list."""

    findings: list

    @property
    def failures(self) -> list:
        return [f for f in self.findings if f.severity == "fail"]

    @property
    def warnings(self) -> list:
        return [f for f in self.findings if f.severity == "warn"]

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def codes(self, severity: str | None = None) -> set[str]:
        return {f.code for f in self.findings if severity is None or f.severity == severity}
