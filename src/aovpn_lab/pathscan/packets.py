"""The bytes of each probe: IKE datagrams, L2TP SCCRQ, ESP, TCP SYN, self-made fragments.

Pure: nothing here touches a socket.  Crafted IP packets are scapy layers turned to bytes.
"""
from __future__ import annotations

import os
import struct

from aovpn_lab.ike import craft

from .plan import IP_HDR, PROTO_UDP, Probe

__all__ = ["build_l2tp_sccrq", "build_ike_datagram", "build_fragments", "build_esp", "build_tcp_syn"]


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
    body = whole[IP_HDR:]
    step = (mtu - IP_HDR) // 8 * 8
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
