"""Which probe an answer belongs to: ICMP errors by the header they quote, TCP by ports and ack.

Answers arrive on raw sockets shared by every probe; a UDP socket's own error
(ECONNREFUSED, ...) is the kernel's reading of an ICMP error for that socket.
"""
from __future__ import annotations

import errno
import socket
import struct

from .plan import PROTO_ESP, PROTO_TCP, PROTO_UDP, Probe
from .outcome import SendResult

__all__ = ["icmp_label", "errno_label", "match_icmp", "match_tcp"]

_ICMP_NAMES = {
    (3, 0): "net-unreachable", (3, 1): "host-unreachable", (3, 2): "protocol-unreachable",
    (3, 3): "port-unreachable", (3, 4): "fragmentation-needed", (3, 9): "net-prohibited",
    (3, 10): "host-prohibited", (3, 13): "administratively-prohibited",
    (11, 0): "ttl-exceeded", (11, 1): "reassembly-time-exceeded", (12, 0): "parameter-problem",
}


def icmp_label(icmp_type: int, code: int) -> str:
    return "icmp-" + _ICMP_NAMES.get((icmp_type, code), f"{icmp_type}/{code}")


def errno_label(exc: OSError) -> str:
    return {errno.ECONNREFUSED: "icmp-port-unreachable", errno.EHOSTUNREACH: "icmp-host-unreachable",
            errno.ENETUNREACH: "icmp-net-unreachable", errno.EPROTO: "icmp-protocol-error"}.get(
        exc.errno or 0, f"error-{errno.errorcode.get(exc.errno or 0, exc.errno)}")


def _ip_header(d: bytes) -> tuple[int, int, int, str, str] | None:
    """(ihl, proto, ident, src, dst) of an IPv4 header, or None."""
    if len(d) < 20 or d[0] >> 4 != 4:
        return None
    ihl = (d[0] & 0x0F) * 4
    if ihl < 20 or len(d) < ihl:
        return None
    return (ihl, d[9], struct.unpack_from("!H", d, 4)[0], socket.inet_ntoa(d[12:16]),
            socket.inet_ntoa(d[16:20]))


def match_icmp(packet: bytes, probes: list[Probe], results: dict[str, SendResult],
               gateway: str) -> tuple[str, str, str] | None:
    """(probe name, label, ICMP sender) for an ICMP error quoting one of our probes."""
    outer = _ip_header(packet)
    if outer is None or outer[1] != 1:
        return None
    ihl = outer[0]
    if len(packet) < ihl + 8 + 20:
        return None
    itype, code = packet[ihl], packet[ihl + 1]
    if itype not in (3, 11, 12):
        return None
    inner = packet[ihl + 8:]
    hdr = _ip_header(inner)
    if hdr is None or hdr[4] != gateway:
        return None
    iihl, proto, ident = hdr[0], hdr[1], hdr[2]
    l4 = inner[iihl:iihl + 8]
    for p in probes:
        if p.proto != proto:
            continue
        r = results[p.name]
        if proto in (PROTO_UDP, PROTO_TCP):
            if len(l4) >= 4 and r.sport is not None and struct.unpack_from("!H", l4, 0)[0] == r.sport:
                return p.name, icmp_label(itype, code), outer[3]
            if p.ip_id is not None and ident == p.ip_id and p.kind == "frag":
                return p.name, icmp_label(itype, code), outer[3]
        elif proto == PROTO_ESP and l4[:4] == p.spi:
            return p.name, icmp_label(itype, code), outer[3]
    return None


def match_tcp(packet: bytes, probes: list[Probe], results: dict[str, SendResult],
              gateway: str) -> tuple[str, str] | None:
    """(probe name, tcp-syn-ack|tcp-rst) for a TCP segment answering one of our SYNs."""
    hdr = _ip_header(packet)
    if hdr is None or hdr[1] != PROTO_TCP or hdr[3] != gateway:
        return None
    t = packet[hdr[0]:]
    if len(t) < 14:
        return None
    sport, dport, _seq, ack = struct.unpack_from("!HHII", t, 0)
    flags = t[13]
    for p in probes:
        if p.kind != "tcp-syn":
            continue
        r = results[p.name]
        if sport == p.port and dport == r.sport and ack == ((p.seq or 0) + 1) & 0xFFFFFFFF:
            if flags & 0x04:
                return p.name, "tcp-rst"
            if flags & 0x12 == 0x12:
                return p.name, "tcp-syn-ack"
    return None
