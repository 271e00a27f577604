"""Read pcap and pcapng files record by record, strictly, with scapy's readers.

scapy's :class:`~scapy.utils.RawPcapReader` and :class:`~scapy.utils.RawPcapNgReader`
decode the containers (classic pcap in both byte orders, micro- and nanoseconds; pcapng
with several sections and interfaces, ``if_tsresol``, Enhanced, Simple and obsolete
Packet blocks). On a truncated or corrupt record they stop quietly (a warning on the
log), which would turn a damaged capture into a wrong diagnosis ("the server never saw
it"). So the file is handed to them through :class:`_Tracked`, which knows the byte
offset of every record and whether a read came up short, and a stop that is not at the
end of the file raises :class:`CaptureInputError` naming the file and the offset.
Either container may be gzip-compressed. Frames are raw link-layer bytes; the layers
above are decoded in :mod:`aovpn_lab.capture.packets`.

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

from scapy.error import Scapy_Exception
from scapy.utils import RawPcapNgReader, RawPcapReader

from .errors import CaptureInputError

__all__ = ["MAX_RECORD", "CaptureInfo", "Frame", "read_frames", "sniff_format"]

PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
#: A record larger than this is corruption, not a packet (jumbo frames and GRO stay below).
MAX_RECORD = 1 << 18
_PCAP_RECORD_HEADER = 16

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


class _Tracked:
    """The file as scapy's readers see it: counts bytes, remembers short reads and errors."""

    def __init__(self, f: BinaryIO, path: Path):
        self.f, self.path, self.name = f, path, str(path)
        self.pos = 0
        self.short = False        # a read returned fewer bytes than asked for
        self.last = b""           # what the last read returned
        self.error: BaseException | None = None

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.f.read(n)
        except (OSError, EOFError, zlib.error) as exc:  # a damaged gzip stream
            self.error = exc
            raise OSError(str(exc)) from exc
        data = data or b""
        self.pos += len(data)
        self.last = data
        if n is not None and 0 <= n != len(data):
            self.short = True
        return data

    def check(self) -> None:
        """Raise the read error a reader swallowed (a damaged gzip stream)."""
        if self.error is not None:
            raise OSError(self.error) from None

    def seek(self, pos: int) -> None:
        self.f.seek(pos)
        self.pos = pos

    def close(self) -> None:
        self.f.close()


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
    f.seek(0)
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=f, mode="rb"), True  # type: ignore[return-value]
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
    stream = _Tracked(f, p)
    try:
        kind = _classify(p, stream.read(4))
        info.format = kind + ("-gzip" if gz else "")
        stream.seek(0)
        frames = _pcap(p, stream) if kind == "pcap" else _pcapng(p, stream)
        for frame in frames:
            info.frames += 1
            if info.first_ts is None:
                info.first_ts = frame.ts
            info.last_ts = frame.ts
            info.linktypes.add(frame.linktype)
            yield frame
        stream.check()
    except OSError as exc:
        if gz:
            raise CaptureInputError(p, f"gzip stream is damaged ({stream.error or exc})", _HINT_TRUNCATED) from None
        raise CaptureInputError(p, f"cannot be read ({exc})") from None
    finally:
        stream.close()


def _reader(cls: type, stream: _Tracked, complaint: str):
    """A scapy reader on the stream, past the file header; ``complaint`` says what is wrong ({pos}: bytes read)."""
    try:
        return cls(stream)
    except Scapy_Exception:
        stream.check()
        what, hint = ("is truncated", _HINT_TRUNCATED) if stream.short else ("is corrupt", _HINT_FORMAT)
        raise CaptureInputError(stream.path, f"{what}: {complaint.format(pos=stream.pos)}", hint) from None


def _pcap(p: Path, stream: _Tracked) -> Iterator[Frame]:
    reader = _reader(RawPcapReader, stream, "the pcap file header needs 24 bytes, the file has {pos}")
    linktype = reader.linktype & 0x0FFFFFFF  # upper bits: FCS length flags
    unit = 1e-9 if reader.nano else 1e-6
    index = 0
    while True:
        offset, stream.short = stream.pos, False
        try:
            data, meta = reader._read_packet(size=MAX_RECORD)
        except EOFError:
            stream.check()
            if stream.pos == offset:
                return
            raise CaptureInputError(p, f"is truncated: record {index + 1} at byte {offset} has only "
                                       f"{stream.pos - offset} of its {_PCAP_RECORD_HEADER} header bytes",
                                    _HINT_TRUNCATED) from None
        index += 1
        if meta.caplen > MAX_RECORD:
            raise CaptureInputError(p, f"is corrupt: record {index} at byte {offset} claims {meta.caplen} "
                                       "captured bytes", _HINT_FORMAT)
        if len(data) < meta.caplen:
            raise CaptureInputError(p, f"is truncated: record {index} at byte {offset} claims {meta.caplen} "
                                       f"bytes but only {len(data)} remain", _HINT_TRUNCATED)
        yield Frame(index, meta.sec + meta.usec * unit, linktype, data, max(meta.wirelen, meta.caplen))


class _StrictNgReader(RawPcapNgReader):
    """scapy's pcapng reader, raising where it would skip or stop quietly."""

    f: _Tracked
    block_at = 0

    def _read_block(self, size=MAX_RECORD):
        stream = self.f
        self.block_at, stream.short = stream.pos, False
        try:
            return super()._read_block(size)
        except EOFError:
            stream.check()
            if stream.pos == self.block_at:
                raise
            what = "is truncated" if stream.short else "is corrupt"
            hint = _HINT_TRUNCATED if stream.short else _HINT_FORMAT
            raise CaptureInputError(stream.path, f"{what}: block at byte {self.block_at} ends after "
                                                 f"{stream.pos - self.block_at} bytes", hint) from None

    def _read_block_tail(self, blocklen):
        try:
            super()._read_block_tail(blocklen)
        except EOFError:
            if self.f.short:
                raise
            (trailer,) = struct.unpack(self.endian + "I", self.f.last)
            raise CaptureInputError(self.f.path, f"is corrupt: block at byte {self.block_at} ends with length "
                                                 f"{trailer}, not {blocklen}", _HINT_FORMAT) from None

    def _read_block_shb(self):
        self.interfaces = []  # interface numbers start again in every section
        super()._read_block_shb()

    def _check_interface_id(self, intid):
        if intid >= len(self.interfaces):  # scapy would skip the packet (or stop, before 2.7)
            raise CaptureInputError(self.f.path, f"is corrupt: packet block at byte {self.block_at} refers to "
                                                 f"interface {intid}, which was never described", _HINT_FORMAT)
        return True


def _pcapng(p: Path, stream: _Tracked) -> Iterator[Frame]:
    reader = _reader(_StrictNgReader, stream, "the first section header block is not a pcapng one (version 1)")
    index = 0
    while True:
        try:
            data, meta = reader._read_packet(size=MAX_RECORD)
        except EOFError:
            return
        index += 1
        ticks = (meta.tshigh << 32) | meta.tslow if meta.tshigh is not None else None
        ts = ticks / meta.tsresol if ticks is not None else 0.0
        yield Frame(index, ts, meta.linktype, bytes(data), max(meta.wirelen, len(data)))
