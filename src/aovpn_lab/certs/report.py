"""A checked chain (:class:`ChainReport`) and its findings, as a terminal table or JSON."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from aovpn_lab.certs.certinfo import CertInfo
from aovpn_lab.certs.sizemodel import FRAGMENTATION_ADVICE, IkeAuthEstimate
from aovpn_lab.findings import FindingsView

__all__ = ["SEVERITIES", "Finding", "ChainReport", "render_text", "to_json"]

SEVERITIES = ("fail", "warn", "info")


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # "fail" | "warn" | "info"
    message: str
    cert: int | None = None  # index in ChainReport.certs


@dataclass(frozen=True)
class ChainReport(FindingsView):
    role: str
    dial_name: str | None
    mtu: int
    certs: list[CertInfo]
    findings: list[Finding]
    #: DER sizes of what an IKEv2 peer sends: leaf + intermediates (self-signed roots dropped)
    sent_der_sizes: list[int] = field(default_factory=list)
    ike_auth: IkeAuthEstimate | None = None
    ip_fragments: int | None = None
    needs_ike_fragmentation: bool = False
    checked_at: dt.datetime | None = None

    @property
    def length(self) -> int:
        return len(self.certs)

    @property
    def total_der_bytes(self) -> int:
        return sum(c.der_size for c in self.certs)

    @property
    def leaf(self) -> CertInfo | None:
        return self.certs[0] if self.certs else None


# ------------------------------------------------------------------------------- output


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


_EKU_SHORT = {
    "server_auth": "serverAuth",
    "client_auth": "clientAuth",
    "ipsec_ike_intermediate": "ikeIntermediate",
    "ipsec_ike": "ipsecIKE",
}


def render_text(report: ChainReport) -> str:
    """A compact, fixed-width table plus findings, for a terminal."""
    lines = []
    head = f"Chain for {report.role}"
    if report.dial_name:
        head += f" {report.dial_name}"
    lines.append(f"{head}: {report.length} certificate(s), {report.total_der_bytes} B DER, leaf first")
    cols = f"{'#':>2}  {'subject CN':<26} {'issuer CN':<26} {'key':<10} {'DER':>5}  {'not after':<10} {'EKU':<26} {'SAN':<28} CDP AIA POL"
    lines.append(cols)
    for c in report.certs:
        eku = ",".join(_EKU_SHORT.get(e, e) for e in c.ekus) or ("-" if not c.is_ca else "(CA)")
        role_mark = "root" if c.self_signed else ""
        lines.append(
            f"{c.index:>2}  {_cut(c.common_name or c.subject, 26):<26} "
            f"{_cut(role_mark or c.issuer_common_name or c.issuer, 26):<26} {c.key:<10} {c.der_size:>5}  "
            f"{c.not_after:%Y-%m-%d} {_cut(eku, 26):<26} {_cut(' '.join(c.sans) or '-', 28):<28} "
            f"{'yes' if c.has_cdp else 'no':<3} {'yes' if c.has_aia else 'no':<3} {'yes' if c.has_policies else 'no'}"
        )
    if report.ike_auth is not None:
        e = report.ike_auth
        frag = (f"{report.ip_fragments} IP fragment(s)" if (report.ip_fragments or 0) > 1 else "1 IP packet (no fragmentation)")
        lines.append(
            f"IKE_AUTH ({e.role}, {e.key}): ~{e.size} B predicted with {len(report.sent_der_sizes)} certificate(s) "
            f"sent ({sum(report.sent_der_sizes)} B DER) -> {frag} at MTU {report.mtu}"
        )
        if report.needs_ike_fragmentation:
            lines.append(f"  {FRAGMENTATION_ADVICE}")
    if report.leaf is not None:
        lines.append(f"Leaf SHA-256: {report.leaf.sha256}")
    if report.findings:
        lines.append("Findings:")
        for f in sorted(report.findings, key=lambda f: SEVERITIES.index(f.severity)):
            lines.append(f"  {f.severity.upper():<4}  {f.code:<34} {f.message}")
    n_fail, n_warn = len(report.failures), len(report.warnings)
    verdict = "FAIL" if n_fail else "PASS"
    lines.append(f"Result: {verdict} ({n_fail} failed, {n_warn} warning(s))")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def to_json(report: ChainReport) -> dict[str, Any]:
    """A JSON-ready dict of the whole report (no key material: certificates are public)."""
    certs = []
    for c in report.certs:
        d = _jsonable(asdict(c))
        d["sans"] = c.sans
        d["eku_labels"] = c.eku_labels
        certs.append(d)
    return {
        "role": report.role,
        "dial_name": report.dial_name,
        "mtu": report.mtu,
        "result": "fail" if report.failed else "pass",
        "length": report.length,
        "total_der_bytes": report.total_der_bytes,
        "sent_der_sizes": list(report.sent_der_sizes),
        "ike_auth": report.ike_auth.to_json() if report.ike_auth else None,
        "ip_fragments": report.ip_fragments,
        "needs_ike_fragmentation": report.needs_ike_fragmentation,
        "fragmentation_advice": FRAGMENTATION_ADVICE if report.needs_ike_fragmentation else None,
        "certificates": certs,
        "findings": [asdict(f) for f in report.findings],
        "checked_at": report.checked_at.isoformat() if report.checked_at else None,
    }
