"""Write a small copy of a capture that diagnoses the same as the original.

What the diagnosis reads is kept whole: link, IP and UDP headers, unencrypted IKE
messages (IKE_SA_INIT with its notifies). Encrypted IKE messages (SK/SKF) keep their IKE
header, the SK/SKF header and 96 bytes (IV: what tells one transmission from another),
ESP keeps SPI and sequence number, and non-first IP fragments keep their IP header
only. Every record keeps its original length, as a capture with a snap length would
(``tcpdump -s``). The output is classic pcap (microseconds).

    trim_capture("cell-client.pcapng", "small-client.pcap")   # doctest: +SKIP
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

from scapy.utils import RawPcapWriter

from ..ike import wire
from .errors import CaptureInputError
from .ikewire import NON_ESP_MARKER
from .packets import PROTO_ESP, PROTO_UDP, _l3, decode_ip
from .pcapfile import MAX_RECORD, Frame, read_frames

__all__ = ["keep_length", "trim_capture"]

ENCRYPTED_KEEP = wire.HEADER + 96


def keep_length(frame: Frame) -> int:
    """How many bytes of this frame the trimmed copy keeps."""
    got = _l3(frame)
    pkt = decode_ip(frame)
    if got is None or pkt is None:
        return len(frame.data)
    base = len(frame.data) - len(got[1]) + (pkt.ip_len - pkt.payload_len)
    if pkt.is_fragment and pkt.frag_offset > 0:
        return min(base, len(frame.data))
    keep = len(frame.data)
    if pkt.proto == PROTO_ESP:
        keep = base + 8
    elif pkt.proto == PROTO_UDP and len(frame.data) >= base + 8:
        sport, dport = struct.unpack_from("!HH", frame.data, base)
        data = frame.data[base + 8:]
        ike_at = None
        if wire.NATT_PORT in (sport, dport):
            if data[:4] == NON_ESP_MARKER:
                ike_at = base + 12
            elif len(data) > 1:
                keep = base + 8 + 8  # ESP-in-UDP: SPI and sequence number
        elif wire.IKE_PORT in (sport, dport):
            ike_at = base + 8
        if ike_at is not None and (msg := wire.decode(frame.data[ike_at:])) is not None and msg.encrypted:
            keep = ike_at + ENCRYPTED_KEEP
    return min(keep, len(frame.data))


def trim_capture(src: str | os.PathLike, dst: str | os.PathLike) -> dict[str, int]:
    """Write the trimmed copy of ``src`` to ``dst``; returns {"frames", "bytes"}."""
    frames = list(read_frames(src))
    linktypes = {f.linktype for f in frames}
    if len(linktypes) > 1:
        raise CaptureInputError(src, f"mixes link types {sorted(linktypes)}; cannot write one pcap")
    linktype = linktypes.pop() if linktypes else 1
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(dst) + ".tmp")
    with RawPcapWriter(str(tmp), linktype=linktype, endianness="<", snaplen=MAX_RECORD) as w:
        w.write_header(None)
        for f in frames:
            keep = keep_length(f)
            sec = int(f.ts)
            usec = round((f.ts - sec) * 1e6)
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            w.write_packet(f.data[:keep], sec=sec, usec=usec, caplen=keep, wirelen=max(f.wirelen, len(f.data)))
    size = tmp.stat().st_size
    tmp.replace(dst)
    return {"frames": len(frames), "bytes": size}
