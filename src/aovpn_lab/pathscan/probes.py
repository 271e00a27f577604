"""Tagged path probes: planning, crafting and sending (IPv4).

Every probe carries something unique that survives the path (and a NAT on it),
so the far-end capture can tell it from any other traffic:

============  =====================  ==========================================
check         what is sent           tag recognised at the far end
============  =====================  ==========================================
udp500        IKE_SA_INIT (kernel    initiator SPI (8 random bytes) at the start
              UDP socket)            of the UDP payload
udp4500       non-ESP marker +       marker + SPI at the start of the payload
              IKE_SA_INIT
tcp443        crafted TCP SYN        random sequence number (+ SYN flag)
esp           crafted ESP (proto 50) random SPI + sequence number
udp1701       L2TP SCCRQ             Host Name AVP ``aovpn-pathscan-<token>``
frag4500:N    IKE_SA_INIT padded to  SPI in the first fragment, a tag repeated
              an N-byte IP datagram, through the padding (in every fragment),
              fragmented by us       and our own IP identification
============  =====================  ==========================================

``frag4500:N`` datagrams are cut into fragments here (not by the kernel), so
the number of fragments sent is known exactly: N is the size of the whole IP
datagram before fragmentation, each fragment fits the route's MTU (1500 ->
1480 payload bytes per fragment: 1400 -> 1 packet, 1600 -> 2, 3000 -> 3,
6000 -> 5).

Crafted packets go out through one ``IPPROTO_RAW`` socket (the kernel only
fills in the IP checksum); answers are collected from per-probe UDP sockets,
a raw ICMP socket (errors, matched by the quoted header; the sender of the
ICMP is kept, so a rejecting hop is named) and a raw TCP socket (SYN-ACK/RST).
All sockets are created by :func:`run_probes`, so calling it through
:func:`aovpn_lab.ike.craft_netns.run_in_netns` sends from that namespace.
Needs CAP_NET_RAW (root).
"""
from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import struct
import time
from dataclasses import asdict, dataclass, field

from aovpn_lab.ike import craft

__all__ = [
    "DEFAULT_CHECKS",
    "DEFAULT_FRAGMENT_SIZES",
    "NEEDED_PORTS",
    "TAG_PREFIX",
    "Probe",
    "SendOutcome",
    "SendResult",
    "build_esp",
    "build_fragments",
    "build_ike_datagram",
    "build_l2tp_sccrq",
    "build_tcp_syn",
    "icmp_label",
    "parse_check",
    "plan_probes",
    "run_probes",
]

TAG_PREFIX = b"aovpn-pathscan-"
DEFAULT_FRAGMENT_SIZES = (1400, 1600, 3000, 6000)
DEFAULT_CHECKS = ("udp500", "udp4500", "tcp443", "esp", "udp1701") + tuple(
    f"frag4500:{n}" for n in DEFAULT_FRAGMENT_SIZES)
#: what an IKEv2 remote-access path needs (ESP only without NAT, TCP 443 only for SSTP)
NEEDED_PORTS = ("udp500", "udp4500")

PROTO_TCP, PROTO_UDP, PROTO_ESP = 6, 17, 50
_IP_MTU = getattr(socket, "IP_MTU", 14)
_IP_HDR, _UDP_HDR = 20, 8
_MIN_FRAG_SIZE = 576  # an IKE_SA_INIT with the default offer plus padding fits above this
_SIMPLE = {
    "udp500": ("ike", PROTO_UDP, craft.IKE_PORT),
    "udp4500": ("ike", PROTO_UDP, craft.NATT_PORT),
    "tcp443": ("tcp-syn", PROTO_TCP, 443),
    "esp": ("esp", PROTO_ESP, None),
    "udp1701": ("l2tp", PROTO_UDP, 1701),
}

_ICMP_NAMES = {
    (3, 0): "net-unreachable", (3, 1): "host-unreachable", (3, 2): "protocol-unreachable",
    (3, 3): "port-unreachable", (3, 4): "fragmentation-needed", (3, 9): "net-prohibited",
    (3, 10): "host-prohibited", (3, 13): "administratively-prohibited",
    (11, 0): "ttl-exceeded", (11, 1): "reassembly-time-exceeded", (12, 0): "parameter-problem",
}


def icmp_label(icmp_type: int, code: int) -> str:
    return "icmp-" + _ICMP_NAMES.get((icmp_type, code), f"{icmp_type}/{code}")


@dataclass
class Probe:
    """One planned probe and the tags it will carry (all chosen before sending)."""

    name: str                  # check name: udp500, frag4500:3000, ...
    kind: str                  # ike | tcp-syn | esp | l2tp | frag
    proto: int                 # IP protocol
    port: int | None           # destination port (None for ESP)
    size: int | None = None    # frag: IP datagram size before fragmentation
    spi: bytes = b""           # IKE initiator SPI (8) or ESP SPI (4)
    seq: int | None = None     # ESP sequence number or TCP initial sequence number
    ip_id: int | None = None   # IP identification of crafted packets
    tag: bytes = b""           # bytes found inside every (large enough) packet of the probe
    head: bytes = b""          # bytes at ``head_offset`` of the transport payload
    head_offset: int = 0

    @property
    def answerable(self) -> bool:
        """Whether an answer is normally expected from a gateway/host (ESP: no)."""
        return self.kind != "esp"


@dataclass
class SendResult:
    """What happened to one probe on the client side."""

    name: str
    sent: bool = False
    packets: int = 0                  # IP packets put on the wire (fragments)
    ip_sizes: list[int] = field(default_factory=list)
    sport: int | None = None
    answered: bool = False
    answer: str | None = None         # ike:<kind> | udp-reply | tcp-syn-ack | tcp-rst | icmp-...
    answered_by: str | None = None    # source address of the answer
    rtt_ms: float | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SendOutcome:
    source: str | None
    mtu: int | None
    results: dict[str, SendResult]
    elapsed_s: float


# ---------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------


def parse_check(text: str) -> tuple[str, int | None]:
    """``"udp500"`` -> ("udp500", None); ``"frag4500:3000"`` -> ("frag4500", 3000)."""
    name = str(text).strip().lower()
    if name in _SIMPLE:
        return name, None
    if name.startswith("frag4500:"):
        try:
            size = int(name.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"bad check {text!r}: the size after 'frag4500:' must be a number") from None
        if not _MIN_FRAG_SIZE <= size <= 65000:
            raise ValueError(f"bad check {text!r}: size must be {_MIN_FRAG_SIZE}..65000 bytes")
        return "frag4500", size
    raise ValueError(f"unknown check {text!r}: use one of {', '.join(_SIMPLE)} or frag4500:SIZE")


def _nonzero(n: int) -> bytes:
    while True:
        b = os.urandom(n)
        if b.strip(b"\x00"):
            return b


def plan_probes(checks=DEFAULT_CHECKS, token: str | None = None) -> list[Probe]:
    """Probes with fresh random tags, in sending order (duplicates removed)."""
    token = token or os.urandom(5).hex()
    seen: set[str] = set()
    used_ids: set[int] = set()
    probes: list[Probe] = []

    def new_id() -> int:
        while True:
            v = struct.unpack("!H", os.urandom(2))[0]
            if v and v not in used_ids:
                used_ids.add(v)
                return v

    for raw in checks:
        base, size = parse_check(raw)
        name = base if size is None else f"frag4500:{size}"
        if name in seen:
            continue
        seen.add(name)
        tag = TAG_PREFIX + f"{token}-{len(probes)}".encode()
        if base == "frag4500":
            spi = _nonzero(8)
            probes.append(Probe(name, "frag", PROTO_UDP, craft.NATT_PORT, size=size, spi=spi,
                                ip_id=new_id(), tag=tag, head=craft.NON_ESP_MARKER + spi,
                                head_offset=_UDP_HDR))
            continue
        kind, proto, port = _SIMPLE[base]
        if kind == "ike":
            spi = _nonzero(8)
            head = (craft.NON_ESP_MARKER + spi) if port == craft.NATT_PORT else spi
            probes.append(Probe(name, kind, proto, port, spi=spi, head=head, head_offset=_UDP_HDR))
        elif kind == "tcp-syn":
            seq = struct.unpack("!I", _nonzero(4))[0]
            probes.append(Probe(name, kind, proto, port, seq=seq, ip_id=new_id(),
                                head=struct.pack("!HI", port, seq), head_offset=2))
        elif kind == "esp":
            spi = struct.pack("!I", 0x100 + struct.unpack("!I", os.urandom(4))[0] % 0xFFFFFE00)
            seq = 1 + struct.unpack("!I", os.urandom(4))[0] % 0xFFFFFFFE
            probes.append(Probe(name, kind, proto, None, spi=spi, seq=seq, ip_id=new_id(), tag=tag,
                                head=spi + struct.pack("!I", seq), head_offset=0))
        else:  # l2tp
            probes.append(Probe(name, kind, proto, port, tag=tag))
    return probes


# ---------------------------------------------------------------------------
# crafting (pure)
# ---------------------------------------------------------------------------


def build_l2tp_sccrq(tag: bytes, tunnel_id: int | None = None) -> bytes:
    """A minimal L2TPv2 SCCRQ (RFC 2661 6.1) whose Host Name AVP is ``tag``."""
    tid = tunnel_id or (1 + struct.unpack("!H", os.urandom(2))[0] % 0xFFFE)

    def avp(attr: int, value: bytes) -> bytes:
        return struct.pack("!HHH", 0x8000 | (6 + len(value)), 0, attr) + value

    avps = (avp(0, struct.pack("!H", 1))          # Message Type: SCCRQ
            + avp(2, b"\x01\x00")                 # Protocol Version 1.0
            + avp(3, struct.pack("!I", 3))        # Framing Capabilities
            + avp(7, tag)                         # Host Name
            + avp(9, struct.pack("!H", tid)))     # Assigned Tunnel ID
    length = 12 + len(avps)
    return struct.pack("!HHHHHH", 0xC802, length, 0, 0, 0, 0) + avps


def _retag_padding(msg: bytes, tag: bytes) -> bytes:
    """Replace the Vendor ID filler of a padded IKE message with ``tag`` repeated."""
    i = msg.find(craft.PAD_VENDOR_ID_PREFIX)
    if i < 0:
        return msg
    n = len(msg) - i
    unit = tag + b" "
    return msg[:i] + (unit * (n // len(unit) + 1))[:n]


def build_ike_datagram(probe: Probe, src: tuple[str, int], dst: tuple[str, int],
                       ike_size: int | None = None) -> bytes:
    """The UDP payload of an IKE probe (non-ESP marker on 4500), optionally padded."""
    props = craft.DEFAULT_REACH_PROPOSALS
    msg = craft.build_ike_sa_init(props, craft.decoy_group(props), spi=probe.spi, src=src, dst=dst,
                                  pad_to=ike_size)
    if ike_size is not None and probe.tag:
        msg = _retag_padding(msg, probe.tag)
    return (craft.NON_ESP_MARKER + msg) if dst[1] == craft.NATT_PORT else msg


def build_fragments(src: str, dst: str, sport: int, dport: int, payload: bytes, ip_id: int,
                    mtu: int, ttl: int = 64) -> list[bytes]:
    """One UDP datagram as IPv4 packets no larger than ``mtu`` (DF clear), in order."""
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Raw

    whole = bytes(IP(src=src, dst=dst, id=ip_id, flags=0, ttl=ttl)
                  / UDP(sport=sport, dport=dport) / Raw(payload))
    if len(whole) <= mtu:
        return [whole]
    body = whole[_IP_HDR:]
    step = (mtu - _IP_HDR) // 8 * 8
    if step <= 0:
        raise ValueError(f"MTU {mtu} is too small to fragment")
    out = []
    for off in range(0, len(body), step):
        chunk = body[off:off + step]
        last = off + step >= len(body)
        out.append(bytes(IP(src=src, dst=dst, id=ip_id, flags=0 if last else "MF", frag=off // 8,
                            ttl=ttl, proto=PROTO_UDP) / Raw(chunk)))
    return out


def build_esp(probe: Probe, src: str, dst: str, ttl: int = 64) -> bytes:
    """An IPv4 packet carrying ESP (protocol 50): SPI, sequence, tag + random 'ciphertext'."""
    from scapy.layers.inet import IP
    from scapy.layers.ipsec import ESP

    data = probe.tag + os.urandom(64) + os.urandom(12)  # looks like body + ICV
    return bytes(IP(src=src, dst=dst, id=probe.ip_id or 0, flags=0, ttl=ttl)
                 / ESP(spi=struct.unpack("!I", probe.spi)[0], seq=probe.seq, data=data))


def build_tcp_syn(probe: Probe, src: str, dst: str, sport: int, ttl: int = 64) -> bytes:
    """An IPv4 TCP SYN with the probe's sequence number and ordinary options."""
    from scapy.layers.inet import IP, TCP

    return bytes(IP(src=src, dst=dst, id=probe.ip_id or 0, flags="DF", ttl=ttl)
                 / TCP(sport=sport, dport=probe.port, seq=probe.seq, flags="S", window=64240,
                       options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]))


# ---------------------------------------------------------------------------
# sending and listening (runs in the client's namespace)
# ---------------------------------------------------------------------------


def _route_info(gateway: str) -> tuple[str, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((gateway, 9))
        src = s.getsockname()[0]
        try:
            mtu = int(s.getsockopt(socket.IPPROTO_IP, _IP_MTU))
        except OSError:
            mtu = 1500
        return src, mtu
    finally:
        s.close()


def _udp_socket(src: str, gateway: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10),
                     getattr(socket, "IP_PMTUDISC_DONT", 0))
        s.bind((src, 0))
        s.connect((gateway, port))
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def _errno_label(exc: OSError) -> str:
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


def run_probes(probes: list[Probe], gateway: str, *, timeout: float = 1.0) -> SendOutcome:
    """Send every probe once to ``gateway`` (IPv4), then collect answers for ``timeout`` s.

    Returns early only when every probe that can be answered has been.  Raises
    PermissionError without CAP_NET_RAW; per-probe send errors go into the results.
    """
    t0 = time.monotonic()
    results = {p.name: SendResult(p.name) for p in probes}
    src, mtu = _route_info(gateway)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    tcp_raw = None
    held: list[socket.socket] = [raw, icmp]
    udp: dict[int, tuple[socket.socket, Probe]] = {}
    sent_at: dict[str, float] = {}
    try:
        icmp.setblocking(False)
        if any(p.kind == "tcp-syn" for p in probes):
            tcp_raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
            tcp_raw.setblocking(False)
            held.append(tcp_raw)
        for p in probes:
            r = results[p.name]
            try:
                if p.kind in ("ike", "l2tp"):
                    s = _udp_socket(src, gateway, p.port)
                    held.append(s)
                    r.sport = s.getsockname()[1]
                    if p.kind == "ike":
                        data = build_ike_datagram(p, (src, r.sport), (gateway, p.port))
                    else:
                        data = build_l2tp_sccrq(p.tag)
                    sent_at[p.name] = time.monotonic()
                    s.send(data)
                    r.ip_sizes = [_IP_HDR + _UDP_HDR + len(data)]
                    udp[s.fileno()] = (s, p)
                    r.packets, r.sent = 1, True
                elif p.kind == "frag":
                    s = _udp_socket(src, gateway, p.port)  # receives answers and ICMP errors
                    held.append(s)
                    r.sport = s.getsockname()[1]
                    ike_size = p.size - _IP_HDR - _UDP_HDR - len(craft.NON_ESP_MARKER)
                    data = build_ike_datagram(p, (src, r.sport), (gateway, p.port), ike_size)
                    frags = build_fragments(src, gateway, r.sport, p.port, data, p.ip_id, mtu)
                    sent_at[p.name] = time.monotonic()
                    udp[s.fileno()] = (s, p)
                    for f in frags:
                        raw.sendto(f, (gateway, 0))
                        r.packets += 1
                        r.ip_sizes.append(len(f))
                    r.sent = True
                elif p.kind == "esp":
                    pkt = build_esp(p, src, gateway)
                    sent_at[p.name] = time.monotonic()
                    raw.sendto(pkt, (gateway, 0))
                    r.packets, r.ip_sizes, r.sent = 1, [len(pkt)], True
                elif p.kind == "tcp-syn":
                    hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    held.append(hold)
                    hold.bind((src, 0))  # reserves the source port while we wait
                    r.sport = hold.getsockname()[1]
                    pkt = build_tcp_syn(p, src, gateway, r.sport)
                    sent_at[p.name] = time.monotonic()
                    raw.sendto(pkt, (gateway, 0))
                    r.packets, r.ip_sizes, r.sent = 1, [len(pkt)], True
            except OSError as exc:
                r.error = f"{type(exc).__name__}: {exc}"

        def answered(name: str, label: str, by: str | None) -> None:
            r = results[name]
            if r.answered:
                return
            r.answered, r.answer, r.answered_by = True, label, by
            r.rtt_ms = round((time.monotonic() - sent_at.get(name, t0)) * 1000, 2)

        waiting = {p.name for p in probes if p.answerable and results[p.name].sent}
        deadline = time.monotonic() + max(0.0, timeout)
        readers = [icmp] + ([tcp_raw] if tcp_raw else []) + [s for s, _ in udp.values()]
        for _ in range(100000):  # bounded even under a flood
            waiting = {n for n in waiting if not results[n].answered}
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not waiting:
                break
            ready, _, _ = select.select(readers, [], [], remaining)
            for s in ready:
                if s is icmp:
                    try:
                        pkt = icmp.recv(65535)
                    except OSError:
                        continue
                    m = match_icmp(pkt, probes, results, gateway)
                    if m:
                        answered(*m)
                elif s is tcp_raw:
                    try:
                        pkt = tcp_raw.recv(65535)
                    except OSError:
                        continue
                    m = match_tcp(pkt, probes, results, gateway)
                    if m:
                        answered(m[0], m[1], gateway)
                else:
                    sock, p = udp[s.fileno()]
                    try:
                        data = sock.recv(65535)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        answered(p.name, _errno_label(exc), None)
                        continue
                    label = "udp-reply"
                    if p.port in (craft.IKE_PORT, craft.NATT_PORT):
                        ans = craft.parse_ike_answer(data)
                        if ans.is_response and ans.initiator_spi == p.spi:
                            label = f"ike:{ans.kind}"
                    answered(p.name, label, gateway)
    finally:
        for s in held:
            s.close()
    return SendOutcome(src, mtu, results, round(time.monotonic() - t0, 3))


def check_gateway(gateway: str) -> str:
    """The gateway as a normalised IPv4 address (ValueError otherwise)."""
    ip = ipaddress.ip_address(str(gateway).strip())
    if ip.version != 4:
        raise ValueError("only IPv4 gateways are supported")
    return str(ip)
