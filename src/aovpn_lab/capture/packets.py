"""From link-layer frames to IP datagrams, with our own IP reassembly.

The diagnosis needs to know, for every UDP datagram, how many IP packets carried it and
whether all of them were captured, so the kernel's (or scapy's) reassembly would hide
exactly what we look for. :class:`Reassembler` keeps every fragment's size from its IP
header, so it also works on captures cut short by a snap length: completeness is decided
from fragment offsets and lengths, not from captured bytes.

Link types: Ethernet (802.1Q/802.1ad tags), Linux cooked v1/v2 (``tcpdump -i any``),
raw IP, BSD loopback/NULL, IPv4/IPv6 link types. IPv4 and IPv6 (hop-by-hop, routing,
destination options and fragment headers).
"""
from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .pcapfile import Frame

__all__ = [
    "LINKTYPES",
    "PROTO_ESP",
    "PROTO_UDP",
    "Datagram",
    "IpPacket",
    "Reassembler",
    "datagrams",
    "decode_ip",
]

PROTO_UDP = 17
PROTO_ESP = 50
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
ETH_VLAN = (0x8100, 0x88A8, 0x9100)

LINKTYPES = {0: "NULL", 1: "ETHERNET", 12: "RAW", 14: "RAW", 101: "RAW", 108: "LOOP",
             113: "LINUX_SLL", 228: "IPV4", 229: "IPV6", 276: "LINUX_SLL2"}

#: fragments of one datagram further apart than this belong to different datagrams
FRAGMENT_TIMEOUT = 30.0


@dataclass(slots=True)
class IpPacket:
    """One IP packet as captured (possibly a fragment)."""

    frame: int
    ts: float
    version: int
    src: str
    dst: str
    proto: int           # upper-layer protocol (after IPv6 extension headers)
    ip_len: int          # total length of the IP packet (from its header)
    ident: int | None    # IPv4 ID / IPv6 fragment identification
    frag_offset: int     # bytes
    more_fragments: bool
    is_fragment: bool
    payload: bytes       # captured payload bytes after the IP header(s)
    payload_len: int     # payload length according to the header(s)


@dataclass
class Datagram:
    """An upper-layer datagram (UDP or ESP) rebuilt from one or more IP packets."""

    ts: float
    frame: int
    version: int
    src: str
    dst: str
    proto: int
    ident: int | None
    packets: int = 1                     # IP packets captured for it
    fragmented: bool = False
    ip_bytes: int = 0                    # sum of those packets' IP lengths
    largest: int = 0                     # largest of those IP packets
    sizes: list[int] = field(default_factory=list)
    complete: bool = True                # every fragment was captured
    has_first: bool = True               # the fragment with offset 0 (transport header) was captured
    payload: bytes = b""                 # transport bytes captured, contiguous from offset 0
    length: int | None = None            # transport length, when the last fragment was seen
    frag_offsets: list[int] = field(default_factory=list)

    # transport, filled in for UDP
    sport: int | None = None
    dport: int | None = None

    @property
    def udp_payload(self) -> bytes:
        return self.payload[8:] if self.proto == PROTO_UDP else b""


def _l3(frame: Frame) -> tuple[int, bytes] | None:
    """(ethertype-like 4/6, IP bytes) from a link-layer frame, or None."""
    d, lt = frame.data, frame.linktype
    if lt == 1:
        if len(d) < 14:
            return None
        off, et = 12, struct.unpack_from("!H", d, 12)[0]
        while et in ETH_VLAN and len(d) >= off + 6:
            off += 4
            et = struct.unpack_from("!H", d, off)[0]
        ip = d[off + 2:]
    elif lt == 113:
        if len(d) < 16:
            return None
        et, ip = struct.unpack_from("!H", d, 14)[0], d[16:]
    elif lt == 276:
        if len(d) < 20:
            return None
        et, ip = struct.unpack_from("!H", d, 0)[0], d[20:]
    elif lt in (0, 108):
        if len(d) < 4:
            return None
        fam_le, fam_be = struct.unpack_from("<I", d)[0], struct.unpack_from("!I", d)[0]
        fam = fam_be if lt == 108 else (fam_le if fam_le < 256 else fam_be)
        et = ETH_IPV4 if fam == 2 else ETH_IPV6 if fam in (10, 24, 28, 30) else 0
        ip = d[4:]
    elif lt in (12, 14, 101, 228, 229):
        if not d:
            return None
        et = ETH_IPV4 if d[0] >> 4 == 4 else ETH_IPV6 if d[0] >> 4 == 6 else 0
        ip = d
    else:
        return None
    if et == ETH_IPV4:
        return 4, ip
    if et == ETH_IPV6:
        return 6, ip
    return None


_V6_EXT = (0, 43, 60)  # hop-by-hop, routing, destination options


def decode_ip(frame: Frame) -> IpPacket | None:
    """The IP packet inside a frame (None for anything else or an unreadable header)."""
    got = _l3(frame)
    if got is None:
        return None
    version, d = got
    if version == 4:
        if len(d) < 20 or d[0] >> 4 != 4:
            return None
        ihl = (d[0] & 0x0F) * 4
        total, ident, ff = struct.unpack_from("!HHH", d, 2)
        if ihl < 20 or len(d) < ihl:
            return None
        if total < ihl:  # 0 with TSO/GSO on the sending host: trust the captured/wire size
            total = max(len(d), ihl)
        offset = (ff & 0x1FFF) * 8
        mf = bool(ff & 0x2000)
        return IpPacket(frame.index, frame.ts, 4, str(ipaddress.IPv4Address(d[12:16])),
                        str(ipaddress.IPv4Address(d[16:20])), d[9], total, ident, offset, mf,
                        bool(mf or offset), d[ihl:total], total - ihl)
    if len(d) < 40 or d[0] >> 4 != 6:
        return None
    plen = struct.unpack_from("!H", d, 4)[0]
    nxt = d[6]
    src, dst = str(ipaddress.IPv6Address(d[8:24])), str(ipaddress.IPv6Address(d[24:40]))
    off = 40
    ident, frag_off, mf, is_frag = None, 0, False, False
    for _ in range(8):
        if nxt in _V6_EXT:
            if len(d) < off + 2:
                return None
            nxt, hlen = d[off], (d[off + 1] + 1) * 8
            off += hlen
        elif nxt == 44:
            if len(d) < off + 8:
                return None
            nxt = d[off]
            fo = struct.unpack_from("!H", d, off + 2)[0]
            frag_off, mf = fo & 0xFFF8, bool(fo & 1)
            ident = struct.unpack_from("!I", d, off + 4)[0]
            is_frag = True
            off += 8
        else:
            break
    total = 40 + plen
    return IpPacket(frame.index, frame.ts, 6, src, dst, nxt, total, ident, frag_off, mf, is_frag,
                    d[off:total], max(0, total - off))


class _Pending:
    __slots__ = ("end", "first_ts", "frame", "key", "pieces")

    def __init__(self, key, pkt: IpPacket):
        self.key = key
        self.first_ts = pkt.ts
        self.frame = pkt.frame
        self.pieces: dict[int, IpPacket] = {}
        self.end: int | None = None

    def add(self, pkt: IpPacket) -> bool:
        """Add a fragment; False when it duplicates one already held."""
        if pkt.frag_offset in self.pieces:
            return False
        self.pieces[pkt.frag_offset] = pkt
        if not pkt.more_fragments:
            self.end = pkt.frag_offset + pkt.payload_len
        return True

    def complete(self) -> bool:
        return covered({off: p.payload_len for off, p in self.pieces.items()}, self.end)

    def build(self) -> Datagram:
        pieces = [self.pieces[o] for o in sorted(self.pieces)]
        head = pieces[0]
        payload = bytearray()
        for p in pieces:  # contiguous captured bytes from offset 0
            if p.frag_offset != len(payload):
                if p.frag_offset < len(payload):  # overlap: keep what we have, append the rest
                    payload += p.payload[len(payload) - p.frag_offset:]
                    continue
                break
            payload += p.payload
            if len(p.payload) < p.payload_len:  # cut by the snap length
                break
        sizes = [p.ip_len for p in pieces]
        return Datagram(
            ts=self.first_ts, frame=self.frame, version=head.version, src=head.src, dst=head.dst,
            proto=head.proto, ident=head.ident, packets=len(pieces), fragmented=True,
            ip_bytes=sum(sizes), largest=max(sizes), sizes=sizes, complete=self.complete(),
            has_first=0 in self.pieces, payload=bytes(payload) if 0 in self.pieces else b"",
            length=self.end, frag_offsets=[p.frag_offset for p in pieces])


class Reassembler:
    """Collect IP packets; produce :class:`Datagram` objects in order of first packet.

    Fragments are grouped by (version, src, dst, protocol, identification). A group is
    finished when it is complete, when :data:`FRAGMENT_TIMEOUT` passes, or at the end
    (:meth:`flush`); unfinished groups come out with ``complete=False``, and groups
    whose first fragment is missing with ``has_first=False`` (no ports known).
    """

    def __init__(self, timeout: float = FRAGMENT_TIMEOUT):
        self.timeout = timeout
        self.pending: dict[tuple, _Pending] = {}
        self.duplicates = 0

    def add(self, pkt: IpPacket) -> list[Datagram]:
        out: list[Datagram] = []
        if self.pending:
            for key in [k for k, v in self.pending.items() if pkt.ts - v.first_ts > self.timeout]:
                out.append(self.pending.pop(key).build())
        if not pkt.is_fragment:
            out.append(Datagram(
                ts=pkt.ts, frame=pkt.frame, version=pkt.version, src=pkt.src, dst=pkt.dst,
                proto=pkt.proto, ident=pkt.ident, packets=1, fragmented=False, ip_bytes=pkt.ip_len,
                largest=pkt.ip_len, sizes=[pkt.ip_len], payload=pkt.payload, length=pkt.payload_len,
                frag_offsets=[0]))
            return out
        key = (pkt.version, pkt.src, pkt.dst, pkt.proto, pkt.ident)
        pend = self.pending.get(key)
        if pend is None:
            pend = self.pending[key] = _Pending(key, pkt)
        if not pend.add(pkt):
            self.duplicates += 1
            return out
        if pend.complete():
            out.append(self.pending.pop(key).build())
        return out

    def flush(self) -> list[Datagram]:
        out = [p.build() for p in self.pending.values()]
        self.pending.clear()
        return out


def _finish(d: Datagram) -> Datagram:
    if d.proto == PROTO_UDP and d.has_first and len(d.payload) >= 8:
        d.sport, d.dport = struct.unpack_from("!HH", d.payload, 0)
    return d


def datagrams(frames: Iterable[Frame], stats: dict | None = None) -> Iterator[Datagram]:
    """Decode and reassemble; yields datagrams (UDP ports set) sorted by first-packet time.

    ``stats`` (optional) gets counters: frames, ip, non_ip, fragments, duplicates.
    """
    st = stats if stats is not None else {}
    for k in ("frames", "ip", "non_ip", "fragments", "duplicates"):
        st.setdefault(k, 0)
    r = Reassembler()
    out: list[Datagram] = []
    for frame in frames:
        st["frames"] += 1
        pkt = decode_ip(frame)
        if pkt is None:
            st["non_ip"] += 1
            continue
        st["ip"] += 1
        if pkt.is_fragment:
            st["fragments"] += 1
        out.extend(r.add(pkt))
    out.extend(r.flush())
    st["duplicates"] = r.duplicates
    out.sort(key=lambda d: (d.ts, d.frame))
    for d in out:
        yield _finish(d)


def covered(spans: dict[int, int], end: int | None) -> bool:
    """Do fragments (offset -> payload length) cover a datagram from 0 to `end` without a gap?"""
    if end is None or 0 not in spans:
        return False
    pos = 0
    for off in sorted(spans):
        if off > pos:
            return False
        pos = max(pos, off + spans[off])
    return pos >= end
