"""Each rendered vendor configuration, judged against the AOVPN-LB requirements.

`check(facts, spec)` takes what an artefact does (read back from it, see facts.py) and
returns findings, at least one per requirement, each naming its requirement id. A value
that breaks a requirement is a `fail` finding; what the product cannot do as the lab does
(no balancer here sends IKE_SA_INIT as a monitor) is a `warn`.

    >>> from aovpn_lab.balancer.vendors.facts import Facts
    >>> [f.requirement for f in check(Facts("f5", "203.0.113.10"), None) if f.severity == "fail"][:2]
    ['AOVPN-LB-AFFINITY-001', 'AOVPN-LB-AFFINITY-001']
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from ... import requirements
from .facts import Facts, Service
from ..spec import SSTP_PATH, BalancerSpec

AFFINITY = "AOVPN-LB-AFFINITY-001"
NOSNAT = "AOVPN-LB-NOSNAT-001"
HEALTH = "AOVPN-LB-HEALTH-001"
REKEY = "AOVPN-LB-REKEY-001"
SSTP = "AOVPN-LB-SSTP-001"
REQUIREMENTS = (AFFINITY, NOSNAT, HEALTH, REKEY, SSTP)
IKE_PORTS = (500, 4500)
TIMEOUTS = Path(__file__).with_name("timeouts.yml")


@dataclass(frozen=True)
class Finding:
    requirement: str
    severity: str   # "pass" | "warn" | "fail"
    message: str
    vendor: str

    def line(self) -> str:
        return f"{self.severity.upper():<4}  {self.requirement:<22} {self.vendor:<9} {self.message}"


@functools.cache
def timeouts() -> dict:
    return yaml.safe_load(TIMEOUTS.read_text())


def check(facts: Facts, spec: BalancerSpec | None) -> list[Finding]:
    for rid in REQUIREMENTS:
        requirements.get(rid)  # a requirement id missing from the catalogue is a bug here, not a finding
    out: list[Finding] = []
    for judge in (_affinity, _nosnat, _health, _rekey, _sstp):
        out += judge(facts, spec)
    return out


def _f(rid: str, facts: Facts, severity: str, message: str) -> Finding:
    return Finding(rid, severity, message, facts.vendor)


def _ike(facts: Facts) -> dict[int, Service | None]:
    return {p: facts.service("udp", p) for p in IKE_PORTS}


def _affinity(facts: Facts, spec: BalancerSpec | None) -> list[Finding]:
    out = []
    ike = _ike(facts)
    for port, svc in ike.items():
        if svc is None:
            out.append(_f(AFFINITY, facts, "fail", f"no UDP {port} service on the VIP {facts.vip}: IKEv2 needs 500 and 4500"))
    present = {p: s for p, s in ike.items() if s is not None}
    if len(present) < 2:
        return out
    s500, s4500 = present[500], present[4500]
    for svc in (s500, s4500):
        if svc.per_packet:
            out.append(_f(AFFINITY, facts, "fail", f"{svc.where}: datagrams balanced one by one: "
                                                    "IKE_SA_INIT and IKE_AUTH reach different gateways"))
        if svc.persistence is None or svc.persistence.kind != "source":
            kind = svc.persistence.kind if svc.persistence else "none"
            out.append(_f(AFFINITY, facts, "fail", f"{svc.where}: persistence {kind}, not source address"))
    shared = [s.persistence and set(IKE_PORTS) <= s.persistence.shared for s in (s500, s4500)]
    if not all(shared):
        where = ", ".join(s.persistence.where if s.persistence else s.where for s in (s500, s4500))
        out.append(_f(AFFINITY, facts, "fail", f"{where}: UDP 500 and 4500 keep separate persistence records "
                                                "(no match across services / persistency group / port following): "
                                                "a client's IKE_AUTH may go to a gateway that never saw its IKE_SA_INIT"))
    if set(s500.members) != set(s4500.members):
        out.append(_f(AFFINITY, facts, "fail", f"UDP 500 goes to {sorted(s500.members)}, UDP 4500 to "
                                                f"{sorted(s4500.members)}: one record cannot pin a client to a gateway both have"))
    if spec is not None:
        missing = {b.address for b in spec.backends} - set(s500.members)
        if missing:
            out.append(_f(AFFINITY, facts, "fail", f"backends {sorted(missing)} of the inventory are not members"))
    if len(set(s500.members)) < 2:
        out.append(_f(AFFINITY, facts, "warn", f"only {len(set(s500.members))} backend: nothing to spread clients over"))
    if not any(f.severity == "fail" for f in out):
        out.append(_f(AFFINITY, facts, "pass", f"UDP 500 and 4500 share one source-address record "
                                                f"({s4500.persistence.where}) over {len(set(s500.members))} backends"))
    return out


def _nosnat(facts: Facts, spec: BalancerSpec | None) -> list[Finding]:
    out = []
    for svc in facts.services.values():
        if svc.source_nat != "none":
            out.append(_f(NOSNAT, facts, "fail", f"{svc.where}: source addresses translated ({svc.source_nat}): "
                                                  "RRAS sees one address and refuses SAs beyond about 10 (error 809)"))
    if not facts.services:
        out.append(_f(NOSNAT, facts, "fail", "no virtual service found in the artefact"))
    if not out:
        out.append(_f(NOSNAT, facts, "pass", f"client addresses kept on all {len(facts.services)} services"))
    return out


def _health(facts: Facts, spec: BalancerSpec | None) -> list[Finding]:
    out = []
    for port, svc in _ike(facts).items():
        if svc is None:
            continue
        kinds = {m.kind for m in svc.monitors}
        if "ike" in kinds:
            out.append(_f(HEALTH, facts, "pass", f"{svc.where}: IKE-aware monitor"))
        elif kinds & {"udp-port", "icmp"}:
            what = {"udp-port": "a plain UDP monitor (down only on ICMP port unreachable)",
                    "icmp": "an ICMP ping (the host, not IKE)"}
            desc = " and ".join(what[k] for k in sorted(kinds & set(what)))
            out.append(_f(HEALTH, facts, "warn", f"{svc.where}: {desc}: a hung IKE service stays in the pool; "
                                                  "no IKE_SA_INIT monitor is built in (an external monitor script can send one)"))
        else:
            out.append(_f(HEALTH, facts, "fail", f"{svc.where}: no health monitor: a dead gateway keeps getting clients"))
    if not out:
        out.append(_f(HEALTH, facts, "fail", "no IKE service to monitor"))
    return out


def _rekey(facts: Facts, spec: BalancerSpec | None) -> list[Finding]:
    need = timeouts()["outlast"]
    default = timeouts()["vendor_defaults"][facts.vendor]
    out = []
    for port, svc in _ike(facts).items():
        if svc is None:
            continue
        if svc.persistence is not None and svc.persistence.kind != "hash":  # a hash keeps no record to expire
            t = svc.persistence.timeout
            value, src = (t, "") if t is not None else (default["persistence_timeout"], " (product default)")
            if value < need["persistence_timeout"]["seconds"]:
                out.append(_f(REKEY, facts, "fail", f"{svc.persistence.where}: persistence {value} s{src} < "
                                                     f"{need['persistence_timeout']['seconds']} s ({need['persistence_timeout']['why']})"))
        t = svc.idle_timeout
        value, src = (t, "") if t is not None else (default["udp_idle_timeout"], " (product default)")
        if value < need["udp_idle_timeout"]["seconds"]:
            out.append(_f(REKEY, facts, "fail", f"{svc.where}: UDP idle timeout {value} s{src} < "
                                                 f"{need['udp_idle_timeout']['seconds']} s ({need['udp_idle_timeout']['why']})"))
    if not any(s for s in _ike(facts).values()):
        out.append(_f(REKEY, facts, "fail", "no IKE service whose timeouts could be judged"))
    elif not out:
        out.append(_f(REKEY, facts, "pass", f"persistence >= {need['persistence_timeout']['seconds']} s and UDP idle >= "
                                             f"{need['udp_idle_timeout']['seconds']} s on UDP 500 and 4500"))
    return out


def _sstp(facts: Facts, spec: BalancerSpec | None) -> list[Finding]:
    port = spec.sstp.port if spec else 443
    svc = facts.service("tcp", port)
    if svc is None:
        return [_f(SSTP, facts, "fail", f"no TCP {port} service for SSTP on the VIP")]
    out = []
    if svc.persistence is None or svc.persistence.kind not in ("source", "tls-session"):
        out.append(_f(SSTP, facts, "fail", f"{svc.where}: no source-address or TLS-session persistence"))
    http = [m for m in svc.monitors if m.kind == "http"]
    good = [m for m in http if (m.method or "").upper() == "HEAD" and m.path == SSTP_PATH
            and m.expect is not None and "401" in m.expect and m.secure]
    if not good:
        seen = "; ".join(f"{m.where}: {m.method} {m.path} expecting {m.expect!r}{'' if m.secure else ' without TLS'}"
                         for m in http) or "no HTTP monitor"
        out.append(_f(SSTP, facts, "fail", f"{svc.where}: no HTTPS monitor sending HEAD {SSTP_PATH} and expecting "
                                            f"401 as RRAS answers ({seen})"))
    if not out:
        out.append(_f(SSTP, facts, "pass", f"{svc.where}: {svc.persistence.kind} persistence, {good[0].where} "
                                            f"HEAD {SSTP_PATH} expecting 401 over TLS"))
    return out
