"""The probes of a path scan, planned before anything is sent: names, ports and tags.

Every probe carries something unique that survives the path (and a NAT on it), so
the far-end capture can tell it from any other traffic (the table in
:mod:`aovpn_lab.pathscan.probes`).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from aovpn_lab.ike import numbers  # ports and marker only: building the CLI parser imports no scapy

__all__ = ["TAG_PREFIX", "DEFAULT_FRAGMENT_SIZES", "DEFAULT_CHECKS", "NEEDED_PORTS",
           "PROTO_TCP", "PROTO_UDP", "PROTO_ESP", "IP_HDR", "UDP_HDR",
           "Probe", "parse_check", "plan_probes"]

TAG_PREFIX = b"aovpn-pathscan-"
DEFAULT_FRAGMENT_SIZES = (1400, 1600, 3000, 6000)
DEFAULT_CHECKS = ("udp500", "udp4500", "tcp443", "esp", "udp1701") + tuple(
    f"frag4500:{n}" for n in DEFAULT_FRAGMENT_SIZES)
#: what an IKEv2 remote-access path needs (ESP only without NAT, TCP 443 only for SSTP)
NEEDED_PORTS = ("udp500", "udp4500")

PROTO_TCP, PROTO_UDP, PROTO_ESP = 6, 17, 50
IP_HDR, UDP_HDR = 20, 8
_MIN_FRAG_SIZE = 576  # an IKE_SA_INIT with the default offer plus padding fits above this
_SIMPLE = {
    "udp500": ("ike", PROTO_UDP, numbers.IKE_PORT),
    "udp4500": ("ike", PROTO_UDP, numbers.NATT_PORT),
    "tcp443": ("tcp-syn", PROTO_TCP, 443),
    "esp": ("esp", PROTO_ESP, None),
    "udp1701": ("l2tp", PROTO_UDP, 1701),
}


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
def _new_id(used_ids: set[int]) -> int:
    """A fresh non-zero IP identification, distinct from the ones in ``used_ids``."""
    while True:
        v = struct.unpack("!H", os.urandom(2))[0]
        if v and v not in used_ids:
            used_ids.add(v)
            return v


def _probe(name: str, base: str, size: int | None, tag: bytes, used_ids: set[int]) -> Probe:
    """One probe of check ``base`` with fresh random tags."""
    if base == "frag4500":
        spi = _nonzero(8)
        return Probe(name, "frag", PROTO_UDP, numbers.NATT_PORT, size=size, spi=spi,
                     ip_id=_new_id(used_ids), tag=tag, head=numbers.NON_ESP_MARKER + spi,
                     head_offset=UDP_HDR)
    kind, proto, port = _SIMPLE[base]
    if kind == "ike":
        spi = _nonzero(8)
        head = (numbers.NON_ESP_MARKER + spi) if port == numbers.NATT_PORT else spi
        return Probe(name, kind, proto, port, spi=spi, head=head, head_offset=UDP_HDR)
    if kind == "tcp-syn":
        seq = struct.unpack("!I", _nonzero(4))[0]
        return Probe(name, kind, proto, port, seq=seq, ip_id=_new_id(used_ids),
                     head=struct.pack("!HI", port, seq), head_offset=2)
    if kind == "esp":
        spi = struct.pack("!I", 0x100 + struct.unpack("!I", os.urandom(4))[0] % 0xFFFFFE00)
        seq = 1 + struct.unpack("!I", os.urandom(4))[0] % 0xFFFFFFFE
        return Probe(name, kind, proto, None, spi=spi, seq=seq, ip_id=_new_id(used_ids), tag=tag,
                     head=spi + struct.pack("!I", seq), head_offset=0)
    return Probe(name, kind, proto, port, tag=tag)  # l2tp


def plan_probes(checks=DEFAULT_CHECKS, token: str | None = None) -> list[Probe]:
    """Probes with fresh random tags, in sending order (duplicates removed)."""
    token = token or os.urandom(5).hex()
    seen: set[str] = set()
    used_ids: set[int] = set()
    probes: list[Probe] = []
    for raw in checks:
        base, size = parse_check(raw)
        name = base if size is None else f"frag4500:{size}"
        if name in seen:
            continue
        seen.add(name)
        tag = TAG_PREFIX + f"{token}-{len(probes)}".encode()
        probes.append(_probe(name, base, size, tag, used_ids))
    return probes
