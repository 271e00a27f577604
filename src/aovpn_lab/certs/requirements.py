"""The Always On VPN certificate requirements, each check adding :class:`Finding` s.

docs/domain.md, "Certificates" and "Why deployments break": validity, key size and
signature hash for every certificate; key usage, EKU, name and (SSTP) key type and
revocation information for the leaf.
"""
from __future__ import annotations

import datetime as dt
import ipaddress

from aovpn_lab.certs.certinfo import CertInfo
from aovpn_lab.certs.report import Finding

__all__ = ["EXPIRES_SOON", "certificate_findings", "leaf_findings"]

EXPIRES_SOON = dt.timedelta(days=30)


def certificate_findings(info: CertInfo, now: dt.datetime) -> list[Finding]:
    """Validity period, RSA key size and SHA-1 signature of one certificate."""
    findings: list[Finding] = []
    label = f"[{info.index}] {info.common_name or info.subject}"
    if now < info.not_before:
        findings.append(Finding("not-yet-valid", "fail",
                                f"{label} is not valid before {info.not_before:%Y-%m-%d %H:%M} UTC", info.index))
    elif now > info.not_after:
        findings.append(Finding("expired", "fail",
                                f"{label} expired {info.not_after:%Y-%m-%d %H:%M} UTC "
                                "(Windows: 0x800B0101)", info.index))
    elif info.not_after - now < EXPIRES_SOON:
        findings.append(Finding("expires-soon", "warn",
                                f"{label} expires {info.not_after:%Y-%m-%d} (within 30 days)", info.index))
    if info.key_type == "RSA" and (info.key_size or 0) < 2048:
        findings.append(Finding("rsa-key-too-small", "fail", f"{label} has an RSA-{info.key_size} key (< 2048)", info.index))
    if "sha1" in info.signature_algorithm.lower() and not info.self_signed:
        findings.append(Finding("sha1-signature", "warn", f"{label} is signed with {info.signature_algorithm}", info.index))
    return findings


def _name_matches(pattern: str, name: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    name = name.lower().rstrip(".")
    if pattern == name:
        return True
    if pattern.startswith("*.") and "." in name:
        return name.split(".", 1)[1] == pattern[2:] and pattern.count(".") >= 2
    return False


def _check_name(info: CertInfo, dial_name: str, role: str, findings: list[Finding]) -> None:
    try:
        ip = ipaddress.ip_address(dial_name)
    except ValueError:
        ip = None
    if ip is not None:
        san_match = str(ip) in info.san_ip
    else:
        san_match = any(_name_matches(d, dial_name) for d in info.san_dns)
    cn_match = info.common_name is not None and _name_matches(info.common_name, dial_name)
    has_san = bool(info.san_dns or info.san_ip)
    what = "the name clients dial" if role != "client" else "the client's identity"
    if not san_match and not cn_match:
        findings.append(Finding(
            "name-mismatch", "fail",
            f"neither SAN ({', '.join(info.sans) or 'none'}) nor subject CN ({info.common_name or 'none'}) "
            f"matches {what} {dial_name!r}",
            0,
        ))
    elif cn_match and not san_match:
        msg = (f"{dial_name!r} only matches the subject CN; "
               + ("there is no DNS/IP SAN" if not has_san else f"SAN has {', '.join(info.sans)}")
               + ": add it as SAN dNSName (modern TLS and IKE clients check the SAN)")
        findings.append(Finding("name-cn-only", "warn", msg, 0))
    elif san_match and not cn_match and role == "ikev2-server":
        findings.append(Finding(
            "name-cn-differs", "warn",
            f"SAN matches {dial_name!r} but the subject CN is {info.common_name!r}; "
            "for IKEv2 make subject and SAN both the public FQDN",
            0,
        ))


def _eku_findings(leaf: CertInfo, leaf_label: str, role: str) -> list[Finding]:
    findings: list[Finding] = []
    ekus = set(leaf.ekus)
    eku_text = ", ".join(leaf.eku_labels) or "no EKU extension"
    if role in ("ikev2-server", "sstp-server"):
        if "server_auth" not in ekus:
            findings.append(Finding(
                "eku-server-auth-missing", "fail",
                f"{leaf_label} lacks EKU Server Authentication (1.3.6.1.5.5.7.3.1); has: {eku_text}", 0))
        if role == "ikev2-server" and "ipsec_ike_intermediate" not in ekus:
            findings.append(Finding(
                "eku-ike-intermediate-missing", "warn",
                f"{leaf_label} lacks EKU IP security IKE intermediate (1.3.6.1.5.5.8.2.2), recommended "
                f"for IKEv2 gateways; has: {eku_text}", 0))
    else:
        if "client_auth" not in ekus:
            findings.append(Finding(
                "eku-client-auth-missing", "fail",
                f"{leaf_label} lacks EKU Client Authentication (1.3.6.1.5.5.7.3.2); has: {eku_text}", 0))
    return findings


def _sstp_findings(leaf: CertInfo, leaf_label: str) -> list[Finding]:
    findings: list[Finding] = []
    if leaf.key_type == "RSA":
        findings.append(Finding("sstp-rsa-key", "info",
                                f"{leaf_label} has an RSA key; ECDSA is recommended for SSTP", 0))
    if not leaf.cdp_urls and not leaf.ocsp_urls:
        findings.append(Finding(
            "sstp-no-revocation-info", "warn",
            f"{leaf_label} has no CRL distribution point or OCSP URL; SSTP clients check revocation "
            "(public CA with reachable CRLs recommended)", 0))
    return findings


def leaf_findings(leaf: CertInfo, role: str, dial_name: str | None, placed: int) -> list[Finding]:
    """What the leaf (the certificate the peer checks) must have for ``role``.

    ``placed``: how many certificates form the leaf's chain.
    """
    findings: list[Finding] = []
    leaf_label = f"[0] {leaf.common_name or leaf.subject}"
    if leaf.is_ca and placed > 1:
        findings.append(Finding("leaf-is-ca", "warn", f"{leaf_label} is a CA certificate (basicConstraints CA:TRUE)", 0))
    if leaf.key_usage is not None and "digital_signature" not in leaf.key_usage:
        findings.append(Finding(
            "key-usage-digital-signature-missing", "fail",
            f"{leaf_label} keyUsage ({', '.join(leaf.key_usage) or 'empty'}) lacks digitalSignature, "
            "needed to sign IKE AUTH / TLS handshakes", 0))
    findings += _eku_findings(leaf, leaf_label, role)
    if dial_name:
        _check_name(leaf, dial_name, role, findings)
    if role == "sstp-server":
        findings += _sstp_findings(leaf, leaf_label)
    return findings
