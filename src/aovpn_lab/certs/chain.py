"""The order of a chain: leaf first, each certificate followed by its issuer.

Certificates arrive in any order and with duplicates (chain.pem plus fullchain.pem);
the leaf is the one that issues no other, the chain follows issuer names (and key
identifiers), and a link holds only when the issuer's key verifies the signature.
"""
from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from aovpn_lab.certs.certinfo import CertInfo, extension, issued_by, self_signed
from aovpn_lab.certs.report import Finding

__all__ = ["name_issued", "unique", "sort_leaf_first", "linkage_findings"]


def name_issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Names (and key identifiers, when both are present) say ``issuer`` issued ``cert``."""
    if cert.issuer != issuer.subject:
        return False
    aki = extension(cert, x509.AuthorityKeyIdentifier)
    ski = extension(issuer, x509.SubjectKeyIdentifier)
    if aki is not None and ski is not None and aki.key_identifier is not None:
        return aki.key_identifier == ski.digest
    return True



def unique(certs: list[x509.Certificate], sources: list[str | None]
           ) -> tuple[list[x509.Certificate], list[str | None]]:
    """``certs`` without exact duplicates (a leaf given twice), with their sources."""
    seen: dict[bytes, int] = {}
    uniq: list[x509.Certificate] = []
    uniq_src: list[str | None] = []
    for c, s in zip(certs, sources):
        der = c.public_bytes(serialization.Encoding.DER)
        if der in seen:
            continue
        seen[der] = len(uniq)
        uniq.append(c)
        uniq_src.append(s)
    return uniq, uniq_src


def sort_leaf_first(certs: list[x509.Certificate]) -> tuple[list[int], list[int]]:
    """Indices of the leaf's chain in order (leaf first), and of certificates not in it."""
    n = len(certs)
    if n == 0:
        return [], []
    issues_other = [
        any(j != i and name_issued(certs[j], certs[i]) and not self_signed(certs[j]) for j in range(n))
        for i in range(n)
    ]
    candidates = [i for i in range(n) if not issues_other[i] and not self_signed(certs[i])]
    if not candidates:
        candidates = [i for i in range(n) if not issues_other[i]] or [0]

    def is_ca(i: int) -> bool:
        bc = extension(certs[i], x509.BasicConstraints)
        return bool(bc and bc.ca)

    leaf = next((i for i in candidates if not is_ca(i)), candidates[0])
    order = [leaf]
    while True:
        cur = certs[order[-1]]
        if self_signed(cur):
            break
        options = [j for j in range(n) if j not in order and name_issued(cur, certs[j])]
        if not options:
            options = [j for j in range(n) if j not in order and cur.issuer == certs[j].subject]
        if not options:
            break
        verified = [j for j in options if issued_by(cur, certs[j])]
        order.append((verified or options)[0])
    rest = [i for i in range(n) if i not in order]
    return order, rest


def linkage_findings(chain: list[x509.Certificate], infos: list[CertInfo], placed: int) -> list[Finding]:
    """Broken links, certificates outside the leaf's chain, and where the chain ends.

    ``chain`` and ``infos`` are in report order; the first ``placed`` are the leaf's chain.
    """
    findings: list[Finding] = []
    for k in range(placed - 1):
        child, parent = chain[k], chain[k + 1]
        if not issued_by(child, parent):
            findings.append(Finding(
                "chain-broken", "fail",
                f"[{k}] {infos[k].common_name or infos[k].subject} names {infos[k + 1].common_name or infos[k + 1].subject} "
                "as issuer but its signature does not verify with that certificate's key",
                k,
            ))
    for k in range(placed, len(infos)):
        info = infos[k]
        findings.append(Finding(
            "chain-broken", "fail",
            f"[{k}] {info.common_name or info.subject} is not part of the leaf's chain "
            f"(the chain above [{placed - 1}] needs issuer {infos[placed - 1].issuer}"
            + ("" if not infos[placed - 1].self_signed else ", but it ends at a root") + ")",
            k,
        ))
    top = infos[placed - 1]
    if top.self_signed and placed > 1:
        findings.append(Finding("root-included", "info",
                                f"[{placed - 1}] root {top.common_name!r} is included; IKEv2 peers do not send it", placed - 1))
    elif not top.self_signed:
        findings.append(Finding(
            "root-not-included", "info",
            f"[{placed - 1}] {top.common_name or top.subject} is not self-signed; the peer must already hold "
            f"its issuer {top.issuer_common_name or top.issuer} (trust anchor or intermediate store)",
            placed - 1,
        ))
    return findings
