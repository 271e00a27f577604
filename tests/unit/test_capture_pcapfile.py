"""aovpn_lab.capture.pcapfile: strict pcap/pcapng reading and clear errors for bad files."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from aovpn_lab.capture.errors import CaptureInputError
from aovpn_lab.capture.pcapfile import CaptureInfo, read_frames, sniff_format
from aovpn_lab.errors import AovpnError

PCAP_DIR = Path(__file__).resolve().parents[1] / "data" / "pcap"
SAMPLE = PCAP_DIR / "success-small-client.pcap"


def frames(path):
    return list(read_frames(path))


def pcap_bytes(records, *, linktype=1, endian="<", nano=False) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for ts, data, wirelen in records:
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nano else 1e6))
        out += struct.pack(endian + "IIII", sec, frac, len(data), wirelen) + data
    return out


def _block(btype: int, body: bytes, endian="<") -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)


def pcapng_bytes(records, *, linktype=1, tsresol: int | None = None, endian="<", ifid=0) -> bytes:
    shb = _block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)
    opts = b""
    if tsresol is not None:
        opts = struct.pack(endian + "HHB3x", 9, 1, tsresol) + struct.pack(endian + "HH", 0, 0)
    idb = _block(1, struct.pack(endian + "HHI", linktype, 0, 65535) + opts, endian)
    out = shb + idb
    tick = 10.0 ** -(tsresol if tsresol is not None else 6)
    for ts, data, wirelen in records:
        t = round(ts / tick)
        out += _block(6, struct.pack(endian + "IIIII", ifid, t >> 32, t & 0xFFFFFFFF, len(data), wirelen) + data,
                      endian)
    return out


def test_recorded_sample_reads_with_info():
    info = CaptureInfo(str(SAMPLE))
    got = list(read_frames(SAMPLE, info))
    assert info.format == "pcap" and info.frames == len(got) == 8
    assert info.linktypes == {1}
    assert got[0].index == 1 and got[-1].index == 8
    assert got[0].ts <= got[-1].ts
    # the recorded files are trimmed: captured bytes can be fewer than the wire length
    assert all(f.wirelen >= len(f.data) for f in got)
    assert any(f.wirelen > len(f.data) for f in got)


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_nanoseconds(tmp_path, endian, nano):
    p = tmp_path / "x.pcap"
    p.write_bytes(pcap_bytes([(1700000000.25, b"\x01" * 60, 60), (1700000001.5, b"\x02" * 40, 1514)],
                             endian=endian, nano=nano, linktype=101))
    got = frames(p)
    assert [(f.linktype, len(f.data), f.wirelen) for f in got] == [(101, 60, 60), (101, 40, 1514)]
    assert got[0].ts == pytest.approx(1700000000.25) and got[1].ts == pytest.approx(1700000001.5)


def test_pcapng_written_by_hand(tmp_path):
    p = tmp_path / "x.pcapng"
    p.write_bytes(pcapng_bytes([(1700000000.125, b"\xaa" * 42, 42)], tsresol=9, linktype=276))
    (f,) = frames(p)
    assert sniff_format(p) == "pcapng"
    assert f.linktype == 276 and f.data == b"\xaa" * 42 and f.ts == pytest.approx(1700000000.125)


def test_pcapng_big_endian_and_second_section(tmp_path):
    a = pcapng_bytes([(10.0, b"\x01" * 20, 20)], endian=">", linktype=101)
    b = pcapng_bytes([(20.0, b"\x02" * 30, 30)], linktype=1)
    p = tmp_path / "x.pcapng"
    p.write_bytes(a + b)
    got = frames(p)
    assert [(f.linktype, f.data[:1], f.ts) for f in got] == [(101, b"\x01", 10.0), (1, b"\x02", 20.0)]


def test_pcapng_written_by_scapy_matches_pcap(tmp_path):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapNgWriter

    pkts = []
    for i in range(3):
        p = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="192.0.2.1", dst="192.0.2.2")
             / UDP(sport=500, dport=500) / (b"x" * (10 + i)))
        p.time = 1700000000 + i
        pkts.append(p)
    path = tmp_path / "scapy.pcapng"
    with PcapNgWriter(str(path)) as w:
        for p in pkts:
            w.write(p)
    got = frames(path)
    assert [f.data for f in got] == [bytes(p) for p in pkts]
    assert [int(f.ts) for f in got] == [1700000000, 1700000001, 1700000002]


def test_gzip_compressed_capture(tmp_path):
    p = tmp_path / "x.pcap.gz"
    p.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    assert sniff_format(p) == "pcap-gzip"
    assert [f.data for f in frames(p)] == [f.data for f in frames(SAMPLE)]


def _bad(tmp_path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("name,data,words", [
    ("empty.pcap", b"", "is empty (0 bytes)"),
    ("short.pcap", b"\xd4\xc3", "too short"),
    ("notes.txt", b"this is not a capture\n", "not a pcap or pcapng capture (starts with 74 68 69 73)"),
    ("header.pcap", b"\xd4\xc3\xb2\xa1" + b"\x00" * 6, "pcap file header needs 24 bytes"),
])
def test_not_a_capture(tmp_path, name, data, words):
    p = _bad(tmp_path, name, data)
    with pytest.raises(CaptureInputError) as ei:
        frames(p)
    assert str(p) in str(ei.value) and words in str(ei.value)
    assert isinstance(ei.value, AovpnError) and ei.value.hint


def test_truncated_pcap_record(tmp_path):
    data = SAMPLE.read_bytes()
    p = _bad(tmp_path, "cut.pcap", data[:-10])
    with pytest.raises(CaptureInputError, match=r"is truncated: record 8 at byte \d+ claims \d+ bytes but only"):
        frames(p)
    p2 = _bad(tmp_path, "cut-header.pcap", data[:24 + 16 + len(frames(SAMPLE)[0].data) + 7])
    with pytest.raises(CaptureInputError, match="record 2 .* only 7 of its 16 header bytes"):
        frames(p2)


def test_absurd_record_length_is_corruption(tmp_path):
    data = bytearray(pcap_bytes([(1.0, b"\x00" * 20, 20)]))
    struct.pack_into("<I", data, 24 + 8, 10_000_000)
    p = _bad(tmp_path, "corrupt.pcap", bytes(data))
    with pytest.raises(CaptureInputError, match="corrupt: record 1 .* claims 10000000 captured bytes"):
        frames(p)


def test_truncated_and_corrupt_pcapng(tmp_path):
    good = pcapng_bytes([(1.0, b"\x00" * 40, 40), (2.0, b"\x00" * 40, 40)])
    with pytest.raises(CaptureInputError, match="is truncated: block at byte"):
        frames(_bad(tmp_path, "cut.pcapng", good[:-20]))
    bad_trailer = bytearray(good)
    bad_trailer[-1] ^= 0xFF
    with pytest.raises(CaptureInputError, match="ends with length"):
        frames(_bad(tmp_path, "trailer.pcapng", bytes(bad_trailer)))
    with pytest.raises(CaptureInputError, match="refers to interface 3"):
        frames(_bad(tmp_path, "ifid.pcapng", pcapng_bytes([(1.0, b"\x00" * 40, 40)], ifid=3)))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CaptureInputError, match="no such file"):
        frames(tmp_path / "nope.pcap")
    with pytest.raises(CaptureInputError, match="is a directory"):
        frames(tmp_path)


def test_damaged_gzip(tmp_path):
    z = gzip.compress(SAMPLE.read_bytes())
    p = _bad(tmp_path, "x.pcap.gz", z[: len(z) // 2])
    with pytest.raises(CaptureInputError, match="gzip"):
        frames(p)
