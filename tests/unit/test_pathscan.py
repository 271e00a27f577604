"""Path scan: probe crafting, arrival matching and findings (no network traffic)."""
from __future__ import annotations

import argparse
import json
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from aovpn_lab.ike import craft
from aovpn_lab.pathscan import command, evidence, probes
from aovpn_lab.pathscan.evidence import Seen, match_arrivals, parse_ipv4
from aovpn_lab.pathscan.probes import (
    SendResult,
    build_esp,
    build_fragments,
    build_ike_datagram,
    build_l2tp_sccrq,
    build_tcp_syn,
    match_icmp,
    match_tcp,
    parse_check,
    plan_probes,
)
from aovpn_lab.pathscan.scan import CheckResult, PathReport, build_bpf, derive_findings

CLIENT, GW, ROUTER = "192.0.2.220", "203.0.113.220", "192.0.2.221"
SPORT = 40000


# ---------------------------------------------------------------------------
# planning and crafting
# ---------------------------------------------------------------------------


def test_default_plan_has_unique_tags():
    ps = plan_probes()
    assert [p.name for p in ps] == list(probes.DEFAULT_CHECKS)
    heads = [p.head for p in ps if p.head]
    tags = [p.tag for p in ps if p.tag]
    ids = [p.ip_id for p in ps if p.ip_id is not None]
    assert len(set(heads)) == len(heads) and len(set(tags)) == len(tags) and len(set(ids)) == len(ids)
    assert all(0 < i < 65536 for i in ids)
    by = {p.name: p for p in ps}
    assert by["udp4500"].head == craft.NON_ESP_MARKER + by["udp4500"].spi
    assert by["udp500"].head == by["udp500"].spi and len(by["udp500"].spi) == 8
    assert by["esp"].proto == 50 and len(by["esp"].spi) == 4 and struct.unpack("!I", by["esp"].spi)[0] >= 0x100


def test_plan_drops_duplicates_and_rejects_unknown_checks():
    assert [p.name for p in plan_probes(["udp500", "UDP500", "frag4500:3000", "frag4500:3000"])] == \
        ["udp500", "frag4500:3000"]
    assert parse_check("frag4500:6000") == ("frag4500", 6000)
    for bad in ("udp53", "frag4500:x", "frag4500:100", "frag4500:70000"):
        with pytest.raises(ValueError):
            parse_check(bad)


@pytest.mark.parametrize("size,count", [(1400, 1), (1500, 1), (1501, 2), (1600, 2), (3000, 3), (6000, 5)])
def test_fragment_counts_at_mtu_1500(size, count):
    p = plan_probes([f"frag4500:{size}"])[0]
    ike_size = size - 20 - 8 - 4
    data = build_ike_datagram(p, (CLIENT, SPORT), (GW, 4500), ike_size)
    frags = build_fragments(CLIENT, GW, SPORT, 4500, data, p.ip_id, 1500)
    assert len(frags) == count
    assert all(len(f) <= 1500 for f in frags)
    assert sum(len(f) - 20 for f in frags) + 20 == size
    seen = [parse_ipv4(f) for f in frags]
    assert all(s.ident == p.ip_id for s in seen)
    assert [s.more for s in seen] == [True] * (count - 1) + [False]
    assert all(s.offset % 8 == 0 for s in seen)
    whole = b"".join(s.payload for s in sorted(seen, key=lambda s: s.offset))
    udp = UDP(whole)
    assert udp.dport == 4500 and udp.len == size - 20
    # the reassembled datagram is a valid IKE_SA_INIT behind the non-ESP marker
    ike = bytes(udp.payload)
    assert ike[:4] == craft.NON_ESP_MARKER and ike[4:12] == p.spi
    ans = craft.parse_ike_answer(ike)
    assert ans.exchange == craft.IKE_SA_INIT and not ans.is_response and ans.error is None
    # checksum of the whole datagram (computed before fragmenting) is right
    assert IP(bytes(IP(src=CLIENT, dst=GW, proto=17) / Raw(whole)))[UDP].chksum == udp.chksum
    # every fragment but a short last one carries the probe's tag
    for s in seen[:-1]:
        assert p.tag in s.payload or s.offset == 0


def test_l2tp_sccrq_layout():
    msg = build_l2tp_sccrq(b"aovpn-pathscan-x", tunnel_id=7)
    flags, length, tunnel, session, ns, nr = struct.unpack_from("!HHHHHH", msg)
    assert flags == 0xC802 and length == len(msg) and (tunnel, session, ns, nr) == (0, 0, 0, 0)
    # first AVP: mandatory Message Type = 1 (SCCRQ)
    assert struct.unpack_from("!HHHH", msg, 12) == (0x8008, 0, 0, 1)
    assert b"aovpn-pathscan-x" in msg and msg.endswith(struct.pack("!HHHH", 0x8008, 0, 9, 7))


def test_esp_and_tcp_syn_headers():
    esp, syn = plan_probes(["esp", "tcp443"])
    e = parse_ipv4(build_esp(esp, CLIENT, GW))
    assert e.proto == 50 and e.payload[:8] == esp.head and esp.tag in e.payload and not e.is_fragment
    t = IP(build_tcp_syn(syn, CLIENT, GW, SPORT))
    assert t[TCP].flags == "S" and t[TCP].seq == syn.seq and t[TCP].dport == 443 and t.id == syn.ip_id


# ---------------------------------------------------------------------------
# arrival
# ---------------------------------------------------------------------------


def _wire(ps, mtu=1500):
    """What each probe puts on the wire, as Seen records at the far end."""
    out = {}
    for i, p in enumerate(ps):
        sport = SPORT + i
        if p.kind == "frag":
            data = build_ike_datagram(p, (CLIENT, sport), (GW, 4500), p.size - 32)
            pkts = build_fragments(CLIENT, GW, sport, 4500, data, p.ip_id, mtu)
        elif p.kind == "ike":
            data = build_ike_datagram(p, (CLIENT, sport), (GW, p.port))
            pkts = [bytes(IP(src=CLIENT, dst=GW) / UDP(sport=sport, dport=p.port) / Raw(data))]
        elif p.kind == "l2tp":
            pkts = [bytes(IP(src=CLIENT, dst=GW) / UDP(sport=sport, dport=1701)
                          / Raw(build_l2tp_sccrq(p.tag)))]
        elif p.kind == "esp":
            pkts = [build_esp(p, CLIENT, GW)]
        else:
            pkts = [build_tcp_syn(p, CLIENT, GW, sport)]
        out[p.name] = [parse_ipv4(b) for b in pkts]
    return out


def _flat(wire, skip=()):
    return [s for name, ss in wire.items() if name not in skip for s in ss]


def test_everything_arrives():
    ps = plan_probes()
    wire = _wire(ps)
    arr = match_arrivals(ps, _flat(wire), CLIENT, GW)
    assert all(a.arrived for a in arr.values())
    assert {n: a.fragments_arrived for n, a in arr.items()} == {n: len(w) for n, w in wire.items()}
    assert arr["udp4500"].dport == 4500 and arr["frag4500:6000"].dst == GW


def test_missing_fragment_means_not_arrived_and_is_counted():
    ps = plan_probes(["frag4500:6000", "frag4500:3000"])
    wire = _wire(ps)
    big = wire["frag4500:6000"]
    seen = [s for s in big if s.offset != big[2].offset] + wire["frag4500:3000"]
    arr = match_arrivals(ps, seen, CLIENT, GW)
    assert not arr["frag4500:6000"].arrived and arr["frag4500:6000"].fragments_arrived == 4
    assert arr["frag4500:3000"].arrived and arr["frag4500:3000"].fragments_arrived == 3


def test_first_fragment_dropped_rest_still_recognised():
    """A port filter drops only the first fragment; the others are matched by tag / IP ID."""
    ps = plan_probes(["frag4500:6000"])
    frags = _wire(ps)["frag4500:6000"]
    arr = match_arrivals(ps, frags[1:], CLIENT, GW)
    assert not arr["frag4500:6000"].arrived and arr["frag4500:6000"].fragments_arrived == 4
    # a lone short last fragment (no tag) is recognised by our IP ID + the client's address
    last = frags[-1]
    short = Seen(last.src, last.dst, 17, last.ident, last.offset, False, b"x" * 8, 8)
    assert match_arrivals(ps, [short], CLIENT, GW)["frag4500:6000"].fragments_arrived == 1
    assert match_arrivals(ps, [short], "198.51.100.9", GW)["frag4500:6000"].fragments_arrived == 0


def test_refragmented_on_the_path_still_complete():
    ps = plan_probes(["frag4500:3000"])
    data = build_ike_datagram(ps[0], (CLIENT, SPORT), (GW, 4500), 3000 - 32)
    # a hop with MTU 1000 re-fragments: same ID, more and smaller pieces
    frags = [parse_ipv4(b) for b in build_fragments(CLIENT, GW, SPORT, 4500, data, ps[0].ip_id, 1000)]
    a = match_arrivals(ps, frags, CLIENT, GW)["frag4500:3000"]
    assert a.arrived and a.fragments_arrived == 4


def test_echo_from_the_gateway_is_not_an_arrival():
    ps = plan_probes(["udp500", "udp1701", "frag4500:3000"])
    wire = _wire(ps)
    echoes = []
    for ss in wire.values():
        for s in ss:  # the same bytes coming back, ports swapped where there is a UDP header
            payload = s.payload
            if s.offset == 0 and s.proto == 17:
                sp, dp = struct.unpack_from("!HH", payload)
                payload = struct.pack("!HH", dp, sp) + payload[4:]
            echoes.append(Seen(GW, CLIENT, s.proto, s.ident ^ 1, s.offset, s.more, payload, s.payload_len))
    arr = match_arrivals(ps, echoes, CLIENT, GW)
    assert not any(a.arrived or a.fragments_arrived for a in arr.values())
    # and with the forward copies present, each probe is counted once
    arr = match_arrivals(ps, _flat(wire) + echoes, CLIENT, GW)
    assert [a.fragments_arrived for a in arr.values()] == [1, 1, 3]


def test_nat_on_the_path_keeps_matching():
    """Source NAT (new address and port) and a new IP ID: tags still match."""
    ps = plan_probes(["udp4500", "tcp443", "esp", "udp1701", "frag4500:1600"])
    nat = [Seen("198.51.100.77", s.dst, s.proto, (s.ident + 1000) % 65536, s.offset, s.more,
                (struct.pack("!H", 61000) + s.payload[2:]) if s.offset == 0 and s.proto in (6, 17)
                else s.payload, s.payload_len)
           for s in _flat(_wire(ps))]
    arr = match_arrivals(ps, nat, CLIENT, GW)
    assert all(a.arrived for a in arr.values()), arr


def test_unrelated_traffic_is_ignored():
    ps = plan_probes(["udp500", "udp4500", "tcp443", "esp"])
    other = [parse_ipv4(bytes(IP(src="192.0.2.1", dst=GW) / UDP(sport=500, dport=500) / Raw(b"\x11" * 60))),
             parse_ipv4(bytes(IP(src="192.0.2.1", dst=GW, proto=50) / Raw(b"\x00\x00\x01\x00" * 8))),
             parse_ipv4(bytes(IP(src="192.0.2.1", dst=GW) / TCP(dport=443, flags="S", seq=ps[2].seq + 1)))]
    assert not any(a.fragments_arrived for a in match_arrivals(ps, other, CLIENT, GW).values())
    # a SYN-ACK carrying our number as *sequence* is not our SYN either
    synack = parse_ipv4(bytes(IP(src=CLIENT, dst=GW) / TCP(sport=1, dport=443, flags="A", seq=ps[2].seq)))
    assert not match_arrivals(ps, [synack], CLIENT, GW)["tcp443"].fragments_arrived


def test_read_capture_ethernet_pcap(tmp_path):
    ps = plan_probes(["udp500", "frag4500:3000"])
    wire = _wire(ps)
    frames = [Ether() / IP(bytes(IP(src=s.src, dst=s.dst, proto=s.proto, id=s.ident,
                                     flags="MF" if s.more else 0, frag=s.offset // 8) / Raw(s.payload)))
              for s in _flat(wire)]
    frames.append(Ether() / Raw(b"\x00" * 40))  # not IP
    path = tmp_path / "far.pcap"
    wrpcap(str(path), frames)
    seen = evidence.read_capture(path)
    assert len(seen) == 4 and seen[0].ts > 0
    arr = match_arrivals(ps, seen, CLIENT, GW)
    assert arr["udp500"].arrived and arr["frag4500:3000"].arrived and arr["frag4500:3000"].fragments_arrived == 3


# ---------------------------------------------------------------------------
# answers
# ---------------------------------------------------------------------------


def test_icmp_error_matched_to_probe_with_its_sender():
    ps = plan_probes(["udp4500", "esp", "tcp443"])
    res = {p.name: SendResult(p.name, sport=SPORT + i) for i, p in enumerate(ps)}
    quoted = bytes(IP(src=CLIENT, dst=GW) / UDP(sport=SPORT, dport=4500) / Raw(b"\x00" * 40))
    pkt = bytes(IP(src=ROUTER, dst=CLIENT) / ICMP(type=3, code=13) / Raw(quoted[:28]))
    assert match_icmp(pkt, ps, res, GW) == ("udp4500", "icmp-administratively-prohibited", ROUTER)
    esp_q = build_esp(ps[1], CLIENT, GW)
    pkt = bytes(IP(src=GW, dst=CLIENT) / ICMP(type=3, code=2) / Raw(esp_q[:28]))
    assert match_icmp(pkt, ps, res, GW) == ("esp", "icmp-protocol-unreachable", GW)
    # an error about someone else's datagram, or to another destination, is not ours
    other = bytes(IP(src=CLIENT, dst=GW) / UDP(sport=SPORT + 99, dport=4500))
    assert match_icmp(bytes(IP(src=GW, dst=CLIENT) / ICMP(type=3, code=3) / Raw(other)), ps, res, GW) is None
    wrong_dst = bytes(IP(src=CLIENT, dst="203.0.113.1") / UDP(sport=SPORT, dport=4500))
    assert match_icmp(bytes(IP(src=GW, dst=CLIENT) / ICMP(type=3, code=3) / Raw(wrong_dst)),
                      ps, res, GW) is None


def test_tcp_answers():
    ps = plan_probes(["tcp443"])
    res = {"tcp443": SendResult("tcp443", sport=SPORT)}
    ack = (ps[0].seq + 1) & 0xFFFFFFFF
    sa = bytes(IP(src=GW, dst=CLIENT) / TCP(sport=443, dport=SPORT, flags="SA", ack=ack))
    rst = bytes(IP(src=GW, dst=CLIENT) / TCP(sport=443, dport=SPORT, flags="RA", ack=ack))
    stale = bytes(IP(src=GW, dst=CLIENT) / TCP(sport=443, dport=SPORT, flags="SA", ack=ack + 5))
    assert match_tcp(sa, ps, res, GW) == ("tcp443", "tcp-syn-ack")
    assert match_tcp(rst, ps, res, GW) == ("tcp443", "tcp-rst")
    assert match_tcp(stale, ps, res, GW) is None


# ---------------------------------------------------------------------------
# findings
# ---------------------------------------------------------------------------

ROLE = {"udp500": "needed", "udp4500": "needed", "esp": "needed-without-nat",
        "tcp443": "needed-for-sstp", "udp1701": "not-needed"}
FRAGS = {"frag4500:1400": (1400, 1), "frag4500:1600": (1600, 2), "frag4500:3000": (3000, 3),
         "frag4500:6000": (6000, 5)}


def results(blocked=(), partial=None, answered=None, capture=True, not_sent=()):
    """CheckResults for the default checks; ``blocked`` names did not arrive."""
    partial = partial or {}
    answered = answered or {}
    out = []
    for name in probes.DEFAULT_CHECKS:
        size, nfr = FRAGS.get(name, (None, 1))
        arrived = name not in blocked
        got = partial.get(name, nfr if arrived else 0)
        ans = answered.get(name)
        out.append(CheckResult(
            name=name, kind="frag" if size else name, proto=50 if name == "esp" else 17, port=None,
            size=size, role=ROLE.get(name, "needed"), sent=name not in not_sent,
            arrived=arrived if capture else None, fragments_sent=nfr,
            fragments_arrived=got if capture else None,
            answered=bool(ans) if name != "esp" else None, answer=ans[0] if ans else None,
            answered_by=ans[1] if ans else None))
    return out


def severe(findings):
    return {f.code for f in findings if f.severity in ("fail", "warn")}


def test_open_path_only_warns_about_l2tp():
    f = derive_findings(results())
    assert severe(f) == {"udp-1701-exposed"}
    assert {x.code for x in f if x.severity == "info"} == {"tcp-443-open"}


def test_fragments_dropped_reports_the_size_limit():
    cs = results(blocked=("frag4500:1600", "frag4500:3000", "frag4500:6000", "udp1701"),
                 partial={"frag4500:3000": 1})
    f = derive_findings(cs)
    assert severe(f) == {"ip-fragments-dropped"}
    msg = next(x for x in f if x.code == "ip-fragments-dropped")
    assert "up to 1400 bytes" in msg.message and "3000 B: 1 of 3" in msg.message
    assert msg.checks == ["frag4500:1600", "frag4500:3000", "frag4500:6000"]
    rep = PathReport(GW, None, {"netns": None, "interface": "eth0"}, "capture", CLIENT, 1500, cs, f)
    assert rep.fragments_ok_up_to == 1400 and rep.exit_code == 1
    assert rep.blocked == ["frag4500:1600", "frag4500:3000", "frag4500:6000"]


def test_only_the_biggest_size_lost():
    f = derive_findings(results(blocked=("frag4500:6000", "udp1701")))
    assert severe(f) == {"ip-fragments-dropped"}
    assert "up to 3000 bytes" in f[0].message


def test_unfragmented_large_datagram_lost_is_not_called_fragments():
    cs = results(blocked=("frag4500:1400", "frag4500:1600", "frag4500:3000", "frag4500:6000", "udp1701"))
    cs = [c for c in cs if c.name != "frag4500:1400"] + [CheckResult(
        "frag4500:1450", "frag", 17, 4500, 1450, "needed", True, False, 1, 0, False)]
    codes = severe(derive_findings(cs))
    assert codes == {"ip-fragments-dropped", "large-datagrams-dropped"}


def test_udp_4500_blocked_makes_fragment_checks_untested():
    f = derive_findings(results(blocked=("udp4500", "udp1701", *FRAGS)))
    assert severe(f) == {"udp-4500-blocked"}
    assert "fragments-untested" in {x.code for x in f}


def test_udp_500_blocked():
    assert severe(derive_findings(results(blocked=("udp500", "udp1701")))) == {"udp-500-blocked"}


def test_esp_blocked_is_a_warning_about_nat():
    f = derive_findings(results(blocked=("esp", "udp1701")))
    assert severe(f) == {"esp-blocked"}
    assert "NAT" in f[0].message and f[0].severity == "warn"
    rep = PathReport(GW, None, None, "capture", CLIENT, 1500, results(), f)
    assert rep.exit_code == 0


def test_tcp_443_matters_only_for_sstp():
    cs = results(blocked=("tcp443", "udp1701"))
    assert severe(derive_findings(cs)) == set()
    assert severe(derive_findings(cs, sstp=True)) == {"tcp-443-blocked"}
    assert "tcp-443-open" not in {x.code for x in derive_findings(results(), sstp=True)}


def test_nothing_arrived_is_one_finding():
    f = derive_findings(results(blocked=probes.DEFAULT_CHECKS))
    assert [x.code for x in f] == ["nothing-arrived"] and f[0].severity == "fail"
    assert "wrong interface" in f[0].message


def test_not_sent_is_unknown():
    f = derive_findings(results(not_sent=("esp",), blocked=("udp1701",)))
    assert [(x.severity, x.code) for x in f if x.checks == ["esp"]] == [("unknown", "not-sent")]


def test_answers_only_mode():
    ans = {"udp500": ("ike:invalid-ke", GW), "udp4500": ("ike:invalid-ke", GW),
           "frag4500:1400": ("ike:invalid-ke", GW), "udp1701": ("udp-reply", GW),
           "tcp443": ("icmp-administratively-prohibited", ROUTER)}
    f = derive_findings(results(capture=False, answered=ans), mode="answers-only", gateway=GW)
    codes = {(x.severity, x.code) for x in f}
    assert ("info", "answers-only") in codes and ("warn", "udp-1701-exposed") in codes
    assert {c for s, c in codes if s == "unknown"} == {
        "frag4500-1600-unanswered", "frag4500-3000-unanswered", "frag4500-6000-unanswered"}
    assert not any(s == "fail" for s, _ in codes)
    hop = [x for x in f if x.code == "rejected-by-hop"]
    assert hop and ROUTER in hop[0].message
    rep = PathReport(GW, "c", None, "answers-only", CLIENT, 1500,
                     results(capture=False, answered=ans), f)
    assert rep.exit_code == 3 and rep.blocked == []
    assert "NO far-end capture" in rep.render_text()


def test_report_json_and_text():
    cs = results(blocked=("udp4500", "udp1701", *FRAGS))
    rep = PathReport(GW, "hxp-c", {"netns": "s", "interface": "s0"}, "capture", CLIENT, 1500, cs,
                     derive_findings(cs, gateway=GW), elapsed_s=1.2)
    d = json.loads(json.dumps(rep.to_json()))
    assert d["blocked"] == ["udp4500", *FRAGS] and d["exit_code"] == 1
    assert d["checks"][1]["arrived"] is False and d["fragments_ok_up_to"] is None
    text = rep.render_text()
    assert "udp-4500-blocked" in text and "FAIL" in text and "frag4500:6000" in text
    assert "0/5" in text


def test_bpf_covers_all_probe_traffic():
    bpf = build_bpf(plan_probes())
    for part in ("udp port 500", "udp port 4500", "tcp port 443", "ip proto 50", "udp port 1701",
                 "ip[6:2] & 0x3fff != 0"):
        assert part in bpf
    assert "0x3fff" not in build_bpf(plan_probes(["udp500"]))


# ---------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------


def _parser():
    p = argparse.ArgumentParser(prog="aovpn-lab")
    sub = p.add_subparsers(dest="command")
    scan = command.register(sub)
    return p, scan


def test_command_registers_scan_with_explaining_help():
    p, scan = _parser()
    text = scan.format_help()
    assert "WITHOUT a far-end capture" in text and "answered" in text and "exit status" in text
    args = p.parse_args(["scan", "--gateway", GW, "--far-netns", "s", "--far-interface", "s0",
                         "--json", "--sizes", "1400,9000"])
    assert args.func is command.run_scan and args.json and args.far_interface == "s0"
    assert command.checks_from_args(args)[-2:] == ["frag4500:1400", "frag4500:9000"]
    args = p.parse_args(["scan", "--gateway", GW, "--checks", "udp500,frag4500"])
    assert command.checks_from_args(args) == ["udp500"] + [f"frag4500:{n}" for n in (1400, 1600, 3000, 6000)]
    with pytest.raises(SystemExit):
        p.parse_args(["scan"])  # --gateway is required


def test_command_rejects_bad_input_with_one_line(capsys):
    assert command.main(["--gateway", "2001:db8::1"]) == 2
    assert "IPv4" in capsys.readouterr().err
    assert command.main(["--gateway", GW, "--far-netns", "x"]) == 2
    assert "--far-interface" in capsys.readouterr().err
    assert command.main(["--gateway", GW, "--checks", "udp53"]) == 2
    assert "unknown check" in capsys.readouterr().err
