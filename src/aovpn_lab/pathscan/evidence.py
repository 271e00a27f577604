"""Did a probe arrive? Read the far-end capture and match packets to probes.

The capture is reduced to :class:`Seen` records (one per captured IPv4 packet,
fragment or not).  Packets are grouped into datagrams by (src, dst, protocol,
IP identification) for fragments, one group per packet otherwise.  A group
belongs to a probe when

* its first fragment carries the probe's ``head`` bytes at ``head_offset`` of
  the transport payload (IKE SPI, ESP SPI+sequence, TCP port+sequence), or
* any fragment carries the probe's ``tag`` (L2TP host name, padding of the
  fragmented IKE probes: also found in non-first fragments), or
* it uses the probe's own IP identification and the client's source address
  (catches a lone short last fragment).

Groups sent by the gateway side (an echo of a probe carries its tags too) are
skipped: their source is the gateway or an address a probe was seen going to,
or their first fragment is not addressed to the probed port.

A probe *arrived* when one of its groups is complete: every byte from offset 0
to the end of the last fragment was captured.  ``fragments_arrived`` counts the
distinct fragments captured (more than were sent when a hop re-fragmented).
"""
from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..capture.packets import IpPacket, covered, decode_ip
from ..capture.pcapfile import Frame, read_frames
from .probes import PROTO_TCP, Probe

__all__ = ["Arrival", "Seen", "match_arrivals", "parse_ipv4", "read_capture"]

LINKTYPE_IPV4 = 228


@dataclass(frozen=True)
class Seen:
    """One IPv4 packet seen at the far end."""

    src: str
    dst: str
    proto: int
    ident: int
    offset: int            # fragment offset in bytes
    more: bool             # MF flag
    payload: bytes         # bytes after the IP header (as captured)
    payload_len: int       # length according to the IP header
    ts: float = 0.0

    @property
    def is_fragment(self) -> bool:
        return self.more or self.offset > 0


@dataclass
class Arrival:
    arrived: bool = False
    fragments_arrived: int = 0
    complete_groups: int = 0
    dst: str | None = None
    dport: int | None = None
    first_ts: float | None = None
    offsets: list[int] = field(default_factory=list)


def _seen(pkt: IpPacket | None) -> Seen | None:
    if pkt is None or pkt.version != 4:
        return None
    return Seen(pkt.src, pkt.dst, pkt.proto, pkt.ident or 0, pkt.frag_offset, pkt.more_fragments,
                bytes(pkt.payload), pkt.payload_len, pkt.ts)


def parse_ipv4(d: bytes, ts: float = 0.0) -> Seen | None:
    """The :class:`Seen` record of one IPv4 packet's bytes (None when it is not one)."""
    return _seen(decode_ip(Frame(0, ts, LINKTYPE_IPV4, bytes(d), len(d))))


def read_capture(path) -> list[Seen]:
    """IPv4 packets of a pcap/pcapng file (tcpdump -w), read as the capture diagnosis reads them."""
    return [s for s in map(_seen, map(decode_ip, read_frames(path))) if s is not None]


class _Group:
    __slots__ = ("end", "pieces")

    def __init__(self):
        self.pieces: dict[int, Seen] = {}
        self.end: int | None = None

    def add(self, s: Seen) -> None:
        self.pieces.setdefault(s.offset, s)
        if not s.more:
            self.end = s.offset + s.payload_len

    @property
    def first(self) -> Seen | None:
        return self.pieces.get(0)

    def complete(self) -> bool:
        return covered({off: p.payload_len for off, p in self.pieces.items()}, self.end)


def _groups(seen: Iterable[Seen]) -> list[_Group]:
    groups: list[_Group] = []
    frag: dict[tuple, _Group] = {}
    for s in seen:
        if s.is_fragment:
            key = (s.src, s.dst, s.proto, s.ident)
            g = frag.get(key)
            if g is None:
                g = frag[key] = _Group()
                groups.append(g)
        else:
            g = _Group()
            groups.append(g)
        g.add(s)
    return groups


def _head_match(g: _Group, p: Probe) -> bool:
    first = g.first
    if first is None or not p.head or first.proto != p.proto:
        return False
    if first.payload[p.head_offset:p.head_offset + len(p.head)] != p.head:
        return False
    if p.port is not None and (len(first.payload) < 4
                               or struct.unpack_from("!H", first.payload, 2)[0] != p.port):
        return False  # e.g. an echo of the probe coming back from the gateway
    if p.proto == PROTO_TCP:
        return len(first.payload) > 13 and bool(first.payload[13] & 0x02)  # SYN
    return True


def _belongs(g: _Group, p: Probe, client_src: str | None) -> bool:
    any_piece = next(iter(g.pieces.values()))
    if any_piece.proto != p.proto:
        return False
    if _head_match(g, p):
        return True
    first = g.first
    if first is not None and p.port is not None and len(first.payload) >= 4 \
            and struct.unpack_from("!H", first.payload, 2)[0] != p.port:
        return False  # not toward the probed port (an answer or an echo)
    if p.tag and any(p.tag in s.payload for s in g.pieces.values()):
        return True
    if p.ip_id is not None and client_src is not None and p.kind == "frag":
        return any_piece.ident == p.ip_id and any_piece.src == client_src
    return False


def match_arrivals(probes: list[Probe], seen: Iterable[Seen], client_src: str | None = None,
                   gateway: str | None = None) -> dict[str, Arrival]:
    """Arrival per probe name from the far-end packets (see the module text).

    Packets sent *by* the gateway side (echoes or answers carrying our tags) are
    ignored: their source is ``gateway`` or an address our probes were seen going to.
    """
    result = {p.name: Arrival() for p in probes}
    groups = _groups(seen)
    far_side = {gateway} if gateway else set()
    for g in groups:
        if any(_head_match(g, p) for p in probes):
            far_side.add(g.first.dst)
    for g in groups:
        if next(iter(g.pieces.values())).src in far_side:
            continue
        for p in probes:
            if not _belongs(g, p, client_src):
                continue
            a = result[p.name]
            a.fragments_arrived += len(g.pieces)
            a.offsets.extend(sorted(g.pieces))
            piece = g.first or next(iter(g.pieces.values()))
            if a.first_ts is None:
                a.first_ts = piece.ts
            a.dst = a.dst or piece.dst
            if g.complete():
                a.arrived = True
                a.complete_groups += 1
                if g.first is not None and p.port is not None and len(g.first.payload) >= 4:
                    a.dport = struct.unpack_from("!H", g.first.payload, 2)[0]
            break  # a packet group belongs to one probe at most
    return result
