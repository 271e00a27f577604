"""aovpn_lab.capture.packets and .ikewire: link layers, IP reassembly, IKE/ESP recognition."""
from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether

from aovpn_lab.capture import ikewire
from aovpn_lab.capture.packets import Reassembler, datagrams, decode_ip
from aovpn_lab.capture.pcapfile import Frame

MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
SPI_I, SPI_R = bytes.fromhex("1122334455667788"), bytes.fromhex("99aabbccddeeff00")


def ike(exch=35, flags=0x08, mid=1, body=b"\x00" * 100, *, first=46, skf=None, notifies=()) -> bytes:
    """An IKE message: SK/SKF payload (opaque) or a chain of notifies."""
    if notifies:
        pl = b""
        for i, n in enumerate(notifies):
            nxt = 41 if i + 1 < len(notifies) else 0
            pl += struct.pack("!BBHBBH", nxt, 0, 8, 0, 0, n)
        first = 41
    elif skf:
        pl = struct.pack("!BBHHH", 0, 0, 8 + len(body), *skf) + body
        first = 53
    else:
        pl = struct.pack("!BBH", 0, 0, 4 + len(body)) + body
    hdr = SPI_I + SPI_R + struct.pack("!BBBBII", first, 0x20, exch, flags, mid, 28 + len(pl))
    return hdr + pl


def frames_of(pkts, linktype=1, t0=100.0):
    return [Frame(i + 1, t0 + i * 0.001, linktype, bytes(p), len(bytes(p))) for i, p in enumerate(pkts)]


def udp(payload, sport=4500, dport=4500, src="192.0.2.200", dst="203.0.113.200", ident=7):
    return Ether(**MAC) / IP(src=src, dst=dst, id=ident) / UDP(sport=sport, dport=dport) / payload


def test_unfragmented_udp_datagram():
    (d,) = datagrams(frames_of([udp(b"\x00\x00\x00\x00" + ike())]))
    assert (d.src, d.dst, d.sport, d.dport, d.packets, d.fragmented, d.complete) == \
        ("192.0.2.200", "203.0.113.200", 4500, 4500, 1, False, True)
    assert d.ip_bytes == d.largest == 20 + 8 + 4 + 132


def test_fragments_reassembled_in_any_order():
    pkt = udp(b"\x00\x00\x00\x00" + ike(body=b"\x01" * 5000)).getlayer(IP)
    frs = fragment(pkt, fragsize=1480)
    assert len(frs) == 4
    shuffled = [frs[2], frs[0], frs[3], frs[1]]
    (d,) = datagrams(frames_of([Ether(**MAC) / f for f in shuffled], linktype=1))
    assert d.fragmented and d.complete and d.has_first and d.packets == 4
    assert d.largest == 1500 and d.ip_bytes == sum(len(f) for f in frs)
    assert d.payload == bytes(pkt[UDP])  # the whole UDP datagram, rebuilt
    assert d.sport == 4500 and d.frag_offsets == [0, 1480, 2960, 4440]


def test_missing_middle_fragment_is_incomplete_but_keeps_its_head():
    pkt = udp(b"\x00\x00\x00\x00" + ike(body=b"\x01" * 5000)).getlayer(IP)
    frs = fragment(pkt, fragsize=1480)
    (d,) = datagrams(frames_of([Ether(**MAC) / f for f in (frs[0], frs[1], frs[3])]))
    assert not d.complete and d.has_first and d.packets == 3
    rec = ikewire.classify(d)
    assert isinstance(rec, ikewire.IkeRecord) and rec.spi_i == SPI_I and rec.length == 28 + 4 + 5000


def test_missing_first_fragment_gives_a_headless_group():
    pkt = udp(b"\x00\x00\x00\x00" + ike(body=b"\x01" * 3000), ident=4242).getlayer(IP)
    frs = fragment(pkt, fragsize=1480)
    (d,) = datagrams(frames_of([Ether(**MAC) / f for f in frs[1:]]))
    assert not d.has_first and d.sport is None and d.ident == 4242 and d.packets == len(frs) - 1


def test_duplicate_fragment_is_counted_once():
    stats = {}
    pkt = udp(b"x" * 3000).getlayer(IP)
    frs = fragment(pkt, fragsize=1480)
    (d,) = datagrams(frames_of([Ether(**MAC) / f for f in [frs[0], frs[0], *frs[1:]]]), stats)
    assert d.complete and d.packets == len(frs) and stats["duplicates"] == 1 and stats["fragments"] == len(frs) + 1


def test_same_ip_id_far_apart_is_two_datagrams():
    r = Reassembler(timeout=30)
    pkt = udp(b"x" * 3000, ident=9).getlayer(IP)
    frs = fragment(pkt, fragsize=1480)
    [f1] = frames_of([Ether(**MAC) / frs[0]], t0=0.0)
    [f2] = frames_of([Ether(**MAC) / frs[1]], t0=100.0)
    out = r.add(decode_ip(f1)) + r.add(decode_ip(f2)) + r.flush()
    assert len(out) == 2 and not any(d.complete for d in out)


def test_snaplen_cut_fragments_are_complete_by_their_headers():
    pkt = udp(b"\x00\x00\x00\x00" + ike(body=b"\x01" * 3000)).getlayer(IP)
    fr = [Ether(**MAC) / f for f in fragment(pkt, fragsize=1480)]
    cut = [Frame(i + 1, 1.0 + i, 1, bytes(p)[:96], len(bytes(p))) for i, p in enumerate(fr)]
    (d,) = datagrams(cut)
    assert d.complete and d.packets == 3 and d.ip_bytes == sum(len(p) - 14 for p in fr)
    rec = ikewire.classify(d)
    assert rec.length == 28 + 4 + 3000 and rec.encrypted  # still readable from the first 96 bytes


def test_ipv6_fragments():
    p6 = (IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=77) /
          UDP(sport=500, dport=500) / ike(exch=34, flags=0x08, mid=0, body=b"\x02" * 2500))
    frs = fragment6(p6, 1280)
    (d,) = datagrams(frames_of([Ether(**MAC) / f for f in frs]))
    assert d.version == 6 and d.fragmented and d.complete and d.ident == 77 and d.packets == len(frs) >= 2
    rec = ikewire.classify(d)
    assert rec.exchange == 34 and rec.responder_port == 500


@pytest.mark.parametrize("linktype,head", [
    (113, b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 6 + b"\x00\x00" + b"\x08\x00"),        # Linux cooked v1
    (276, b"\x08\x00\x00\x00" + b"\x00\x00\x00\x02" + b"\x00\x01\x00\x06" + b"\x02" * 8),  # Linux cooked v2
    (0, struct.pack("<I", 2)),                                                       # BSD NULL
    (101, b""),                                                                      # raw IP
])
def test_link_types(linktype, head):
    ip = bytes(IP(src="192.0.2.200", dst="203.0.113.200") / UDP(sport=500, dport=500) / ike(34, 0x08, 0))
    (d,) = datagrams([Frame(1, 1.0, linktype, head + ip, len(head) + len(ip))])
    assert d.sport == 500 and isinstance(ikewire.classify(d), ikewire.IkeRecord)


def test_vlan_tagged_ethernet():
    from scapy.layers.l2 import Dot1Q

    p = Ether(**MAC) / Dot1Q(vlan=10) / IP(src="192.0.2.200", dst="203.0.113.200") / UDP(sport=500, dport=500) / \
        ike(34, 0x08, 0)
    (d,) = datagrams(frames_of([p]))
    assert d.dport == 500


def test_non_ip_frames_are_counted_not_fatal():
    stats = {}
    arp = Frame(1, 1.0, 1, b"\xff" * 12 + b"\x08\x06" + b"\x00" * 28, 42)
    junk = Frame(2, 1.0, 1, b"\x00" * 5, 5)
    assert list(datagrams([arp, junk], stats)) == [] and stats["non_ip"] == 2


def _one(payload, sport=4500, dport=4500, proto_esp=False):
    if proto_esp:
        p = Ether(**MAC) / IP(src="192.0.2.200", dst="203.0.113.200", proto=50) / payload
    else:
        p = udp(payload, sport, dport)
    (d,) = datagrams(frames_of([p]))
    return ikewire.classify(d)


def test_classify_ike_esp_keepalive():
    r = _one(ike(34, 0x08, 0, notifies=(16388, 16389, 16430)), 500, 500)
    assert isinstance(r, ikewire.IkeRecord) and not r.marker and not r.encrypted
    assert r.notifies == [16388, 16389, 16430] and r.from_initiator and not r.is_response
    r = _one(b"\x00" * 4 + ike(35, 0x20, 1))
    assert r.marker and r.encrypted and r.is_response and not r.from_initiator and r.responder_port == 4500
    r = _one(b"\x00" * 4 + ike(35, 0x08, 1, body=b"\x03" * 1200, skf=(2, 5)), sport=61000)
    assert r.skf == (2, 5) and r.responder_port == 4500  # NAT changed the client's port, not the server's
    esp = _one(struct.pack("!II", 0xC0FFEE01, 7) + b"\x00" * 64)
    assert isinstance(esp, ikewire.EspRecord) and esp.spi == 0xC0FFEE01 and esp.udp
    assert _one(b"\xff") == "keepalive"
    native = _one(struct.pack("!II", 0xABCD, 1) + b"\x00" * 40, proto_esp=True)
    assert isinstance(native, ikewire.EspRecord) and not native.udp and native.spi == 0xABCD


def test_classify_rejects_what_is_not_ike():
    assert _one(b"hello world, not ike at all....", 500, 500) is None
    zero_spi = b"\x00" * 8 + ike()[8:]
    assert _one(zero_spi, 500, 500) is None
    assert _one(b"x" * 40, 53, 53) is None


def test_fingerprint_identifies_retransmissions_not_retries():
    a = _one(ike(34, 0x08, 0, notifies=(16388, 16389)), 500, 500)
    b = _one(ike(34, 0x08, 0, notifies=(16388, 16389)), 500, 500)
    c = _one(ike(34, 0x08, 0, notifies=(16390, 16388, 16389)), 500, 500)  # retry with a COOKIE
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_names():
    assert ikewire.exchange_name(35) == "IKE_AUTH" and ikewire.exchange_name(99) == "EXCHANGE_99"
    assert ikewire.notify_name(14) == "NO_PROPOSAL_CHOSEN" and ikewire.notify_name(16430) == \
        "IKEV2_FRAGMENTATION_SUPPORTED" and ikewire.notify_name(16406) == "REDIRECT_SUPPORTED"
