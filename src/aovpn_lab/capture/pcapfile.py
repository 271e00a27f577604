"""Read pcap and pcapng files record by record, strictly.

scapy's readers stop quietly (a warning on the log) at a truncated or corrupt record,
which would turn a damaged capture into a wrong diagnosis ("the server never saw
it"). This reader walks the container itself and raises :class:`CaptureInputError`
naming the file and the byte offset instead. It yields raw link-layer frames; the
layers above are decoded in :mod:`aovpn_lab.capture.packets`.

Supported: classic pcap (both byte orders, micro- and nanosecond timestamps), pcapng
(several sections and interfaces, ``if_tsresol``/``if_tsoffset``; Enhanced, Simple and
obsolete Packet blocks), either of them gzip-compressed.

    >>> frames = list(read_frames("client.pcap"))        # doctest: +SKIP
    >>> frames[0].linktype, frames[0].wirelen            # doctest: +SKIP
    (1, 386)
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import CaptureInputError

__all__ = ["MAX_RECORD", "CaptureInfo", "Frame", "read_frames", "sniff_format"]

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
#: A record larger than this is corruption, not a packet (jumbo frames and GRO stay below).
MAX_RECORD = 1 << 18

_HINT_FORMAT = ("give a pcap or pcapng file: `tcpdump -w FILE`, Wireshark 'Save As', or on Windows "
                "`pktmon etl2pcap` / etl2pcapng")
_HINT_TRUNCATED = ("the file ends in the middle of a record: copy it again after the capture has "
                   "stopped (tcpdump -U writes whole packets)")


@dataclass(slots=True)
class Frame:
    """One captured link-layer frame."""

    index: int        # 1-based record number in the file
    ts: float         # seconds since the epoch
    linktype: int     # LINKTYPE_* of the interface
    data: bytes       # captured bytes (may be shorter than the frame: snaplen)
    wirelen: int      # length of the frame on the wire


@dataclass
class CaptureInfo:
    path: str
    format: str = ""          # pcap | pcapng (+ "-gzip")
    frames: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    linktypes: set[int] | None = None


def _open(path: Path) -> tuple[BinaryIO, bool]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - returned to the caller, closed by it
    except FileNotFoundError:
        raise CaptureInputError(path, "no such file", "check the path of the capture") from None
    except IsADirectoryError:
        raise CaptureInputError(path, "is a directory, not a capture file") from None
    except OSError as exc:
        raise CaptureInputError(path, f"cannot be read ({exc.strerror or exc})") from None
    head = f.read(2)
    if head == GZIP_MAGIC:
        f.seek(0)
        return gzip.GzipFile(fileobj=f, mode="rb"), True  # type: ignore[return-value]
    f.seek(0)
    return f, False


def sniff_format(path: str | os.PathLike) -> str:
    """``pcap``, ``pcapng`` (optionally ``-gzip``) or raise :class:`CaptureInputError`."""
    p = Path(path)
    f, gz = _open(p)
    try:
        try:
            magic = f.read(4)
        except (OSError, EOFError, zlib.error):
            raise CaptureInputError(p, "is a damaged gzip file", _HINT_FORMAT) from None
    finally:
        f.close()
    return _classify(p, magic) + ("-gzip" if gz else "")


def _classify(p: Path, magic: bytes) -> str:
    if not magic:
        raise CaptureInputError(p, "is empty (0 bytes): tcpdump never wrote to it",
                                "check that the capture really ran (`tcpdump -i IF -w FILE`)")
    if magic in PCAP_MAGICS:
        return "pcap"
    if magic == PCAPNG_SHB:
        return "pcapng"
    if len(magic) < 4:
        raise CaptureInputError(p, f"is too short to be a capture ({len(magic)} bytes)", _HINT_FORMAT)
    shown = " ".join(f"{b:02x}" for b in magic)
    raise CaptureInputError(p, f"is not a pcap or pcapng capture (starts with {shown})", _HINT_FORMAT)


def read_frames(path: str | os.PathLike, info: CaptureInfo | None = None) -> Iterator[Frame]:
    """Yield every frame of the capture; raise :class:`CaptureInputError` on damage.

    ``info`` (optional) is filled in while reading.
    """
    p = Path(path)
    f, gz = _open(p)
    info = info if info is not None else CaptureInfo(str(p))
    info.linktypes = set()
    try:
        try:
            magic = f.read(4)
            kind = _classify(p, magic)
            info.format = kind + ("-gzip" if gz else "")
            reader = _pcap(p, f, magic) if kind == "pcap" else _pcapng(p, f)
            for frame in reader:
                info.frames += 1
                if info.first_ts is None:
                    info.first_ts = frame.ts
                info.last_ts = frame.ts
                info.linktypes.add(frame.linktype)
                yield frame
        except (OSError, EOFError, zlib.error) as exc:
            if gz:
                raise CaptureInputError(p, f"gzip stream is damaged ({exc})", _HINT_TRUNCATED) from None
            raise CaptureInputError(p, f"cannot be read ({exc})") from None
    finally:
        f.close()


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


def _pcap(p: Path, f: BinaryIO, magic: bytes) -> Iterator[Frame]:
    endian, unit = PCAP_MAGICS[magic]
    hdr = _read_exact(f, 20)
    if len(hdr) < 20:
        raise CaptureInputError(p, f"is truncated: the pcap file header needs 24 bytes, the file has "
                                   f"{4 + len(hdr)}", _HINT_TRUNCATED)
    _vmaj, _vmin, _tz, _sig, _snaplen, linktype = struct.unpack(endian + "HHiIII", hdr)
    linktype &= 0x0FFFFFFF  # upper bits: FCS length flags
    offset = 24
    index = 0
    while True:
        rec = _read_exact(f, 16)
        if not rec:
            return
        index += 1
        if len(rec) < 16:
            raise CaptureInputError(p, f"is truncated: record {index} at byte {offset} has only "
                                       f"{len(rec)} of its 16 header bytes", _HINT_TRUNCATED)
        sec, frac, caplen, wirelen = struct.unpack(endian + "IIII", rec)
        if caplen > MAX_RECORD:
            raise CaptureInputError(p, f"is corrupt: record {index} at byte {offset} claims {caplen} "
                                       "captured bytes", _HINT_FORMAT)
        data = _read_exact(f, caplen)
        if len(data) < caplen:
            raise CaptureInputError(p, f"is truncated: record {index} at byte {offset} claims {caplen} "
                                       f"bytes but only {len(data)} remain", _HINT_TRUNCATED)
        offset += 16 + caplen
        yield Frame(index, sec + frac * unit, linktype, data, max(wirelen, caplen))


_SHB_BOM = {b"\x1a\x2b\x3c\x4d": ">", b"\x4d\x3c\x2b\x1a": "<"}


def _options(body: bytes, endian: str) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    off = 0
    while off + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, off)
        if code == 0:
            break
        opts.setdefault(code, body[off + 4: off + 4 + length])
        off += 4 + length + (-length % 4)
    return opts


def _pcapng(p: Path, f: BinaryIO) -> Iterator[Frame]:
    endian = "<"
    # (linktype, snaplen, seconds per tick, offset seconds) per interface of this section
    interfaces: list[tuple[int, int, float, int]] = []
    offset = 0
    index = 0
    first = True
    while True:
        if first:
            head = PCAPNG_SHB + _read_exact(f, 4)  # the magic was read by read_frames
        else:
            head = _read_exact(f, 8)
            if not head:
                return
        if len(head) < 8:
            raise CaptureInputError(p, f"is truncated: block header at byte {offset} is incomplete",
                                    _HINT_TRUNCATED)
        btype_raw, blen_raw = head[:4], head[4:8]
        if btype_raw == PCAPNG_SHB:
            bom = _read_exact(f, 4)
            if len(bom) < 4:
                raise CaptureInputError(p, f"is truncated: section header at byte {offset} is incomplete",
                                        _HINT_TRUNCATED)
            if bom not in _SHB_BOM:
                raise CaptureInputError(p, f"is corrupt: section header at byte {offset} has a bad "
                                           "byte-order magic", _HINT_FORMAT)
            endian = _SHB_BOM[bom]
            interfaces = []
            (blen,) = struct.unpack(endian + "I", blen_raw)
            consumed = 12
        else:
            (blen,) = struct.unpack(endian + "I", blen_raw)
            consumed = 8
        first = False
        (btype,) = struct.unpack(endian + "I", btype_raw)
        if blen < 12 or blen % 4 or blen > MAX_RECORD + 64 or blen < consumed + 4:
            raise CaptureInputError(p, f"is corrupt: block at byte {offset} has length {blen}",
                                    _HINT_FORMAT)
        rest = _read_exact(f, blen - consumed)
        if len(rest) < blen - consumed:
            raise CaptureInputError(p, f"is truncated: block at byte {offset} claims {blen} bytes but "
                                       f"only {consumed + len(rest)} remain", _HINT_TRUNCATED)
        (trailer,) = struct.unpack(endian + "I", rest[-4:])
        if trailer != blen:
            raise CaptureInputError(p, f"is corrupt: block at byte {offset} ends with length {trailer}, "
                                       f"not {blen}", _HINT_FORMAT)
        body = rest[:-4]
        block_at = offset
        offset += blen
        if btype == 0x0A0D0D0A:
            if len(body) < 12:
                raise CaptureInputError(p, f"is corrupt: section header at byte {block_at} is too short",
                                        _HINT_FORMAT)
            (major,) = struct.unpack_from(endian + "H", body, 0)
            if major != 1:
                raise CaptureInputError(p, f"uses pcapng major version {major}, only 1 is known",
                                        _HINT_FORMAT)
            continue
        if btype == 1:  # Interface Description Block
            if len(body) < 8:
                raise CaptureInputError(p, f"is corrupt: interface block at byte {block_at} is too short",
                                        _HINT_FORMAT)
            linktype, _res, snaplen = struct.unpack_from(endian + "HHI", body, 0)
            opts = _options(body[8:], endian)
            tick = 1e-6
            if opts.get(9):
                v = opts[9][0]
                tick = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
            tsoff = struct.unpack(endian + "q", opts[14][:8])[0] if len(opts.get(14, b"")) >= 8 else 0
            interfaces.append((linktype, snaplen, tick, tsoff))
            continue
        if btype in (6, 2, 3):
            index += 1
            if btype == 3:  # Simple Packet Block: interface 0, no timestamp
                if len(body) < 4:
                    raise CaptureInputError(p, f"is corrupt: packet block at byte {block_at} is too short",
                                            _HINT_FORMAT)
                (wirelen,) = struct.unpack_from(endian + "I", body, 0)
                ifid, ts_raw, data = 0, None, body[4:4 + wirelen]
                caplen = len(data)
            else:
                fmt = endian + ("IIIII" if btype == 6 else "HHIIII")
                need = struct.calcsize(fmt)
                if len(body) < need:
                    raise CaptureInputError(p, f"is corrupt: packet block at byte {block_at} is too short",
                                            _HINT_FORMAT)
                vals = struct.unpack_from(fmt, body, 0)
                if btype == 6:
                    ifid, hi, lo, caplen, wirelen = vals
                else:
                    ifid, _drops, hi, lo, caplen, wirelen = vals
                ts_raw = (hi << 32) | lo
                if need + caplen > len(body):
                    raise CaptureInputError(p, f"is corrupt: packet block at byte {block_at} claims {caplen} "
                                               "bytes of data that it does not hold", _HINT_FORMAT)
                data = body[need:need + caplen]
            if ifid >= len(interfaces):
                raise CaptureInputError(p, f"is corrupt: packet block at byte {block_at} refers to "
                                           f"interface {ifid}, which was never described", _HINT_FORMAT)
            linktype, _snap, tick, tsoff = interfaces[ifid]
            ts = (ts_raw * tick + tsoff) if ts_raw is not None else 0.0
            yield Frame(index, ts, linktype, bytes(data), max(wirelen, caplen))
        # every other block type (statistics, name resolution, custom, ...) is skipped
