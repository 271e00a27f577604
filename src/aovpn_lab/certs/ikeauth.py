"""The IKE_AUTH a chain makes: its predicted size and the IP fragments at the path MTU.

Only what an IKEv2 peer sends counts: the leaf and the intermediates; a self-signed
root is left out (the other side holds it as its trust anchor).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from aovpn_lab.certs.certinfo import CertInfo
from aovpn_lab.certs.report import Finding
from aovpn_lab.certs.sizemodel import (
    FRAGMENTATION_ADVICE,
    IkeAuthEstimate,
    ike_auth_breakdown,
    ip_fragments_needed,
)

__all__ = ["IkeAuthSize", "ike_auth_size"]


@dataclass
class IkeAuthSize:
    """DER sizes sent, the estimate and its fragments (None for SSTP), and the findings."""

    sent: list[int]
    estimate: IkeAuthEstimate | None = None
    fragments: int | None = None
    needs_fragmentation: bool = False
    findings: list[Finding] = field(default_factory=list)


def _size_drivers(chain: list[CertInfo]) -> list[str]:
    """Why the message is big: RSA keys above 2048 bits, intermediates sent."""
    why = []
    big = [i for i in chain if i.key_type == "RSA" and (i.key_size or 0) > 2048 and not i.self_signed]
    if big:
        why.append(f"RSA keys > 2048 bits ({', '.join(f'[{i.index}] {i.key}' for i in big)})")
    n_int = sum(1 for i in chain[1:] if not i.self_signed)
    if n_int >= 1:
        why.append(f"{n_int} intermediate certificate(s) sent")
    return why


def ike_auth_size(chain: list[CertInfo], role: str, dial_name: str | None, mtu: int,
                  udp_port: int) -> IkeAuthSize:
    """The IKE_AUTH the leaf's ``chain`` (leaf first) makes for ``role``."""
    leaf = chain[0]
    sent = [info.der_size for info in chain if not info.self_signed] or [leaf.der_size]
    result = IkeAuthSize(sent)
    if role == "sstp-server":
        return result
    try:
        id_len = len(dial_name) if dial_name else len((leaf.san_dns or (leaf.common_name or "x" * 18,))[0])
        result.estimate = ike_auth_breakdown(
            sent, "pubkey", leaf.key,
            role="responder" if role == "ikev2-server" else "initiator",
            id_len=id_len,
        )
        result.fragments = ip_fragments_needed(result.estimate.size, mtu, udp_port)
    except ValueError as exc:
        result.findings.append(Finding("ike-size-unknown", "info", f"IKE_AUTH size not predicted: {exc}", 0))
    fragments = result.fragments
    if fragments is not None and fragments > 1:
        result.needs_fragmentation = True
        why = _size_drivers(chain)
        result.findings.append(Finding(
            "ike-fragmentation-needed", "warn",
            f"IKE_AUTH ~{result.estimate.size} B ({len(sent)} certificate(s), {sum(sent)} B DER) needs "  # type: ignore[union-attr]
            f"{fragments} IP fragments at MTU {mtu}: {FRAGMENTATION_ADVICE}"
            + (f"; size driven by {' and '.join(why)}" if why else ""),
            0,
        ))
    return result
