"""Findings from what a scan recorded (pure: unit tests feed a :class:`TlsPosture` by hand)."""
from __future__ import annotations

from .health import HealthCheck
from .report import Finding, TlsPosture
from .suites import CIPHER_CODES, FORBIDDEN_PROTOCOLS, PROTOCOL_LABELS, is_aead

__all__ = ["assess", "health_findings"]


def _protocol_findings(posture: TlsPosture) -> list[Finding]:
    out: list[Finding] = []
    for label, code in FORBIDDEN_PROTOCOLS.items():
        if posture.protocols.get(label):
            out.append(Finding(code, "fail",
                               f"{label} is accepted; SSTP servers should accept TLS 1.2 and newer only",
                               "protocol"))
    if posture.protocols.get("TLS 1.2") is False:
        out.append(Finding("protocol-tls1.2-missing", "warn",
                           "TLS 1.2 is not accepted; clients without TLS 1.3 (e.g. Windows 10) "
                           "cannot connect", "protocol"))
    if posture.protocols.get("TLS 1.3") is False:
        out.append(Finding("protocol-tls1.3-missing", "info", "TLS 1.3 is not accepted", "protocol"))
    return out


def _cipher_findings(posture: TlsPosture) -> list[Finding]:
    """One finding per code, every suite named once with its protocols."""
    out: list[Finding] = []
    by_code: dict[str, dict[str, list[str]]] = {}
    for c in posture.ciphers:
        for code in c.weaknesses:
            by_code.setdefault(code, {}).setdefault(c.name, []).append(c.protocol)
    for code, (severity, meaning) in CIPHER_CODES.items():
        suites = by_code.get(code)
        if not suites:
            continue
        listed = "; ".join(f"{name} ({', '.join(protos)})" for name, protos in suites.items())
        out.append(Finding(code, severity, f"{meaning}: {listed}", "cipher"))
    tls12 = posture.ciphers_for("TLS 1.2")
    if tls12 and not any(is_aead(c.name) for c in tls12):
        out.append(Finding("cipher-no-aead", "warn",
                           "TLS 1.2 offers no AEAD suite (GCM, CCM or ChaCha20-Poly1305)", "cipher"))
    return out


def _trust_findings(posture: TlsPosture) -> list[Finding]:
    if posture.trusted is False:
        return [Finding("cert-untrusted", "fail",
                        f"the chain the server sends does not verify to {posture.trust_anchor}: "
                        f"{posture.trust_error}", "certificate")]
    if posture.trusted is None:
        return [Finding("cert-trust-unknown", "warn",
                        f"the chain could not be checked against {posture.trust_anchor}: "
                        f"{posture.trust_error}", "certificate")]
    if posture.strict_error:
        return [Finding("cert-strict-validation", "warn",
                        "trusted by OpenSSL, but RFC 5280 strict path validation rejects it: "
                        f"{posture.strict_error}", "certificate")]
    return []


def _certificate_findings(posture: TlsPosture) -> list[Finding]:
    if posture.chain is None:
        return [Finding("cert-none", "fail", "the server sent no certificate", "certificate")]
    out = _trust_findings(posture)
    if posture.chain_in_order is False:
        out.append(Finding("cert-chain-order", "warn",
                           "the server sends its chain out of order (each certificate should be "
                           "followed by its issuer)", "certificate"))
    if posture.deployments > 1:
        out.append(Finding("cert-deployments", "info",
                           f"the server chooses between {posture.deployments} certificates "
                           "(by the client's signature algorithms); only the first is inspected",
                           "certificate"))
    leaf = posture.chain.leaf
    if leaf is not None and leaf.key_type == "EC":
        out.append(Finding("cert-ecdsa", "info",
                           f"ECDSA key ({leaf.key}), as recommended for SSTP", "certificate"))
    for f in posture.chain.findings:
        out.append(Finding(f.code, f.severity, f.message, "certificate"))
    return out


def health_findings(health: HealthCheck | None) -> list[Finding]:
    """The finding of the health monitor's answer (none without a health check)."""
    if health is None:
        return []
    if not health.answered:
        return [Finding("health-no-answer", "fail",
                        f"{health.request}: {health.cause} ({health.error}); a load balancer "
                        "monitor marks this server down", "health")]
    if health.rras_like:
        return [Finding("health-401", "info",
                        f"{health.request} -> {health.status_line} (as RRAS answers: healthy "
                        "for a monitor expecting 401)", "health")]
    return [Finding("health-not-401", "warn",
                    f"{health.request} -> {health.status_line}; RRAS answers 401, so a monitor "
                    "built for RRAS marks this server down", "health")]


def assess(posture: TlsPosture) -> list[Finding]:
    """All findings from what the scan recorded (pure: unit tests feed it by hand)."""
    out: list[Finding] = []
    if not posture.reachable:
        out.append(Finding("scan-unreachable", "fail",
                           f"no TLS handshake with {posture.host}:{posture.port}: {posture.error}", "scan"))
        return out + health_findings(posture.health)
    unknown = [p for p in PROTOCOL_LABELS if posture.protocols.get(p) is None]
    if unknown:
        out.append(Finding("scan-incomplete", "warn",
                           f"sslyze could not test {', '.join(unknown)}", "scan"))
    out += _protocol_findings(posture) + _cipher_findings(posture) + _certificate_findings(posture)
    return out + health_findings(posture.health)
