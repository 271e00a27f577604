"""What a diagnosis found, and its text and JSON renderings; the advice for each cause."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ikewire
from .exchanges import AUTH, I2R, SA_INIT, SaView
from .ikewire import exchange_name, notify_name
from .rules import N_COOKIE
from .side import CaptureSide

__all__ = ["ADVICE", "Diagnosis", "rfc7383_note", "rfc7383_support"]

N_FRAG_SUPPORTED = 16430


ADVICE = {
    "ip-fragments-dropped": [
        ("Enable IKEv2 fragmentation (RFC 7383) on both ends: RRAS "
         r"HKLM\SYSTEM\CurrentControlSet\Services\RemoteAccess\Parameters\Ikev2\EnableServerFragmentation = 1 "
         "(DWORD) then restart RemoteAccess; Windows clients 1803+ support it (ProfileXML "
         "DisableIKEv2Fragmentation false); strongSwan fragmentation=yes."),
        "Or let IP fragments through every firewall/NAT between client and server (UDP 500 and 4500).",
        ("Or make IKE_AUTH smaller: ECDSA instead of RSA-4096 certificates, a shorter chain (send fewer "
         "intermediates), fewer certificate extensions."),
    ],
    "ike-fragments-dropped": [
        ("Make the RFC 7383 fragment size smaller than the path MTU (strongSwan fragment_size, e.g. 1280 or "
         "less); fragments carry DF and are dropped when too big."),
        ("Check the path for filters dropping large UDP 4500 datagrams, and that ICMP 'fragmentation needed' "
         "reaches the sender."),
    ],
    "udp-500-blocked": ["Allow UDP 500 between client and server in both directions (IKE_SA_INIT)."],
    "udp-4500-blocked": [
        ("Allow UDP 4500 between client and server in both directions (NAT-T: IKE_AUTH and ESP-in-UDP). "
         "With a load balancer, UDP 500 and 4500 of one client must reach the same server."),
    ],
    "no-proposal-chosen": [
        ("Align the IKE proposals: the client's (VPNv2 CryptographySuite / Set-VpnConnectionIPsecConfiguration) "
         "and the server's (Set-VpnServerConfiguration -CustomPolicy), e.g. AES128/SHA256/DH group 14 or "
         "GCMAES128/ECP256."),
    ],
    "auth-failed": [
        ("Check the certificates: the server must trust the issuer of the client's certificate (and vice "
         "versa), EKUs, names (the server's subject/SAN = the name the client dials), validity and "
         "revocation; the responder's and client's logs name the reason."),
    ],
    "auth-failed:responder-refused": [
        ("The server refused the client: it must trust the CA that issued the client's certificate (root and "
         "intermediates), the certificate needs EKU Client Authentication, must be valid and not revoked "
         "(RRAS: CRL checks per CertAuthFlags), and the identity must match the server's policy; for EAP, "
         "check NPS/RADIUS (event log: RasClient 20227, NPS 6273)."),
    ],
    "auth-failed:initiator-abandoned": [
        ("The client refused the server: the client must trust the server certificate's root, the "
         "certificate needs EKU Server Authentication (and IP security IKE intermediate), its subject/SAN "
         "must equal the name the client dials, and it must be valid (Windows: error 13801 / 13806 / "
         "0x800B0101)."),
    ],
    "no-response": [
        ("The responder got the request and stayed silent (or the initiator stopped): check that the IKE "
         "service is running and listening, its logs, and its limits (half-open SAs, per-source SA limits "
         "behind SNAT)."),
    ],
}


@dataclass
class Diagnosis:
    """What :func:`diagnose` found; :meth:`to_json` and :meth:`summary` present it."""

    established: bool
    cause: str
    direction: str | None
    uses_ip_fragmentation: bool
    uses_ike_fragmentation: bool
    reason: str
    advice: list[str]
    alternatives: list[str]
    client: CaptureSide
    server: CaptureSide
    sa: SaView
    nat: bool | None
    notes: list[str] = field(default_factory=list)
    other_sas: list[dict[str, Any]] = field(default_factory=list)
    esp: dict[str, dict[str, int]] = field(default_factory=dict)
    port: int | None = None
    rfc7383: dict[str, bool | None] = field(default_factory=dict)
    auth_failure: str | None = None   # responder-refused | initiator-abandoned

    def sizes(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for exch in (SA_INIT, AUTH):
            for resp in (False, True):
                ms = [m for m in self.sa.messages if m.exchange == exch and m.response == resp and m.size]
                first = min(ms, key=lambda m: m.msg_id, default=None)
                out[f"{exchange_name(exch)}_{'response' if resp else 'request'}"] = first.size if first else None
        return out

    def largest_ip_packet(self) -> dict[str, Any]:
        best: dict[str, Any] = {"size": 0}
        for m in self.sa.messages:
            for role in ("client", "server"):
                for r in getattr(m, role).records:
                    if r.dgram.largest > best["size"]:
                        best = {"size": r.dgram.largest, "capture": role, "exchange": exchange_name(m.exchange),
                                "message_id": m.msg_id, "direction": m.direction,
                                "ip_fragments": r.dgram.packets if r.dgram.fragmented else 0}
        return best

    def _endpoints(self, role: str) -> dict[str, str] | None:
        recs = self.sa.client if role == "client" else self.sa.server
        for r in recs:
            if r.from_initiator and not r.is_response:
                d = r.dgram
                return {"initiator": f"{d.src}:{d.sport}", "responder": f"{d.dst}:{d.dport}"}
        for r in recs:
            d = r.dgram
            return {"initiator": f"{d.dst}:{d.dport}", "responder": f"{d.src}:{d.sport}"}
        return None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: the verdict at the top, the evidence below it."""
        return {
            "established": self.established,
            "cause": self.cause,
            "direction": self.direction,
            "uses_ip_fragmentation": self.uses_ip_fragmentation,
            "uses_ike_fragmentation": self.uses_ike_fragmentation,
            "reason": self.reason,
            "auth_failure": self.auth_failure,
            "alternatives": self.alternatives,
            "advice": self.advice,
            "evidence": {
                "ike_sa": {"initiator_spi": self.sa.spi_i.hex(), "responder_spi": self.sa.spi_r.hex(),
                           "responder_spis": self.sa.responder_spis,
                           "in_client_capture": bool(self.sa.client), "in_server_capture": bool(self.sa.server)},
                "endpoints": {"client_capture": self._endpoints("client"),
                              "server_capture": self._endpoints("server")},
                "nat_between_captures": self.nat,
                "port": self.port,
                "rfc7383_supported": self.rfc7383,
                "exchanges": [m.to_json() for m in self.sa.messages if m.client.records or m.server.records],
                "sizes": self.sizes(),
                "largest_ip_packet": self.largest_ip_packet(),
                "esp": self.esp,
                "captures": {"client": self.client.to_json(), "server": self.server.to_json()},
                "other_sas": self.other_sas,
                "notes": self.notes,
            },
        }

    def summary(self) -> str:
        """A few lines for an engineer: what happened, where it was lost, what to change."""
        spi = f"{self.sa.spi_i.hex()}/{self.sa.spi_r.hex()}"
        if self.established:
            head = f"IKEv2 SA {spi}: ESTABLISHED"
            if self.uses_ip_fragmentation:
                head += " - but only because IP fragments got through (at risk)"
        else:
            where = f", lost {self.direction}" if self.direction else ""
            head = f"IKEv2 SA {spi}: NOT established - cause {self.cause}{where}"
        lines = [head]
        c, s = self._endpoints("client"), self._endpoints("server")
        if c:
            lines.append(f"  client capture {self.client.path}: {c['initiator']} -> {c['responder']}")
        if s:
            lines.append(f"  server capture {self.server.path}: {s['initiator']} -> {s['responder']}"
                         + ("  (NAT between the captures)" if self.nat else ""))
        elif not self.sa.server:
            lines.append(f"  server capture {self.server.path}: this IKE SA never appears in it")
        for m in self.sa.messages:
            if not (m.client.records or m.server.records):
                continue
            sent, seen = m.sent.metrics(), m.seen.metrics()
            arrow = "I->R" if m.direction == I2R else "R->I"
            kind = "response" if m.response else "request"
            if sent["transmissions"]:
                how = f"{sent['ike_size']} B"
                if sent["ike_fragments"]:
                    how += f" as {sent['ike_fragments']} IKE fragments"
                if sent["ip_fragments"]:
                    how += f", {sent['ip_fragments']} IP fragments"
                how += f", sent {sent['transmissions']}x"
                if sent["retransmits"]:
                    how += f" ({sent['retransmits']} retransmits)"
            else:
                how = "not in the sender's capture"
            got = (f"arrived {seen['messages']}x" if seen["messages"] else
                   f"NOT arrived ({seen['packets']} of {sent['packets']} packets seen)")
            shown = [notify_name(n) for n in m.notifies if n in _SHOWN_NOTIFIES or n <= ikewire.ERROR_NOTIFY_MAX]
            extra = f" [{', '.join(shown)}]" if shown else ""
            lines.append(f"  {arrow} {exchange_name(m.exchange):<13} {kind:<8} #{m.msg_id} UDP {m.port}: "
                         f"{how}; {got}{extra}")
        lp = self.largest_ip_packet()
        if lp.get("size"):
            lines.append(f"  largest IP packet: {lp['size']} B ({lp['exchange']}, {lp['direction']})")
        lines.append(f"What happened: {self.reason}.")
        if self.alternatives:
            lines.append(f"Cannot rule out: {', '.join(self.alternatives)} (no small packet was sent to the same port "
                         "to compare; `aovpn-lab probe ikev2` runs a differential test).")
        for n in self.notes:
            lines.append(f"Note: {n}.")
        if self.advice:
            lines.append("What to change:")
            lines.extend(f"  - {a}" for a in self.advice)
        return "\n".join(lines)


_SHOWN_NOTIFIES = (N_COOKIE, N_FRAG_SUPPORTED)


def rfc7383_support(sa: SaView) -> dict[str, bool | None]:
    """Who advertised IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT (None: not seen)."""
    out: dict[str, bool | None] = {"initiator": None, "responder": None}
    for ex in sa.exchanges:
        if ex.exchange != SA_INIT:
            continue
        if ex.request.any_copy:
            out["initiator"] = N_FRAG_SUPPORTED in ex.request.notifies
        if ex.response.any_copy and not any(n <= ikewire.ERROR_NOTIFY_MAX for n in ex.response.notifies):
            out["responder"] = N_FRAG_SUPPORTED in ex.response.notifies
    return out


def rfc7383_note(sup: dict[str, bool | None]) -> str | None:
    i, r = sup.get("initiator"), sup.get("responder")
    if i is None:
        return None
    if not i and not r:
        return ("neither end advertised IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT: RFC 7383 fragmentation "
                "is off on both")
    if i and r is False:
        return ("the client offered RFC 7383 fragmentation, the server did not (RRAS: set "
                "EnableServerFragmentation = 1)")
    if r and not i:
        return ("the server supports RFC 7383 fragmentation, the client did not offer it (Windows 10 1803+; "
                "ProfileXML DisableIKEv2Fragmentation must not be true)")
    if i and r:
        return "both ends advertised RFC 7383 fragmentation"
    return None
