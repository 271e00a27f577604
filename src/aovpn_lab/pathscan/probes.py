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

The parts: :mod:`.plan` (probes and their tags), :mod:`.packets` (their bytes),
:mod:`.answers` (which probe an answer belongs to), :mod:`.outcome` (what happened to
each probe); this module sends and listens, and names them all.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time

from aovpn_lab.ike import craft

from .answers import errno_label, icmp_label, match_icmp, match_tcp
from .outcome import SendOutcome, SendResult
from .packets import build_esp, build_fragments, build_ike_datagram, build_l2tp_sccrq, build_tcp_syn
from .plan import (
    DEFAULT_CHECKS,
    DEFAULT_FRAGMENT_SIZES,
    IP_HDR,
    NEEDED_PORTS,
    PROTO_ESP,
    PROTO_TCP,
    PROTO_UDP,
    TAG_PREFIX,
    UDP_HDR,
    Probe,
    parse_check,
    plan_probes,
)

__all__ = [
    "DEFAULT_CHECKS",
    "DEFAULT_FRAGMENT_SIZES",
    "NEEDED_PORTS",
    "TAG_PREFIX",
    "PROTO_TCP",
    "PROTO_UDP",
    "PROTO_ESP",
    "Probe",
    "SendOutcome",
    "SendResult",
    "build_esp",
    "build_fragments",
    "build_ike_datagram",
    "build_l2tp_sccrq",
    "build_tcp_syn",
    "check_gateway",
    "errno_label",
    "icmp_label",
    "match_icmp",
    "match_tcp",
    "parse_check",
    "plan_probes",
    "run_probes",
]

_IP_MTU = getattr(socket, "IP_MTU", 14)


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


class _Run:
    """The sockets and records of one :func:`run_probes` call."""

    def __init__(self, probes: list[Probe], gateway: str, src: str, mtu: int, t0: float) -> None:
        self.probes, self.gateway, self.src, self.mtu, self.t0 = probes, gateway, src, mtu, t0
        self.results = {p.name: SendResult(p.name) for p in probes}
        self.held: list[socket.socket] = []
        self.udp: dict[int, tuple[socket.socket, Probe]] = {}
        self.sent_at: dict[str, float] = {}
        self.tcp_raw: socket.socket | None = None

    def _hold(self, s: socket.socket) -> socket.socket:
        self.held.append(s)
        return s

    def open(self) -> None:
        """The raw sockets: one to send crafted packets, ICMP and (for SYNs) TCP to listen."""
        self.raw = self._hold(socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW))
        self.icmp = self._hold(socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
        self.icmp.setblocking(False)
        if any(p.kind == "tcp-syn" for p in self.probes):
            self.tcp_raw = self._hold(socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP))
            self.tcp_raw.setblocking(False)

    def close(self) -> None:
        for s in self.held:
            s.close()

    # -- sending

    def _udp_for(self, p: Probe, r: SendResult) -> socket.socket:
        s = self._hold(_udp_socket(self.src, self.gateway, p.port))
        r.sport = s.getsockname()[1]
        return s

    def _send_udp(self, p: Probe, r: SendResult) -> None:
        s = self._udp_for(p, r)
        if p.kind == "ike":
            data = build_ike_datagram(p, (self.src, r.sport), (self.gateway, p.port))
        else:
            data = build_l2tp_sccrq(p.tag)
        self.sent_at[p.name] = time.monotonic()
        s.send(data)
        r.ip_sizes = [IP_HDR + UDP_HDR + len(data)]
        self.udp[s.fileno()] = (s, p)
        r.packets, r.sent = 1, True

    def _send_fragments(self, p: Probe, r: SendResult) -> None:
        s = self._udp_for(p, r)  # receives answers and ICMP errors
        ike_size = p.size - IP_HDR - UDP_HDR - len(craft.NON_ESP_MARKER)
        data = build_ike_datagram(p, (self.src, r.sport), (self.gateway, p.port), ike_size)
        frags = build_fragments(self.src, self.gateway, r.sport, p.port, data, p.ip_id, self.mtu)
        self.sent_at[p.name] = time.monotonic()
        self.udp[s.fileno()] = (s, p)
        for f in frags:
            self.raw.sendto(f, (self.gateway, 0))
            r.packets += 1
            r.ip_sizes.append(len(f))
        r.sent = True

    def _send_raw(self, p: Probe, r: SendResult, pkt: bytes) -> None:
        self.sent_at[p.name] = time.monotonic()
        self.raw.sendto(pkt, (self.gateway, 0))
        r.packets, r.ip_sizes, r.sent = 1, [len(pkt)], True

    def _send_syn(self, p: Probe, r: SendResult) -> None:
        hold = self._hold(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        hold.bind((self.src, 0))  # reserves the source port while we wait
        r.sport = hold.getsockname()[1]
        self._send_raw(p, r, build_tcp_syn(p, self.src, self.gateway, r.sport))

    def send(self, p: Probe) -> None:
        """Put one probe on the wire; a send error goes into its result."""
        r = self.results[p.name]
        try:
            if p.kind in ("ike", "l2tp"):
                self._send_udp(p, r)
            elif p.kind == "frag":
                self._send_fragments(p, r)
            elif p.kind == "esp":
                self._send_raw(p, r, build_esp(p, self.src, self.gateway))
            elif p.kind == "tcp-syn":
                self._send_syn(p, r)
        except OSError as exc:
            r.error = f"{type(exc).__name__}: {exc}"

    # -- listening

    def _answered(self, name: str, label: str, by: str | None) -> None:
        r = self.results[name]
        if r.answered:
            return
        r.answered, r.answer, r.answered_by = True, label, by
        r.rtt_ms = round((time.monotonic() - self.sent_at.get(name, self.t0)) * 1000, 2)

    def _read_udp(self, s: socket.socket) -> None:
        sock, p = self.udp[s.fileno()]
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            return
        except OSError as exc:
            self._answered(p.name, errno_label(exc), None)
            return
        label = "udp-reply"
        if p.port in (craft.IKE_PORT, craft.NATT_PORT):
            ans = craft.parse_ike_answer(data)
            if ans.is_response and ans.initiator_spi == p.spi:
                label = f"ike:{ans.kind}"
        self._answered(p.name, label, self.gateway)

    def _read(self, s: socket.socket) -> None:
        if s is self.icmp or s is self.tcp_raw:
            try:
                pkt = s.recv(65535)
            except OSError:
                return
            if s is self.icmp:
                m = match_icmp(pkt, self.probes, self.results, self.gateway)
                if m:
                    self._answered(*m)
            else:
                t = match_tcp(pkt, self.probes, self.results, self.gateway)
                if t:
                    self._answered(t[0], t[1], self.gateway)
        else:
            self._read_udp(s)

    def collect(self, timeout: float) -> None:
        """Read answers until every answerable probe has one or ``timeout`` s have passed."""
        waiting = {p.name for p in self.probes if p.answerable and self.results[p.name].sent}
        deadline = time.monotonic() + max(0.0, timeout)
        readers = ([self.icmp] + ([self.tcp_raw] if self.tcp_raw else [])
                   + [s for s, _ in self.udp.values()])
        for _ in range(100000):  # bounded even under a flood
            waiting = {n for n in waiting if not self.results[n].answered}
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not waiting:
                break
            ready, _, _ = select.select(readers, [], [], remaining)
            for s in ready:
                self._read(s)


def run_probes(probes: list[Probe], gateway: str, *, timeout: float = 1.0) -> SendOutcome:
    """Send every probe once to ``gateway`` (IPv4), then collect answers for ``timeout`` s.

    Returns early only when every probe that can be answered has been.  Raises
    PermissionError without CAP_NET_RAW; per-probe send errors go into the results.
    """
    t0 = time.monotonic()
    src, mtu = _route_info(gateway)
    run = _Run(probes, gateway, src, mtu, t0)
    try:
        run.open()
        for p in probes:
            run.send(p)
        run.collect(timeout)
    finally:
        run.close()
    return SendOutcome(src, mtu, run.results, round(time.monotonic() - t0, 3))


def check_gateway(gateway: str) -> str:
    """The gateway as a normalised IPv4 address (ValueError otherwise)."""
    ip = ipaddress.ip_address(str(gateway).strip())
    if ip.version != 4:
        raise ValueError("only IPv4 gateways are supported")
    return str(ip)
