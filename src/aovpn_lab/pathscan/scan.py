"""Which rules does the path between a client and a gateway enforce?

:func:`scan_path` sends tagged probes from the client side (see
:mod:`aovpn_lab.pathscan.probes`) while tcpdump captures on the gateway's side;
a probe *arrived* when all of its bytes show up in that capture
(:mod:`aovpn_lab.pathscan.evidence`).  Answers (IKE replies, UDP replies,
SYN-ACK/RST, ICMP errors with their sender) are recorded too, but only the
far-end capture decides arrival.  Without a far-end capture (``far_end_interface
None``) the report can only say answered / not answered: silence then means
"dropped on the way" *or* "arrived and ignored", and the findings say so.

:func:`derive_findings` turns per-check results into findings (pure; unit
tested on constructed results).
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from aovpn_lab.errors import AovpnError

from . import evidence
from .probes import (
    DEFAULT_CHECKS,
    Probe,
    SendOutcome,
    check_gateway,
    plan_probes,
    run_probes,
)

__all__ = [
    "ROLES",
    "SEVERITIES",
    "CheckResult",
    "Finding",
    "PathReport",
    "PathScanError",
    "build_bpf",
    "derive_findings",
    "scan_path",
]

SEVERITIES = ("fail", "warn", "unknown", "info")
#: why a check matters for an IKEv2 (Always On VPN) gateway
ROLES = {
    "udp500": "needed",
    "udp4500": "needed",
    "frag": "needed",                  # IKE_AUTH with certificates is IP-fragmented
    "esp": "needed-without-nat",       # behind NAT, ESP is UDP-encapsulated on 4500
    "tcp443": "needed-for-sstp",
    "udp1701": "not-needed",           # L2TP only
}


class PathScanError(AovpnError):
    """The scan could not be run (bad address, missing namespace, no raw sockets)."""


@dataclass
class CheckResult:
    name: str
    kind: str
    proto: int
    port: int | None
    size: int | None
    role: str
    sent: bool
    arrived: bool | None             # None: no far-end capture
    fragments_sent: int
    fragments_arrived: int | None
    answered: bool | None            # None: not applicable (ESP without an ICMP answer)
    answer: str | None = None
    answered_by: str | None = None
    rtt_ms: float | None = None
    ip_sizes: list[int] = field(default_factory=list)
    error: str | None = None
    tag: str | None = None

    @property
    def is_frag(self) -> bool:
        return self.kind == "frag"


@dataclass
class Finding:
    severity: str      # fail | warn | unknown | info
    code: str
    message: str
    checks: list[str] = field(default_factory=list)


@dataclass
class PathReport:
    gateway: str
    client_netns: str | None
    far_end: dict | None
    mode: str                     # capture | answers-only
    source: str | None
    mtu: int | None
    checks: list[CheckResult]
    findings: list[Finding]
    sstp: bool = False
    elapsed_s: float = 0.0
    capture_path: str | None = None
    captured_packets: int | None = None

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def codes_at(self, *severities: str) -> set[str]:
        return {f.code for f in self.findings if f.severity in severities}

    @property
    def blocked(self) -> list[str]:
        """Needed checks that did not arrive (capture mode only)."""
        return [c.name for c in self.checks
                if c.role == "needed" and c.sent and c.arrived is False]

    @property
    def fragments_ok_up_to(self) -> int | None:
        return fragments_ok_up_to(self.checks)

    @property
    def exit_code(self) -> int:
        """0 nothing needed is blocked, 1 a needed path is blocked, 3 inconclusive."""
        sev = {f.severity for f in self.findings}
        if "fail" in sev:
            return 1
        if "unknown" in sev:
            return 3
        return 0

    def to_json(self) -> dict:
        return {
            "gateway": self.gateway,
            "client_netns": self.client_netns,
            "far_end": self.far_end,
            "mode": self.mode,
            "source": self.source,
            "mtu": self.mtu,
            "sstp": self.sstp,
            "elapsed_s": self.elapsed_s,
            "capture_path": self.capture_path,
            "captured_packets": self.captured_packets,
            "blocked": self.blocked,
            "fragments_ok_up_to": self.fragments_ok_up_to,
            "exit_code": self.exit_code,
            "checks": [asdict(c) for c in self.checks],
            "findings": [asdict(f) for f in self.findings],
        }

    def render_text(self) -> str:
        where = f" from netns {self.client_netns}" if self.client_netns else ""
        head = f"path scan {self.source or '?'} -> {self.gateway}{where} (MTU {self.mtu or '?'}), "
        lines = [head + f"{self.elapsed_s:.2f}s"]
        if self.far_end:
            lines.append(f"arrival decided by a capture on {self.far_end['interface']}"
                         + (f" in netns {self.far_end['netns']}" if self.far_end.get("netns") else ""))
        else:
            lines.append("NO far-end capture: only answered/not answered is known (silence may be a "
                         "drop on the path or a gateway that ignores the probe)")
        lines.append(f"  {'check':<15} {'role':<19} {'arrived':<8} {'frags':<7} answer")
        for c in self.checks:
            arrived = "-" if c.arrived is None else ("yes" if c.arrived else "NO")
            if not c.sent:
                arrived = "not sent"
            frags = (f"{c.fragments_arrived}/{c.fragments_sent}" if c.fragments_arrived is not None
                     else f"?/{c.fragments_sent}")
            ans = c.answer or ("-" if c.answered is None else "none")
            if c.answered_by and c.answered_by != self.gateway:
                ans += f" (from {c.answered_by})"
            if c.error:
                ans += f" [error: {c.error}]"
            lines.append(f"  {c.name:<15} {c.role:<19} {arrived:<8} {frags:<7} {ans}")
        if self.findings:
            lines.append("findings:")
            for f in self.findings:
                lines.append(f"  {f.severity.upper():<7} {f.code}: {f.message}")
        verdict = {0: "OK: every needed path is open", 1: "FAIL: a needed path is blocked",
                   3: "INCONCLUSIVE: needed probes unanswered and no far-end capture"}[self.exit_code]
        lines.append(verdict)
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# findings (pure)
# ---------------------------------------------------------------------------


def fragments_ok_up_to(checks: list[CheckResult]) -> int | None:
    """Largest frag size such that it and every smaller frag size arrived."""
    best = None
    for c in sorted((c for c in checks if c.is_frag and c.sent and c.size), key=lambda c: c.size):
        if c.arrived is not True:
            break
        best = c.size
    return best


def _label(name: str) -> str:
    return {"udp500": "UDP 500", "udp4500": "UDP 4500", "tcp443": "TCP 443",
            "esp": "IP protocol 50 (ESP)", "udp1701": "UDP 1701"}.get(name, name)


def _hop_rejects(checks: list[CheckResult], gateway: str | None) -> list[Finding]:
    out = []
    for c in checks:
        if c.answer and c.answer.startswith("icmp-") and c.answered_by and gateway \
                and c.answered_by != gateway:
            out.append(Finding("info", "rejected-by-hop",
                               f"{c.name}: {c.answer} sent by {c.answered_by}, not by the gateway: "
                               "a hop on the path rejects it", [c.name]))
    return out


def derive_findings(checks: list[CheckResult], *, mode: str = "capture", sstp: bool = False,
                    gateway: str | None = None) -> list[Finding]:
    """Findings from per-check results.

    capture mode: needed checks (UDP 500, UDP 4500, fragmented UDP 4500) that
    did not arrive are ``fail``; native ESP blocked and UDP 1701 reaching the
    gateway are ``warn``; TCP 443 is ``fail`` when blocked only with
    ``sstp=True``, otherwise ``info``.  answers-only mode: unanswered needed
    checks are ``unknown`` (no capture can prove the drop).
    """
    by = {c.name: c for c in checks}
    out: list[Finding] = []
    for c in checks:
        if not c.sent:
            out.append(Finding("unknown", "not-sent", f"{c.name} could not be sent: {c.error}", [c.name]))
    sent = [c for c in checks if c.sent]
    frags = sorted((c for c in sent if c.is_frag), key=lambda c: c.size or 0)
    if mode != "capture":
        return out + _answers_only(by, frags, sstp, gateway)
    if sent and not any(c.arrived for c in sent):
        return out + [Finding(
            "fail", "nothing-arrived",
            "none of the probes reached the far-end capture: everything is filtered, or the capture "
            "is on the wrong interface/namespace, or the gateway address is not the one behind it",
            [c.name for c in sent])]
    out += _port_findings(by)
    out += _fragment_findings(by, frags)
    out += _exposure_findings(by)
    out += _tcp443_findings(by, sstp)
    return out + _hop_rejects(checks, gateway)


def _port_findings(by: dict[str, CheckResult]) -> list[Finding]:
    """UDP 500 and UDP 4500 that did not reach the gateway."""
    out: list[Finding] = []
    for name in ("udp500", "udp4500"):
        c = by.get(name)
        if c is not None and c.sent and not c.arrived:
            what = ("IKE_SA_INIT cannot start" if name == "udp500"
                    else "NAT-T (IKE_AUTH and ESP-in-UDP after NAT detection) will fail")
            out.append(Finding("fail", f"{name[:3]}-{name[3:]}-blocked",
                               f"{_label(name)} does not reach the gateway: {what}", [name]))
    return out


def _fragment_findings(by: dict[str, CheckResult], frags: list[CheckResult]) -> list[Finding]:
    """What the fragment checks (UDP 4500 datagrams of growing size) show, or that they cannot tell."""
    if not frags:
        return []
    out: list[Finding] = []
    base = by.get("udp4500")
    if not any(c.arrived for c in frags) and (base is None or not base.arrived):
        out.append(Finding("info", "fragments-untested",
                           "no UDP 4500 datagram arrives at all, so the fragment checks (UDP 4500) "
                           "cannot tell whether IP fragments pass", [c.name for c in frags]))
    else:
        ok = fragments_ok_up_to(frags)
        lost = [c for c in frags if not c.arrived]
        lost_frag = [c for c in lost if c.fragments_sent > 1]
        lost_whole = [c for c in lost if c.fragments_sent <= 1]
        detail = "; ".join(f"{c.size} B: {c.fragments_arrived or 0} of {c.fragments_sent} "
                           "fragment(s) arrived" for c in lost)
        upto = f"UDP 4500 datagrams arrive up to {ok} bytes" if ok else "no fragment check arrived"
        if lost_frag:
            out.append(Finding(
                "fail", "ip-fragments-dropped",
                f"{upto}; IP-fragmented ones are lost ({detail}). A large IKE_AUTH (certificate "
                "chain, EAP) will never arrive (Windows error 809): enable IKEv2 fragmentation "
                "(RFC 7383) on client and gateway, or fix the filter", [c.name for c in lost_frag]))
        if lost_whole:
            out.append(Finding(
                "fail", "large-datagrams-dropped",
                f"unfragmented UDP 4500 datagrams of {', '.join(str(c.size) for c in lost_whole)} "
                "bytes are lost while smaller ones arrive (size filter or MTU black hole)",
                [c.name for c in lost_whole]))
    return out


def _exposure_findings(by: dict[str, CheckResult]) -> list[Finding]:
    """Native ESP filtered, and UDP 1701 (L2TP) reaching the gateway."""
    out: list[Finding] = []
    esp = by.get("esp")
    if esp is not None and esp.sent and not esp.arrived:
        out.append(Finding("warn", "esp-blocked",
                           "native ESP (IP protocol 50) does not reach the gateway. Matters only "
                           "without NAT between client and gateway (behind NAT ESP is UDP-encapsulated "
                           "on 4500): a client with a public address gets a tunnel that passes no "
                           "traffic", ["esp"]))
    l2tp = by.get("udp1701")
    if l2tp is not None and l2tp.sent and l2tp.arrived:
        out.append(Finding("warn", "udp-1701-exposed",
                           "UDP 1701 (L2TP) reaches the gateway; IKEv2 does not need it: close it "
                           "unless the gateway also serves L2TP/IPsec", ["udp1701"]))
    return out


def _tcp443_findings(by: dict[str, CheckResult], sstp: bool) -> list[Finding]:
    """TCP 443: needed only when the gateway serves SSTP or a TLS VPN."""
    out: list[Finding] = []
    tcp = by.get("tcp443")
    if tcp is not None and tcp.sent:
        if not tcp.arrived:
            sev = "fail" if sstp else "info"
            out.append(Finding(sev, "tcp-443-blocked",
                               "TCP 443 does not reach the gateway: no SSTP (fallback) possible"
                               + ("" if sstp else "; matters only for SSTP/TLS gateways"), ["tcp443"]))
        elif not sstp:
            out.append(Finding("info", "tcp-443-open",
                               "TCP 443 reaches the gateway: needed only if it serves SSTP/TLS VPN",
                               ["tcp443"]))
    return out


def _answers_only(by: dict[str, CheckResult], frags: list[CheckResult], sstp: bool,
                  gateway: str | None) -> list[Finding]:
    out = [Finding("info", "answers-only",
                   "no far-end capture: a probe nobody answered may have been dropped on the path OR "
                   "have arrived at a gateway that ignored it; only a capture at the gateway tells")]
    needed = [by[n] for n in ("udp500", "udp4500", "tcp443" if sstp else "") if n in by] + frags
    for c in needed:
        if c.sent and not c.answered:
            out.append(Finding("unknown", f"{c.name.replace(':', '-')}-unanswered",
                               f"{c.name}: no answer within the wait (blocked, or ignored by the "
                               "gateway: cannot be told apart without a far-end capture)", [c.name]))
    l2tp = by.get("udp1701")
    if l2tp is not None and l2tp.answer == "udp-reply":
        out.append(Finding("warn", "udp-1701-exposed",
                           "something answers on UDP 1701 (L2TP), which IKEv2 does not need",
                           ["udp1701"]))
    tcp = by.get("tcp443")
    if tcp is not None and tcp.answer == "tcp-syn-ack" and not sstp:
        out.append(Finding("info", "tcp-443-open",
                           "TCP 443 accepts connections: needed only for SSTP/TLS VPN", ["tcp443"]))
    return out + _hop_rejects(list(by.values()), gateway)


# ---------------------------------------------------------------------------
# the scan
# ---------------------------------------------------------------------------


def build_bpf(probes: list[Probe]) -> str:
    """A tcpdump filter that keeps every packet a probe can produce (incl. all fragments)."""
    parts = []
    for p in probes:
        if p.kind == "esp":
            part = "ip proto 50"
        elif p.port is not None:
            part = f"{'tcp' if p.proto == 6 else 'udp'} port {p.port}"
        else:
            continue
        if part not in parts:
            parts.append(part)
    if any(p.kind == "frag" for p in probes):
        parts.append("(ip[6:2] & 0x3fff != 0)")
    return "ip and (" + " or ".join(parts or ["ip"]) + ")"


def _run_client(client_netns: str | None, probes: list[Probe], gateway: str,
                timeout: float) -> SendOutcome:
    try:
        if client_netns:
            from aovpn_lab.ike.craft_netns import run_in_netns

            return run_in_netns(client_netns, run_probes, probes, gateway, timeout=timeout,
                                netns_timeout=timeout + 60)
        return run_probes(probes, gateway, timeout=timeout)
    except PermissionError as exc:
        raise PathScanError(f"cannot open raw sockets or enter the namespace: {exc}",
                            "run as root (crafted ESP/TCP/fragments need CAP_NET_RAW)") from None
    except FileNotFoundError as exc:
        raise PathScanError(str(exc), "`ip netns list` shows the namespaces") from None
    except OSError as exc:
        raise PathScanError(f"cannot send probes to {gateway}: {exc}",
                            "is there a route to the gateway from the client side?") from None


def scan_path(client_netns: str | None, gateway: str, *, far_end_netns: str | None = None,
              far_end_interface: str | None = None, checks=DEFAULT_CHECKS, timeout: float = 1.0,
              sstp: bool = False, keep_capture: str | os.PathLike | None = None,
              narrow: Callable[[str], str] | None = None) -> PathReport:
    """Probe the path from ``client_netns`` (None: this namespace) to ``gateway``.

    With ``far_end_interface`` (in ``far_end_netns``, None: this namespace)
    tcpdump runs there for the whole scan and decides arrival; without it only
    answers are reported.  ``checks``: names from
    :data:`~aovpn_lab.pathscan.probes.DEFAULT_CHECKS` (``frag4500:N`` for any
    size N).  All probes are sent at once, then answers are awaited for at most
    ``timeout`` seconds; the whole scan takes about timeout + 0.5 s.
    ``sstp``: the gateway also serves SSTP, so TCP 443 is needed.
    ``keep_capture``: write the far-end pcap there (default: a temporary file).
    ``narrow``: turns the far-end capture filter into one for this client's packets alone
    (IkeClient.capture_filter), where other clients send to the same gateway meanwhile.
    """
    t0 = time.monotonic()
    try:
        gw = check_gateway(gateway)
    except ValueError as exc:
        raise PathScanError(f"bad gateway address {gateway!r}: {exc}",
                            "give the gateway's IPv4 address") from None
    try:
        probes = plan_probes(checks)
    except ValueError as exc:
        raise PathScanError(str(exc)) from None
    if not probes:
        raise PathScanError("no checks selected")
    mode = "capture" if far_end_interface else "answers-only"
    seen: list[evidence.Seen] | None = None
    pcap: Path | None = None
    with tempfile.TemporaryDirectory(prefix="aovpn-pathscan-") as tmp:
        if far_end_interface:
            from aovpn_lab.capture.capture import Capture

            pcap = Path(keep_capture) if keep_capture else Path(tmp) / "far-end.pcap"
            bpf = build_bpf(probes)
            with Capture(far_end_netns, far_end_interface, pcap, bpf=narrow(bpf) if narrow else bpf):
                outcome = _run_client(client_netns, probes, gw, timeout)
            seen = evidence.read_capture(pcap)
        else:
            outcome = _run_client(client_netns, probes, gw, timeout)
        arrivals = evidence.match_arrivals(probes, seen, outcome.source, gw) if seen is not None else {}
    results = []
    for p in probes:
        r = outcome.results[p.name]
        a = arrivals.get(p.name)
        answered: bool | None = r.answered
        if p.kind == "esp" and not r.answered:
            answered = None
        results.append(CheckResult(
            name=p.name, kind=p.kind, proto=p.proto, port=p.port, size=p.size,
            role=ROLES["frag" if p.kind == "frag" else p.name], sent=r.sent,
            arrived=(a.arrived if a is not None else None) if r.sent else (False if seen is not None else None),
            fragments_sent=r.packets,
            fragments_arrived=a.fragments_arrived if a is not None else None,
            answered=answered if r.sent else None, answer=r.answer, answered_by=r.answered_by,
            rtt_ms=r.rtt_ms, ip_sizes=list(r.ip_sizes), error=r.error,
            tag=(p.spi.hex() if p.spi else None) or (p.tag.decode() if p.tag else None)
            or (f"seq={p.seq}" if p.seq is not None else None)))
    findings = derive_findings(results, mode=mode, sstp=sstp, gateway=gw)
    return PathReport(
        gateway=gw, client_netns=client_netns,
        far_end={"netns": far_end_netns, "interface": far_end_interface} if far_end_interface else None,
        mode=mode, source=outcome.source, mtu=outcome.mtu, checks=results, findings=findings,
        sstp=sstp, elapsed_s=round(time.monotonic() - t0, 3),
        capture_path=str(pcap) if (pcap is not None and keep_capture) else None,
        captured_packets=len(seen) if seen is not None else None)
