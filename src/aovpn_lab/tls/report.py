"""What a TLS scan recorded (:class:`TlsPosture`) and its findings, as text or JSON."""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ..findings import FindingsView
from .health import HealthCheck
from .suites import FORBIDDEN_PROTOCOLS, PROTOCOL_LABELS

__all__ = ["SEVERITIES", "UNOBSERVED", "FINDING_AREAS", "Finding", "AcceptedCipher", "TlsPosture"]

SEVERITIES = ("fail", "warn", "info")
# Findings that say something could not be observed (a protocol sslyze could not test, a chain
# that could not be checked): a verdict resting on them is inconclusive, never a pass.
UNOBSERVED = frozenset({"scan-incomplete", "cert-trust-unknown"})
FINDING_AREAS = ("scan", "protocol", "cipher", "certificate", "health")


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # "fail" | "warn" | "info"
    message: str
    area: str = "scan"


@dataclass
class AcceptedCipher:
    protocol: str  # "TLS 1.2"
    name: str  # IANA/RFC name: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    openssl_name: str = ""
    key_size: int | None = None
    anonymous: bool = False
    key_exchange: str = ""  # what the server chose: "ECDH X25519 253", "DH 2048"
    weaknesses: list[str] = field(default_factory=list)


@dataclass
class TlsPosture(FindingsView):
    host: str
    port: int
    server_name: str | None
    ca_file: str | None = None
    netns: str | None = None
    reachable: bool = False
    error: str = ""
    #: protocol label -> accepted (True/False), None when sslyze could not tell
    protocols: dict[str, bool | None] = field(default_factory=dict)
    ciphers: list[AcceptedCipher] = field(default_factory=list)
    trusted: bool | None = None
    trust_anchor: str = ""  # the CA file, or "system store"
    trust_error: str = ""
    strict_error: str = ""
    chain_in_order: bool | None = None
    deployments: int = 0
    chain: Any = None  # aovpn_lab.certs.inspect.ChainReport of the certificates the server sent
    health: HealthCheck | None = None
    findings: list[Finding] = field(default_factory=list)
    elapsed_ms: int = 0
    scanned_at: dt.datetime | None = None
    tool: str = ""

    # -- views

    @property
    def accepted_protocols(self) -> list[str]:
        return [p for p in PROTOCOL_LABELS if self.protocols.get(p)]

    def ciphers_for(self, protocol: str) -> list[AcceptedCipher]:
        return [c for c in self.ciphers if c.protocol == protocol]

    # -- output

    def to_json(self) -> dict[str, Any]:
        from ..certs import inspect as cert_inspect
        return {
            "host": self.host, "port": self.port, "server_name": self.server_name,
            "ca_file": self.ca_file, "netns": self.netns, "tool": self.tool,
            "result": "fail" if self.failed else "pass",
            "reachable": self.reachable, "error": self.error,
            "protocols": dict(self.protocols), "accepted_protocols": self.accepted_protocols,
            "ciphers": [asdict(c) for c in self.ciphers],
            "certificate": {
                "trusted": self.trusted, "trust_anchor": self.trust_anchor,
                "trust_error": self.trust_error, "strict_error": self.strict_error,
                "chain_in_order": self.chain_in_order, "deployments": self.deployments,
                "chain": cert_inspect.to_json(self.chain) if self.chain is not None else None,
            },
            "health": self.health.to_json() if self.health else None,
            "findings": [asdict(f) for f in self.findings],
            "counts": {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES},
            "elapsed_ms": self.elapsed_ms,
            "scanned_at": self.scanned_at.isoformat() if self.scanned_at else None,
        }

    def render_text(self) -> str:
        where = f"{self.host}:{self.port}" + (f" (SNI {self.server_name})" if self.server_name else "")
        if self.netns:
            where += f" from netns {self.netns}"
        n_fail, n_warn = len(self.failures), len(self.warnings)
        lines = [(f"TLS posture of {where}: {'FAIL' if n_fail else 'PASS'} "
                  f"({n_fail} failed, {n_warn} warning(s)) in {self.elapsed_ms} ms")]
        if not self.reachable:
            lines.append(f"  unreachable   {self.error}")
        else:
            lines += self._protocol_lines() + self._certificate_lines()
        if self.health is not None:
            lines.append(f"  health        {self.health.summary()}")
        if self.findings:
            lines.append("Findings:")
            for f in sorted(self.findings, key=lambda f: (SEVERITIES.index(f.severity),
                                                         FINDING_AREAS.index(f.area))):
                lines.append(f"  {f.severity.upper():<4}  {f.code:<26} {f.message}")
        return "\n".join(lines)

    def _protocol_lines(self) -> list[str]:
        marks = []
        for label in PROTOCOL_LABELS:
            state = self.protocols.get(label)
            text = "?" if state is None else ("yes" if state else "no")
            if state and label in FORBIDDEN_PROTOCOLS:
                text = "YES"
            marks.append(f"{label} {text}")
        lines = ["  protocols     " + " | ".join(marks)]
        for label in reversed(PROTOCOL_LABELS):
            suites = self.ciphers_for(label)
            if not suites:
                continue
            lines.append(f"  {label:<13} " + ", ".join(
                c.name + (f" [{','.join(w.removeprefix('cipher-') for w in c.weaknesses)}]"
                          if c.weaknesses else "") for c in suites))
        return lines

    def _certificate_lines(self) -> list[str]:
        leaf = self.chain.leaf if self.chain is not None else None
        if leaf is None:
            return []
        sans = " ".join(leaf.sans) or "no SAN"
        trust = ("trusted" if self.trusted else
                 f"NOT trusted ({self.trust_error})" if self.trusted is False else "trust unknown")
        return [
            f"  certificate   {leaf.common_name or leaf.subject}, {leaf.key}, {sans}, "
            f"EKU {','.join(leaf.eku_labels) or '-'}, not after {leaf.not_after:%Y-%m-%d}",
            f"                sha256 {leaf.sha256}",
            f"  chain         {self.chain.length} certificate(s) sent, {trust} by "
            f"{self.trust_anchor or '-'}"
            + ("" if self.chain_in_order in (True, None) else ", wrong order"),
        ]
