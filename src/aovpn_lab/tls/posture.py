"""TLS posture of an SSTP listener (or any TLS VPN front end), and the RRAS health monitor.

:func:`scan_tls` asks sslyze which protocol versions and cipher suites the server
accepts, checks the certificate the server sends (trusted by ``ca_file``; EKU, names and
key via :func:`aovpn_lab.certs.inspect.inspect_chain`, role ``sstp-server``) and turns
all of it into findings with stable codes. :func:`health_check` sends what load
balancers send to an RRAS SSTP server (docs/domain.md, "Load balancing")::

    HEAD /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1

and records the status line; RRAS answers ``HTTP/1.1 401``. Both can run from inside a
network namespace (``netns=``): the work runs in a thread that joined the namespace
with setns(2) (:func:`aovpn_lab.ike.craft_netns.run_in_netns`), and sslyze's own worker
threads, started from that thread, inherit it.

    >>> posture = scan_tls("203.0.113.231", 443, server_name="vpn.example.net",
    ...                    ca_file="ca.pem", netns="hxt-c", health=True)  # doctest: +SKIP
    >>> posture.failed, sorted(posture.codes("fail"))                    # doctest: +SKIP
    (True, ['protocol-tls1.0'])
    >>> print(posture.render_text())                                     # doctest: +SKIP

Findings (``fail`` = requirement not met, ``warn`` = risky or not recommended, ``info``):

- scan: ``scan-unreachable`` (fail: no TLS handshake at all), ``scan-incomplete`` (warn:
  a sslyze command failed, its protocol is unknown)
- protocols (requirement: TLS 1.2 and newer only): ``protocol-ssl2``, ``protocol-ssl3``,
  ``protocol-tls1.0``, ``protocol-tls1.1`` (fail: accepted); ``protocol-tls1.2-missing``
  (warn: clients without TLS 1.3 cannot connect); ``protocol-tls1.3-missing`` (info)
- cipher suites (one finding per code, naming every suite and protocol):
  ``cipher-null``, ``cipher-export``, ``cipher-anon``, ``cipher-rc4``, ``cipher-3des``,
  ``cipher-des``, ``cipher-legacy`` (RC2, IDEA), ``cipher-md5``, ``cipher-weak-key``
  (< 128 bits) — all fail; ``cipher-cbc-sha1``, ``cipher-no-forward-secrecy`` (static
  RSA/DH/PSK key exchange), ``cipher-weak-dh`` (DHE < 2048 bits, ECDHE < 224 bits),
  ``cipher-no-aead`` (TLS 1.2 without any GCM/CCM/ChaCha20 suite) — warn
- certificate: ``cert-untrusted`` (fail: the chain the server sends does not verify up
  to ``ca_file``, or to the system store without one; names are not part of this check),
  ``cert-none`` (fail: no certificate), ``cert-trust-unknown`` (warn: the OpenSSL
  check could not connect), ``cert-chain-order`` (warn),
  ``cert-strict-validation`` (warn: trusted by OpenSSL but RFC 5280 strict path
  validation, as in sslyze/cryptography, rejects it for a reason other than the name),
  ``cert-ecdsa`` (info: ECDSA, recommended), ``cert-deployments`` (info: the server
  picks between several certificates); plus the codes of
  :func:`~aovpn_lab.certs.inspect.inspect_chain` as they are: ``name-mismatch`` (fail),
  ``eku-server-auth-missing`` (fail), ``expired`` (fail), ``sstp-rsa-key`` (info:
  ECDSA recommended), ``sstp-no-revocation-info`` (warn), ...
- health (with ``health=True``): ``health-401`` (info: answers like RRAS),
  ``health-not-401`` (warn: a monitor built for RRAS marks this server down),
  ``health-no-answer`` (fail)
"""
from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AovpnError
from ..findings import FindingsView

HEALTH_PATH = "/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/"
RRAS_HEALTHY_STATUS = 401
SSLYZE_REQUIREMENT = "sslyze>=6.3.1,<7"
SEVERITIES = ("fail", "warn", "info")
# Findings that say something could not be observed (a protocol sslyze could not test, a chain
# that could not be checked): a verdict resting on them is inconclusive, never a pass.
UNOBSERVED = frozenset({"scan-incomplete", "cert-trust-unknown"})

#: sslyze scan-command attribute -> protocol label, oldest first
PROTOCOLS: tuple[tuple[str, str], ...] = (
    ("ssl_2_0_cipher_suites", "SSL 2.0"),
    ("ssl_3_0_cipher_suites", "SSL 3.0"),
    ("tls_1_0_cipher_suites", "TLS 1.0"),
    ("tls_1_1_cipher_suites", "TLS 1.1"),
    ("tls_1_2_cipher_suites", "TLS 1.2"),
    ("tls_1_3_cipher_suites", "TLS 1.3"),
)
PROTOCOL_LABELS = tuple(label for _, label in PROTOCOLS)
#: accepted -> fail (the requirement is TLS 1.2 and newer only)
FORBIDDEN_PROTOCOLS = {"SSL 2.0": "protocol-ssl2", "SSL 3.0": "protocol-ssl3",
                       "TLS 1.0": "protocol-tls1.0", "TLS 1.1": "protocol-tls1.1"}

#: cipher weakness code -> (severity, what it means)
CIPHER_CODES: dict[str, tuple[str, str]] = {
    "cipher-null": ("fail", "NULL encryption (traffic in clear text)"),
    "cipher-export": ("fail", "EXPORT-grade suites (40/56-bit keys)"),
    "cipher-anon": ("fail", "anonymous key exchange (no server authentication: trivially intercepted)"),
    "cipher-rc4": ("fail", "RC4 (RFC 7465 prohibits it)"),
    "cipher-3des": ("fail", "3DES (64-bit block, Sweet32)"),
    "cipher-des": ("fail", "single DES"),
    "cipher-legacy": ("fail", "RC2/IDEA (removed from TLS 1.2)"),
    "cipher-md5": ("fail", "MD5 MAC"),
    "cipher-weak-key": ("fail", "symmetric key below 128 bits"),
    "cipher-cbc-sha1": ("warn", "CBC mode with a SHA-1 MAC (Lucky13-class padding oracles; prefer AEAD)"),
    "cipher-no-forward-secrecy": ("warn", "static RSA/DH/PSK key exchange (no forward secrecy)"),
    "cipher-weak-dh": ("warn", "ephemeral (EC)DH group too small (DH < 2048, ECDH < 224 bits)"),
}

FINDING_AREAS = ("scan", "protocol", "cipher", "certificate", "health")


class TlsScanError(AovpnError):
    """The scan could not run at all (sslyze missing, bad arguments, no namespace)."""


# ---------------------------------------------------------------------------- models


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
class HealthCheck:
    """One ``HEAD /sra_{...}/`` as a load balancer's monitor sends it."""

    host: str
    port: int
    server_name: str | None
    request: str = f"HEAD {HEALTH_PATH} HTTP/1.1"
    answered: bool = False
    status_line: str = ""
    status: int | None = None
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    tls_version: str = ""
    tls_cipher: str = ""
    verified: bool = False  # the certificate was checked against ca_file (and the name)
    cause: str = "none"  # none | tcp-443-blocked | tls-failed | cert-untrusted | not-http | timeout
    error: str = ""
    elapsed_ms: int = 0
    netns: str | None = None

    @property
    def rras_like(self) -> bool:
        return self.status == RRAS_HEALTHY_STATUS

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rras_like"] = self.rras_like
        return data

    def summary(self) -> str:
        if self.answered:
            text = f"{self.request} -> {self.status_line}"
            if self.headers.get("server"):
                text += f" (Server: {self.headers['server']})"
            return text + f" in {self.elapsed_ms} ms"
        return f"{self.request} -> no answer ({self.cause}: {self.error}) after {self.elapsed_ms} ms"


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
            marks = []
            for label in PROTOCOL_LABELS:
                state = self.protocols.get(label)
                text = "?" if state is None else ("yes" if state else "no")
                if state and label in FORBIDDEN_PROTOCOLS:
                    text = "YES"
                marks.append(f"{label} {text}")
            lines.append("  protocols     " + " | ".join(marks))
            for label in reversed(PROTOCOL_LABELS):
                suites = self.ciphers_for(label)
                if not suites:
                    continue
                lines.append(f"  {label:<13} " + ", ".join(
                    c.name + (f" [{','.join(w.removeprefix('cipher-') for w in c.weaknesses)}]"
                              if c.weaknesses else "") for c in suites))
            leaf = self.chain.leaf if self.chain is not None else None
            if leaf is not None:
                sans = " ".join(leaf.sans) or "no SAN"
                lines.append(f"  certificate   {leaf.common_name or leaf.subject}, {leaf.key}, {sans}, "
                             f"EKU {','.join(leaf.eku_labels) or '-'}, not after {leaf.not_after:%Y-%m-%d}")
                lines.append(f"                sha256 {leaf.sha256}")
                trust = ("trusted" if self.trusted else
                         f"NOT trusted ({self.trust_error})" if self.trusted is False else "trust unknown")
                lines.append(f"  chain         {self.chain.length} certificate(s) sent, {trust} by "
                             f"{self.trust_anchor or '-'}"
                             + ("" if self.chain_in_order in (True, None) else ", wrong order"))
        if self.health is not None:
            lines.append(f"  health        {self.health.summary()}")
        if self.findings:
            lines.append("Findings:")
            for f in sorted(self.findings, key=lambda f: (SEVERITIES.index(f.severity),
                                                         FINDING_AREAS.index(f.area))):
                lines.append(f"  {f.severity.upper():<4}  {f.code:<26} {f.message}")
        return "\n".join(lines)


# ------------------------------------------------------------------ pure classification


def cipher_weaknesses(name: str, *, key_size: int | None = None, anonymous: bool = False,
                      dh_type: str | None = None, dh_bits: int | None = None) -> list[str]:
    """Weakness codes of one accepted suite (IANA name as sslyze reports it).

    Warn-level codes are only given to suites without a fail-level weakness, so that a
    bad suite is listed once, where it matters.

    >>> cipher_weaknesses("TLS_RSA_WITH_3DES_EDE_CBC_SHA", key_size=168)
    ['cipher-3des']
    >>> cipher_weaknesses("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", key_size=128)
    ['cipher-cbc-sha1']
    >>> cipher_weaknesses("TLS_RSA_WITH_AES_256_GCM_SHA384", key_size=256)
    ['cipher-no-forward-secrecy']
    >>> cipher_weaknesses("TLS_AES_128_GCM_SHA256", key_size=128)
    []
    """
    n = name.upper()
    codes: list[str] = []
    null = "WITH_NULL" in n or "_NULL_" in n or n.endswith("_NULL")
    if null:
        codes.append("cipher-null")
    if "EXPORT" in n:
        codes.append("cipher-export")
    if anonymous or "_ANON_" in n:
        codes.append("cipher-anon")
    if "RC4" in n:
        codes.append("cipher-rc4")
    triple = "3DES" in n or "DES_192_EDE3" in n or "DES_CBC3" in n or "DES_EDE" in n
    if triple:
        codes.append("cipher-3des")
    elif re.search(r"(^|_)DES(40)?_|DES_64|_DES$", n):
        codes.append("cipher-des")
    if "RC2" in n or "IDEA" in n:
        codes.append("cipher-legacy")
    if n.endswith("_MD5"):
        codes.append("cipher-md5")
    if (key_size is not None and 0 < key_size < 128 and not null
            and "cipher-export" not in codes and "cipher-des" not in codes):
        codes.append("cipher-weak-key")
    if codes:
        return codes
    if "_CBC_" in n and n.endswith("_SHA"):
        codes.append("cipher-cbc-sha1")
    static = (n.startswith(("TLS_RSA_WITH_", "TLS_PSK_WITH_", "TLS_RSA_PSK_WITH_"))
              or re.match(r"TLS_(DH|ECDH)_(RSA|DSS|ECDSA)_", n) is not None)
    if static:
        codes.append("cipher-no-forward-secrecy")
    if dh_bits and ((dh_type == "DH" and dh_bits < 2048) or (dh_type == "ECDH" and dh_bits < 224)):
        codes.append("cipher-weak-dh")
    return codes


def is_aead(name: str) -> bool:
    n = name.upper()
    return any(m in n for m in ("_GCM", "CHACHA20", "_CCM"))


def assess(posture: TlsPosture) -> list[Finding]:
    """All findings from what the scan recorded (pure: unit tests feed it by hand)."""
    out: list[Finding] = []
    if not posture.reachable:
        out.append(Finding("scan-unreachable", "fail",
                           f"no TLS handshake with {posture.host}:{posture.port}: {posture.error}", "scan"))
        return out + _health_findings(posture.health)
    unknown = [p for p in PROTOCOL_LABELS if posture.protocols.get(p) is None]
    if unknown:
        out.append(Finding("scan-incomplete", "warn",
                           f"sslyze could not test {', '.join(unknown)}", "scan"))
    # -- protocols
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
    # -- cipher suites: one finding per code, every suite named once with its protocols
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
    # -- certificate
    if posture.chain is None:
        out.append(Finding("cert-none", "fail", "the server sent no certificate", "certificate"))
    else:
        if posture.trusted is False:
            out.append(Finding("cert-untrusted", "fail",
                               f"the chain the server sends does not verify to {posture.trust_anchor}: "
                               f"{posture.trust_error}", "certificate"))
        elif posture.trusted is None:
            out.append(Finding("cert-trust-unknown", "warn",
                               f"the chain could not be checked against {posture.trust_anchor}: "
                               f"{posture.trust_error}", "certificate"))
        elif posture.strict_error:
            out.append(Finding("cert-strict-validation", "warn",
                               "trusted by OpenSSL, but RFC 5280 strict path validation rejects it: "
                               f"{posture.strict_error}", "certificate"))
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
    return out + _health_findings(posture.health)


def _health_findings(health: HealthCheck | None) -> list[Finding]:
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


# --------------------------------------------------------------------------- scanning


def _require_sslyze():
    try:
        import sslyze
    except ImportError:
        raise TlsScanError("sslyze is not installed in this Python",
                           hint=f"pip install '{SSLYZE_REQUIREMENT}'") from None
    import sslyze
    return sslyze


def _check_netns(netns: str | None) -> None:
    if not netns:
        return
    import os

    from ..ike.craft_netns import netns_path
    try:
        path = netns_path(netns)
    except ValueError as exc:
        raise TlsScanError(str(exc)) from None
    if not os.path.exists(path):
        raise TlsScanError(f"network namespace {netns!r} does not exist ({path})")


def _resolve(host: str, port: int) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, IndexError) as exc:
        raise TlsScanError(f"cannot resolve {host!r}: {exc}") from None


def scan_tls(host: str, port: int = 443, *, server_name: str | None, ca_file: str | None = None,
             netns: str | None = None, health: bool = False, timeout: float = 5.0) -> TlsPosture:
    """Scan ``host:port`` (an address or a name) sending SNI ``server_name``.

    ``ca_file``: PEM file with the CA(s) clients trust (None: the system store).
    ``netns``: scan from that network namespace. ``health``: also run
    :func:`health_check` and add its finding. ``timeout``: per network operation.
    Never raises for what the server does (an unreachable server is a finding); raises
    :class:`TlsScanError` when the scan cannot run.
    """
    _require_sslyze()
    if ca_file is not None and not Path(ca_file).is_file():
        raise TlsScanError(f"CA file {ca_file} does not exist")
    _check_netns(netns)
    began = time.monotonic()
    posture = TlsPosture(host=host, port=port, server_name=server_name, ca_file=ca_file,
                         netns=netns, scanned_at=dt.datetime.now(dt.UTC))
    if netns:
        from ..ike.craft_netns import run_in_netns
        run_in_netns(netns, _scan_into, posture, timeout, netns_timeout=timeout * 12 + 30)
    else:
        _scan_into(posture, timeout)
    if health:
        posture.health = health_check(host, port, server_name=server_name, ca_file=ca_file,
                                      netns=netns, timeout=timeout)
    posture.findings = assess(posture)
    posture.elapsed_ms = int((time.monotonic() - began) * 1000)
    return posture


def _scan_into(posture: TlsPosture, timeout: float) -> None:
    """Runs in the namespace: sslyze, then an OpenSSL trust check of the chain."""
    sslyze = _require_sslyze()
    from sslyze.__version__ import __version__ as sslyze_version
    posture.tool = f"sslyze {sslyze_version}"
    ip = _resolve(posture.host, posture.port)
    sni = posture.server_name or ip
    location = sslyze.ServerNetworkLocation(hostname=sni, port=posture.port, ip_address=ip)
    config = sslyze.ServerNetworkConfiguration(tls_server_name_indication=sni,
                                               network_timeout=max(1, round(timeout)),
                                               network_max_retries=1)
    commands = {getattr(sslyze.ScanCommand, attr.upper()) for attr, _ in PROTOCOLS}
    commands.add(sslyze.ScanCommand.CERTIFICATE_INFO)
    extra = sslyze.ScanCommandsExtraArguments()
    if posture.ca_file:
        extra = sslyze.ScanCommandsExtraArguments(
            certificate_info=sslyze.CertificateInfoExtraArgument(custom_ca_file=Path(posture.ca_file)))
    request = sslyze.ServerScanRequest(server_location=location, network_configuration=config,
                                       scan_commands=commands, scan_commands_extra_arguments=extra)
    scanner = sslyze.Scanner(per_server_concurrent_connections_limit=5, concurrent_server_scans_limit=1)
    with warnings.catch_warnings():
        # sslyze's bundled trust stores hold a few certificates cryptography warns about
        warnings.simplefilter("ignore")
        scanner.queue_scans([request])
        results = list(scanner.get_results())
    result = results[0]
    if result.scan_result is None:
        posture.reachable = False
        trace = result.connectivity_error_trace
        posture.error = _connectivity_error(trace)
        return
    posture.reachable = True
    scan = result.scan_result
    for attr, label in PROTOCOLS:
        attempt = getattr(scan, attr)
        if attempt.result is None:
            posture.protocols[label] = None
            continue
        accepted = attempt.result.accepted_cipher_suites
        posture.protocols[label] = bool(accepted)
        for suite in accepted:
            posture.ciphers.append(_accepted(label, suite))
    _certificate_into(posture, scan.certificate_info, ip, timeout)


def _connectivity_error(trace) -> str:
    if trace is None:
        return "connection failed"
    text = "".join(trace.format_exception_only()).strip()
    match = re.search(r'-> "(.*)"', text)
    kind = getattr(trace, "exc_type_str", None) or getattr(getattr(trace, "exc_type", None), "__name__", "")
    reason = match.group(1) if match else text.splitlines()[-1]
    return f"{kind}: {reason}" if kind else reason


def _accepted(label: str, suite) -> AcceptedCipher:
    cs = suite.cipher_suite
    key = suite.ephemeral_key
    kx, dh_type, dh_bits = "", None, None
    if key is not None:
        dh_type, dh_bits = key.type_name, key.size
        curve = getattr(key, "curve_name", None)
        kx = f"{key.type_name} {curve + ' ' if curve else ''}{key.size}"
    return AcceptedCipher(
        protocol=label, name=cs.name, openssl_name=cs.openssl_name, key_size=cs.key_size,
        anonymous=cs.is_anonymous, key_exchange=kx,
        weaknesses=cipher_weaknesses(cs.name, key_size=cs.key_size, anonymous=cs.is_anonymous,
                                     dh_type=dh_type, dh_bits=dh_bits))


def _certificate_into(posture: TlsPosture, attempt, ip: str, timeout: float) -> None:
    from ..certs.inspect import inspect_chain
    chain: list = []
    if attempt.result is not None:
        deployments = attempt.result.certificate_deployments
        posture.deployments = len(deployments)
        if not deployments:
            return
        first = deployments[0]
        chain = list(first.received_certificate_chain)
        posture.chain_in_order = first.received_chain_has_valid_order
        wanted = "Supplied CA file" if posture.ca_file else None
        results = [r for r in first.path_validation_results
                   if wanted is None or r.trust_store.name == wanted]
        if results and not any(r.was_validation_successful for r in results):
            errors = [r.validation_error for r in results if r.validation_error]
            if errors and not _is_name_error(errors[0]):
                posture.strict_error = errors[0]
    posture.trust_anchor = posture.ca_file or "the system store"
    posture.trusted, posture.trust_error, sent = _openssl_trust(ip, posture.port, posture.server_name,
                                                               posture.ca_file, timeout)
    if not chain and sent:
        from cryptography import x509
        chain = [x509.load_der_x509_certificate(sent)]
    if chain:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            posture.chain = inspect_chain(chain, posture.server_name, role="sstp-server")


def _is_name_error(message: str) -> bool:
    m = message.lower()
    return "subjectaltname" in m or "hostname" in m or "does not match" in m or "name" in m and "san" in m


def _openssl_trust(ip: str, port: int, server_name: str | None, ca_file: str | None,
                   timeout: float) -> tuple[bool | None, str, bytes | None]:
    """Does the chain verify up to ``ca_file``? OpenSSL, names not checked (inspect does)."""
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    ctx.check_hostname = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1  # judge the chain, whatever the protocol
    ctx.set_ciphers("ALL:!aNULL:!eNULL:@SECLEVEL=0")
    try:
        with socket.create_connection((ip, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            return True, "", tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        return False, exc.verify_message or str(exc), None
    except (OSError, ssl.SSLError) as exc:
        return None, f"trust check could not connect: {exc}", None


# ---------------------------------------------------------------------------- health


def health_check(host: str, port: int = 443, *, server_name: str | None = None,
                 ca_file: str | None = None, netns: str | None = None,
                 timeout: float = 5.0, verify: bool | None = None) -> HealthCheck:
    """``HEAD /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1`` and what comes back.

    ``verify`` (default: when ``ca_file`` is given) checks the certificate against
    ``ca_file`` and ``server_name`` first, as a strict monitor would; load balancers
    usually do not. Never raises for what the server does.
    """
    _check_netns(netns)
    if verify is None:
        verify = ca_file is not None
    if netns:
        from ..ike.craft_netns import run_in_netns
        result = run_in_netns(netns, _health, host, port, server_name, ca_file, verify, timeout,
                              netns_timeout=timeout * 3 + 10)
    else:
        result = _health(host, port, server_name, ca_file, verify, timeout)
    result.netns = netns
    return result


def _health(host: str, port: int, server_name: str | None, ca_file: str | None, verify: bool,
            timeout: float) -> HealthCheck:
    result = HealthCheck(host=host, port=port, server_name=server_name, verified=verify)
    began = time.monotonic()
    deadline = began + timeout

    def done(cause: str, error: str) -> HealthCheck:
        result.cause, result.error = cause, error
        result.elapsed_ms = int((time.monotonic() - began) * 1000)
        return result

    if verify:
        ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        ctx.check_hostname = bool(server_name)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        return done("tcp-443-blocked", f"no answer to TCP SYN within {timeout:g} s")
    except OSError as exc:
        return done("tcp-443-blocked", exc.strerror or str(exc))
    try:
        raw.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            tls = ctx.wrap_socket(raw, server_hostname=server_name)
        except ssl.SSLCertVerificationError as exc:
            return done("cert-untrusted", exc.verify_message or str(exc))
        except TimeoutError:
            return done("timeout", "TLS handshake did not finish")
        except (ssl.SSLError, OSError) as exc:
            return done("tls-failed", str(exc))
        with tls:
            result.tls_version = tls.version() or ""
            result.tls_cipher = (tls.cipher() or ("",))[0]
            host_header = server_name or host
            request = (f"{result.request}\r\nHost: {host_header}\r\n"
                       "User-Agent: aovpn-lab health monitor\r\nConnection: close\r\n\r\n")
            try:
                tls.sendall(request.encode("ascii"))
                head = _read_head(tls, deadline)
            except TimeoutError:
                return done("timeout", "no HTTP answer")
            except (ssl.SSLError, OSError) as exc:
                return done("tls-failed", f"connection broke: {exc}")
    finally:
        raw.close()
    if not head:
        return done("not-http", "the server closed the connection without an answer")
    parsed = parse_status(head)
    if parsed is None:
        result.status_line = head.split(b"\r\n", 1)[0][:200].decode("latin-1")
        return done("not-http", f"not an HTTP status line: {result.status_line!r}")
    result.answered = True
    result.status_line, result.status, result.reason, result.headers = parsed
    return done("none", "")


def _read_head(tls: ssl.SSLSocket, deadline: float, limit: int = 65536) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if data:
                break
            raise TimeoutError("deadline")
        tls.settimeout(remaining)
        try:
            chunk = tls.recv(4096)
        except ssl.SSLZeroReturnError:
            break
        if not chunk:
            break
        data += chunk
    return data


_STATUS = re.compile(rb"^(HTTP/\d(?:\.\d)?) (\d{3})(?: (.*))?$")


def parse_status(head: bytes) -> tuple[str, int, str, dict[str, str]] | None:
    """(status line, code, reason, lower-cased headers) of an HTTP answer head, or None.

    >>> parse_status(b"HTTP/1.1 401 Unauthorized\\r\\nServer: Microsoft-HTTPAPI/2.0\\r\\n\\r\\n")[:3]
    ('HTTP/1.1 401 Unauthorized', 401, 'Unauthorized')
    """
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    match = _STATUS.match(lines[0].strip())
    if not match:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")[:200]
    reason = (match.group(3) or b"").decode("latin-1")
    return lines[0].strip().decode("latin-1"), int(match.group(2)), reason, headers


# ------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aovpn_lab.tls.posture",
                                description="TLS posture of an SSTP listener (sslyze) and the "
                                            "RRAS load-balancer health monitor.")
    sub = p.add_subparsers(dest="action", required=True)
    for name, help_ in (("scan", "protocols, cipher suites, certificate (+ --health)"),
                        ("health", f"only HEAD {HEALTH_PATH}")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("host")
        s.add_argument("--port", type=int, default=443)
        s.add_argument("--server-name", help="SNI and the name the certificate must carry")
        s.add_argument("--ca-file", help="PEM CA(s) clients trust (default: system store)")
        s.add_argument("--netns", help="run from this network namespace")
        s.add_argument("--timeout", type=float, default=5.0)
        s.add_argument("--json", action="store_true", help="one JSON object on stdout")
        if name == "scan":
            s.add_argument("--health", action="store_true", help=f"also HEAD {HEALTH_PATH}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit 0: no fail finding (health: answered 401); 1: fail finding; 2: could not run."""
    args = build_parser().parse_args(argv)
    try:
        if args.action == "scan":
            posture = scan_tls(args.host, args.port, server_name=args.server_name,
                               ca_file=args.ca_file, netns=args.netns, health=args.health,
                               timeout=args.timeout)
            print(json.dumps(posture.to_json(), indent=2) if args.json else posture.render_text())
            return 1 if posture.failed else 0
        result = health_check(args.host, args.port, server_name=args.server_name,
                              ca_file=args.ca_file, netns=args.netns, timeout=args.timeout)
        print(json.dumps(result.to_json(), indent=2) if args.json else result.summary())
        return 0 if result.rras_like else 1
    except AovpnError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"failed": True, "msg": str(exc)}))
        print(f"tls-posture: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
