"""An audit's findings for a terminal (the table `certs inspect` prints) or as JSON."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .judge import AuditReport

SEVERITIES = ("fail", "warn", "info")


def render_text(report: AuditReport) -> str:
    lines = [f"Audit of {report.host} ({report.origin}): {len(report.checked)} output(s) read"]
    if report.findings:
        lines.append("Findings:")
        for f in sorted(report.findings, key=lambda f: SEVERITIES.index(f.severity)):
            lines.append(f"  {f.severity.upper():<4}  {f.code:<40} {f.requirement or '-':<22} {f.message}")
            if f.fix:
                lines.append(f"        fix: {f.fix}")
    n_fail, n_warn, n_unread = len(report.failures), len(report.warnings), len(report.not_read)
    lines.append(f"Result: {report.result.upper()} ({n_fail} failed, {n_warn} warning(s), {n_unread} not read)")
    return "\n".join(lines)


def to_json(report: AuditReport) -> dict[str, Any]:
    return {"host": report.host, "origin": report.origin, "result": report.result, "read": list(report.checked),
            "findings": [{**asdict(f), "message": f.message} for f in report.findings]}
