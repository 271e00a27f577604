"""aovpn_lab.capture.diagnose on recorded charon captures and on synthetic conversations.

The recorded pairs in tests/data/pcap/ come from tests/integration/test_diagnose_live.py
(real strongSwan traffic, trimmed). Synthetic conversations cover what the lab does not
produce on its own: partial fragment loss, lost first fragments behind NAT, RFC 7383
fragment loss, COOKIE/INVALID_KE rounds, EAP rounds, retransmissions that get through.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether

from aovpn_lab.capture.diagnose import CAUSES, diagnose
from aovpn_lab.capture.diagnose import ERROR_SIZED_MAX
from aovpn_lab.capture.errors import CaptureInputError, CaptureMismatchError
from aovpn_lab.capture.trim import trim_capture
from aovpn_lab.errors import AovpnError
from aovpn_lab.ike import probe

PCAP = Path(__file__).resolve().parents[1] / "data" / "pcap"
I2R, R2I = "initiator-to-responder", "responder-to-initiator"

RECORDED = {
    "success-small": (True, "none", None, False),
    "large-open": (True, "none", None, True),
    "large-fragdrop": (False, "ip-fragments-dropped", I2R, True),
    "large-fragdrop-return": (False, "ip-fragments-dropped", R2I, True),
    "large-fragdrop-rfc7383": (True, "none", None, False),
    "udp4500-blocked": (False, "udp-4500-blocked", I2R, False),
    "udp500-blocked": (False, "udp-500-blocked", I2R, False),
    "no-proposal": (False, "no-proposal-chosen", None, False),
    "auth-failed": (False, "auth-failed", None, False),
    "server-untrusted": (False, "auth-failed", None, False),
    "snat": (True, "none", None, False),
}


def pair(name: str) -> tuple[Path, Path]:
    return PCAP / f"{name}-client.pcap", PCAP / f"{name}-server.pcap"


def verdict(d) -> tuple:
    return d.established, d.cause, d.direction, d.uses_ip_fragmentation


def exchange(d, name, message, direction=None, nth=0) -> dict:
    found = [e for e in d.to_json()["evidence"]["exchanges"]
             if e["exchange"] == name and e["message"] == message and direction in (None, e["direction"])]
    assert len(found) > nth, d.summary()
    return found[nth]


# --------------------------------------------------------------------------- recorded


def test_causes_are_the_probe_vocabulary():
    assert CAUSES == probe.CAUSES
    assert {v[1] for v in RECORDED.values()} <= set(CAUSES)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded(name):
    c, s = pair(name)
    assert c.stat().st_size < 8000 and s.stat().st_size < 8000  # commit-size
    d = diagnose(c, s)
    assert verdict(d) == RECORDED[name], d.summary()
    j = json.loads(json.dumps(d.to_json()))  # JSON-serialisable as is
    assert j["cause"] == d.cause and j["established"] == d.established and j["direction"] == d.direction
    assert {"exchanges", "sizes", "largest_ip_packet", "captures", "ike_sa"} <= set(j["evidence"])
    text = d.summary()
    assert ("ESTABLISHED" in text) == d.established
    if not d.established:
        assert f"cause {d.cause}" in text and "What to change:" in text and d.advice


def test_recorded_fragment_drop_evidence():
    d = diagnose(*pair("large-fragdrop"))
    e = exchange(d, "IKE_AUTH", "request")
    assert e["port"] == 4500 and e["direction"] == I2R and not e["delivered"]
    assert e["sent"]["ip_fragments"] == 15 and e["sent"]["retransmits"] == 2 and e["sent"]["largest_ip_packet"] == 1500
    assert e["seen"] == dict(e["seen"], packets=0, messages=0, capture="server")
    sizes = d.to_json()["evidence"]["sizes"]
    assert sizes["IKE_SA_INIT_request"] < 600 and sizes["IKE_AUTH_request"] > 5000
    assert sizes["IKE_AUTH_response"] is None
    assert d.alternatives == ["udp-4500-blocked"]
    assert "EnableServerFragmentation" in d.summary()
    assert any("neither end advertised" in n for n in d.notes)


def test_recorded_rfc7383_counts_ike_fragments():
    d = diagnose(*pair("large-fragdrop-rfc7383"))
    assert d.uses_ike_fragmentation and d.rfc7383 == {"initiator": True, "responder": True}
    for message in ("request", "response"):
        e = exchange(d, "IKE_AUTH", message)
        assert e["sent"]["ike_fragments"] == e["seen"]["ike_fragments_complete"] >= 5
        assert e["sent"]["ip_fragments"] == 0 and e["sent"]["largest_ip_packet"] <= 1280


def test_recorded_auth_failures_tell_who_refused():
    d = diagnose(*pair("auth-failed"))
    assert d.auth_failure == "responder-refused"
    assert exchange(d, "IKE_AUTH", "response")["seen"]["ike_size"] <= ERROR_SIZED_MAX
    assert "server refused the client" in d.summary()
    d = diagnose(*pair("server-untrusted"))
    assert d.auth_failure == "initiator-abandoned"
    assert "client refused the server" in d.summary()


def test_recorded_snat_matched_by_spis():
    d = diagnose(*pair("snat"))
    ev = d.to_json()["evidence"]
    assert ev["nat_between_captures"] is True
    assert ev["endpoints"]["client_capture"]["initiator"] != ev["endpoints"]["server_capture"]["initiator"]
    assert ev["esp"]["client"] == {I2R: 2, R2I: 2} and ev["esp"]["server"] == {I2R: 2, R2I: 2}


def test_recorded_udp500_blocked_with_empty_server_capture():
    c, s = pair("udp500-blocked")
    assert s.stat().st_size == 24  # header only: tcpdump saw nothing
    d = diagnose(c, s)
    assert exchange(d, "IKE_SA_INIT", "request")["sent"]["transmissions"] == 3
    assert any("holds no IKE traffic at all" in n for n in d.notes)


def test_trim_is_idempotent_on_recorded(tmp_path):
    for name in ("large-open", "snat"):
        for src in pair(name):
            out = tmp_path / src.name
            trim_capture(src, out)
            assert out.read_bytes() == src.read_bytes()


def _to_pcapng(src: Path, dst: Path) -> None:
    from aovpn_lab.capture.pcapfile import read_frames

    def block(t, body):
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", t, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 262144))
    for f in read_frames(src):
        t = round(f.ts * 1e6)
        out += block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(f.data), f.wirelen) + f.data)
    dst.write_bytes(out)


def test_pcapng_gives_the_same_diagnosis(tmp_path):
    c, s = pair("large-fragdrop")
    _to_pcapng(c, tmp_path / "c.pcapng")
    _to_pcapng(s, tmp_path / "s.pcapng")
    a, b = diagnose(c, s), diagnose(tmp_path / "c.pcapng", tmp_path / "s.pcapng")
    assert a.client.info.format == "pcap" and b.client.info.format == "pcapng"
    ja, jb = a.to_json(), b.to_json()
    for j in (ja, jb):
        j["evidence"].pop("captures")
    assert ja == jb


# --------------------------------------------------------------------------- bad input


def test_captures_of_different_connections(tmp_path):
    with pytest.raises(CaptureMismatchError) as ei:
        diagnose(pair("success-small")[0], pair("snat")[1])
    msg = str(ei.value)
    assert "snat-server.pcap" in msg and "shares no IKE SA" in msg and ei.value.hint


def test_server_capture_without_ike_but_client_got_answers():
    with pytest.raises(CaptureMismatchError, match="udp500-blocked-server.pcap holds no IKEv2 traffic"):
        diagnose(pair("success-small")[0], pair("udp500-blocked")[1])


def test_client_capture_without_ike(tmp_path):
    with pytest.raises(CaptureInputError, match="udp500-blocked-server.pcap: holds no IKEv2 traffic"):
        diagnose(pair("udp500-blocked")[1], pair("success-small")[1])


@pytest.mark.parametrize("role", ["client", "server"])
@pytest.mark.parametrize("content,words", [
    (b"", "is empty"),
    (b"GET / HTTP/1.1\r\n\r\n", "not a pcap or pcapng"),
    ("truncate", "is truncated"),
])
def test_bad_files_name_the_file(tmp_path, role, content, words):
    bad = tmp_path / f"bad-{role}.pcap"
    c, s = pair("success-small")
    bad.write_bytes((c if role == "client" else s).read_bytes()[:-7] if content == "truncate" else content)
    args = (bad, s) if role == "client" else (c, bad)
    with pytest.raises(AovpnError) as ei:
        diagnose(*args)
    assert str(bad) in str(ei.value) and words in str(ei.value)
    assert isinstance(ei.value, CaptureInputError)


# --------------------------------------------------------------------------- synthetic

MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
C_ADDR, S_ADDR, NAT_ADDR = "192.0.2.200", "203.0.113.200", "203.0.113.201"


def payloads(*items: tuple[int, bytes]) -> tuple[int, bytes]:
    """Generic payload chain: ((type, body), ...) -> (first type, bytes)."""
    out = b""
    for i, (_t, body) in enumerate(items):
        nxt = items[i + 1][0] if i + 1 < len(items) else 0
        out += struct.pack("!BBH", nxt, 0, 4 + len(body)) + body
    return (items[0][0] if items else 0), out


def message(spi_i, spi_r, exch, flags, mid, first, body) -> bytes:
    return spi_i + spi_r + struct.pack("!BBBBII", first, 0x20, exch, flags, mid, 28 + len(body)) + body


def notify(n: int) -> tuple[int, bytes]:
    return 41, struct.pack("!BBH", 0, 0, n)


class Conv:
    """A synthetic client/server capture pair (Ethernet, MTU 1500, optional NAT)."""

    def __init__(self, nat: bool = False):
        self.client: list[tuple[float, bytes]] = []
        self.server: list[tuple[float, bytes]] = []
        self.t = 1000.0
        self.ipid = 1000
        self.nat = nat

    def _ep(self, side: str, who: str, port: int) -> tuple[str, int]:
        if who == "server":
            return S_ADDR, port
        if side == "server" and self.nat:
            return NAT_ADDR, 40000 + port
        return C_ADDR, port

    def send(self, data: bytes, *, frm: str = "client", port: int = 500, arrive=True, esp: bool = False,
             copies: int = 1, gap: float = 1.0) -> None:
        payload = data if (port == 500 or esp) else b"\x00\x00\x00\x00" + data
        to = "server" if frm == "client" else "client"
        for n in range(copies):
            self.t += gap if n else 0.01
            self.ipid += 1
            views = {}
            for side in ("client", "server"):
                src, dst = self._ep(side, frm, port), self._ep(side, to, port)
                pkt = IP(src=src[0], dst=dst[0], id=self.ipid) / UDP(sport=src[1], dport=dst[1]) / payload
                views[side] = fragment(pkt, fragsize=1480) if len(pkt) > 1500 else [pkt]
            ok = arrive(n) if callable(arrive) else arrive
            for i, p in enumerate(views[frm]):
                getattr(self, frm).append((self.t + i * 1e-5, bytes(Ether(**MAC) / p)))
            for i, p in enumerate(views[to]):
                if ok is True or (isinstance(ok, (set, frozenset)) and i in ok):
                    getattr(self, to).append((self.t + 0.001 + i * 1e-5, bytes(Ether(**MAC) / p)))

    def write(self, d: Path) -> tuple[Path, Path]:
        paths = []
        for side in ("client", "server"):
            out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
            for ts, data in sorted(getattr(self, side)):
                sec = int(ts)
                out += struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(data), len(data)) + data
            p = d / f"{side}.pcap"
            p.write_bytes(out)
            paths.append(p)
        return paths[0], paths[1]


class Sa:
    """Builds the messages of one IKE SA."""

    def __init__(self, conv: Conv, n: int = 1):
        self.c = conv
        self.spi_i = bytes([0x10 + n]) * 8
        self.spi_r = bytes([0x80 + n]) * 8

    def init(self, *, resp_notifies=(), arrive_req=True, arrive_resp=True, respond=True, variant=b"",
             spi_r=None, copies=1, rfc7383=False):
        req_items = [(33, b"\x00" * 40), (34, b"\x00\x13\x00\x00" + b"\x01" * 64), (40, b"\x02" * 32),
                     notify(16388), notify(16389)] + ([notify(16430)] if rfc7383 else [])
        if variant:
            req_items.insert(0, (41, struct.pack("!BBH", 0, 0, 16390) + variant))
        first, body = payloads(*req_items)
        self.c.send(message(self.spi_i, b"\x00" * 8, 34, 0x08, 0, first, body), arrive=arrive_req, copies=copies)
        if not respond:
            return
        if resp_notifies:
            first, body = payloads(*[notify(n) for n in resp_notifies])
            r_spi = b"\x00" * 8 if spi_r is None else spi_r
        else:
            items = [(33, b"\x00" * 40), (34, b"\x00\x13\x00\x00" + b"\x03" * 64), (40, b"\x04" * 32),
                     notify(16388), notify(16389)] + ([notify(16430)] if rfc7383 else [])
            first, body = payloads(*items)
            r_spi = self.spi_r
        self.c.send(message(self.spi_i, r_spi, 34, 0x20, 0, first, body), frm="server", arrive=arrive_resp)

    def enc(self, exch, mid, size, *, response=False, frm=None, arrive=True, copies=1, skf=None, flags=None):
        fl = flags if flags is not None else (0x20 if response else 0x08)
        body = os.urandom(size - 28 - 4)
        if skf:
            n, total = skf
            pl = struct.pack("!BBHHH", 35 if n == 1 else 0, 0, 8 + len(body) - 4, n, total) + body[:-4]
            first = 53
        else:
            pl = struct.pack("!BBH", 35, 0, 4 + len(body)) + body
            first = 46
        msg = message(self.spi_i, self.spi_r, exch, fl, mid, first, pl)
        assert len(msg) == size
        self.c.send(msg, frm=frm or ("server" if response else "client"), port=4500, arrive=arrive, copies=copies)

    def auth(self, *, req=900, resp=800, mid=1, arrive_req=True, arrive_resp=True, respond=True, copies=1):
        self.enc(35, mid, req, arrive=arrive_req, copies=copies)
        if respond:
            self.enc(35, mid, resp, response=True, arrive=arrive_resp, copies=copies)

    def esp(self, frm="client", n=2):
        for i in range(n):
            self.c.send(struct.pack("!II", 0xC0000000 + (frm == "server"), i + 1) + b"\x05" * 100, frm=frm,
                        port=4500, esp=True)


def run(conv: Conv, tmp_path: Path):
    return diagnose(*conv.write(tmp_path))


def test_synthetic_success_baseline(tmp_path):
    c = Conv()
    sa = Sa(c)
    sa.init()
    sa.auth()
    d = run(c, tmp_path)
    assert verdict(d) == (True, "none", None, False), d.summary()
    sizes = d.to_json()["evidence"]["sizes"]
    assert (sizes["IKE_AUTH_request"], sizes["IKE_AUTH_response"]) == (900, 800)
    assert 150 < sizes["IKE_SA_INIT_request"] < 400 and 150 < sizes["IKE_SA_INIT_response"] < 400


def test_partial_fragment_loss_is_certain(tmp_path):
    c = Conv()
    sa = Sa(c)
    sa.init()
    sa.auth(req=5000, respond=False, arrive_req={0, 1, 3}, copies=3)  # fragment 3 of 4 lost every time
    d = run(c, tmp_path)
    assert verdict(d) == (False, "ip-fragments-dropped", I2R, True), d.summary()
    assert d.alternatives == []
    e = exchange(d, "IKE_AUTH", "request")
    assert (e["sent"]["ip_fragments"], e["seen"]["ip_fragments"], e["seen"]["messages"]) == (12, 9, 0)
    assert "12 fragments sent, 9 arrived" in d.reason


def test_first_fragment_lost_behind_nat_matched_by_ip_id(tmp_path):
    c = Conv(nat=True)
    sa = Sa(c)
    sa.init()
    sa.auth(req=5000, respond=False, arrive_req={1, 2, 3}, copies=3)
    d = run(c, tmp_path)
    assert verdict(d) == (False, "ip-fragments-dropped", I2R, True), d.summary()
    e = exchange(d, "IKE_AUTH", "request")
    assert e["seen"]["datagrams"] == 0 and e["seen"]["ip_fragments"] == 9  # headless fragments, by IP ID
    assert len(d.server.orphans) == 3
    # Only the first fragments, the ones with the UDP header, were lost, and nothing else reached
    # UDP 4500: a filter on the port (it sees the port in the first fragment alone) looks the same.
    assert d.nat is True and d.alternatives == ["udp-4500-blocked"]
    assert "the only ones carrying the UDP header" in d.reason


def test_first_fragment_lost_while_the_port_works_is_certain(tmp_path):
    c = Conv()
    ok = Sa(c, 1)
    ok.init()
    ok.auth(respond=False)          # an earlier attempt's small IKE_AUTH reached UDP 4500: the port works
    sa = Sa(c, 2)
    sa.init()
    sa.auth(req=5000, respond=False, arrive_req={1, 2, 3}, copies=3)
    d = run(c, tmp_path)
    assert verdict(d) == (False, "ip-fragments-dropped", I2R, True), d.summary()
    assert d.alternatives == []


def test_fragmented_response_lost_on_the_way_back(tmp_path):
    c = Conv()
    sa = Sa(c)
    sa.init()
    sa.auth(req=900, resp=5500, arrive_resp=False, copies=3)
    d = run(c, tmp_path)
    assert verdict(d) == (False, "ip-fragments-dropped", R2I, True), d.summary()
    assert exchange(d, "IKE_AUTH", "request")["seen"]["messages"] == 3
    assert "works from client to server" in d.reason


def test_rfc7383_fragments_partly_lost(tmp_path):
    c = Conv()
    sa = Sa(c)
    sa.init(rfc7383=True)
    for n in range(1, 6):
        sa.enc(35, 1, 1200, skf=(n, 5), arrive=n <= 3, copies=3)
    d = run(c, tmp_path)
    assert verdict(d) == (False, "ike-fragments-dropped", I2R, False), d.summary()
    e = exchange(d, "IKE_AUTH", "request")
    assert (e["sent"]["ike_fragments"], e["seen"]["ike_fragments_complete"], e["sent"]["transmissions"]) == (5, 3, 3)
    assert d.uses_ike_fragmentation and "3 of them arrived" in d.reason


def test_rfc7383_fragments_all_lost_and_nothing_else_on_4500(tmp_path):
    c = Conv()
    sa = Sa(c)
    sa.init(rfc7383=True)
    for n in range(1, 4):
        sa.enc(35, 1, 1200, skf=(n, 3), arrive=False)
    d = run(c, tmp_path)
    assert verdict(d)[:3] == (False, "udp-4500-blocked", I2R)
    assert d.alternatives == ["ike-fragments-dropped"]


def test_rfc7383_fragments_bigger_than_mtu_get_ip_fragmented(tmp_path):
    c = Conv()
    sa = Sa(c)
    sa.init(rfc7383=True)
    for n in range(1, 3):
        sa.enc(35, 1, 2000, skf=(n, 2), arrive=set())
    d = run(c, tmp_path)
    assert verdict(d) == (False, "ip-fragments-dropped", I2R, True), d.summary()
    assert "larger than the MTU" in d.reason


def test_server_received_and_stayed_silent(tmp_path):
    c = Conv()
    Sa(c).init(respond=False, copies=3)
    d = run(c, tmp_path)
    assert verdict(d) == (False, "no-response", None, False), d.summary()
    assert "never answered" in d.reason and exchange(d, "IKE_SA_INIT", "request")["seen"]["messages"] == 3


def test_init_response_lost(tmp_path):
    c = Conv()
    Sa(c).init(arrive_resp=False)
    d = run(c, tmp_path)
    assert verdict(d) == (False, "udp-500-blocked", R2I, False), d.summary()


def test_unanswered_client_while_server_serves_others(tmp_path):
    c = Conv()
    Sa(c, 1).init(arrive_req=False, respond=False, copies=3)
    other = Conv()
    Sa(other, 2).init()
    cp, _ = c.write(tmp_path)
    (tmp_path / "o").mkdir()
    _, sp = other.write(tmp_path / "o")
    d = diagnose(cp, sp)
    assert verdict(d) == (False, "udp-500-blocked", I2R, False), d.summary()
    assert any("none of the client's IKE SAs appears" in n for n in d.notes)


def test_retransmitted_request_that_finally_arrives(tmp_path):
    c = Conv()
    sa = Sa(c)
    sa.init()
    sa.enc(35, 1, 900, copies=3, arrive=lambda n: n == 2)
    sa.enc(35, 1, 800, response=True)
    d = run(c, tmp_path)
    assert verdict(d) == (True, "none", None, False), d.summary()
    e = exchange(d, "IKE_AUTH", "request")
    assert (e["sent"]["retransmits"], e["seen"]["messages"]) == (2, 1)


def test_invalid_ke_round_then_success(tmp_path):
    c = Conv()
    sa = Sa(c)
    sa.init(resp_notifies=(17,))
    sa.init(variant=b"\x09" * 16)  # the same SPI, another IKE_SA_INIT
    sa.auth()
    d = run(c, tmp_path)
    assert verdict(d) == (True, "none", None, False), d.summary()
    assert exchange(d, "IKE_SA_INIT", "response", nth=0)["seen"]["notifies"] == ["INVALID_KE_PAYLOAD"]
    assert "INVALID_KE_PAYLOAD" not in exchange(d, "IKE_SA_INIT", "response", nth=1)["seen"].get("notifies", [])
    assert len([e for e in d.to_json()["evidence"]["exchanges"] if e["exchange"] == "IKE_SA_INIT"]) == 4


def test_invalid_ke_without_retry(tmp_path):
    c = Conv()
    Sa(c).init(resp_notifies=(17,))
    d = run(c, tmp_path)
    assert verdict(d) == (False, "no-proposal-chosen", None, False), d.summary()
    assert "INVALID_KE_PAYLOAD" in d.reason


def test_no_proposal_chosen_synthetic(tmp_path):
    c = Conv()
    Sa(c).init(resp_notifies=(14,))
    d = run(c, tmp_path)
    assert verdict(d) == (False, "no-proposal-chosen", None, False)
    assert "13868" in d.reason


def test_two_attempts_the_last_one_established(tmp_path):
    c = Conv()
    first = Sa(c, 1)
    first.init()
    first.auth(req=5000, respond=False, arrive_req=False, copies=3)
    second = Sa(c, 2)
    second.init()
    second.auth()
    d = run(c, tmp_path)
    assert verdict(d) == (True, "none", None, False), d.summary()
    assert d.sa.spi_i == second.spi_i
    assert [(o["cause"], o["direction"]) for o in d.other_sas] == [("ip-fragments-dropped", I2R)]


@pytest.mark.parametrize("final,expected", [(80, (False, "auth-failed")), (400, (True, "none"))])
def test_eap_rounds(tmp_path, final, expected):
    c = Conv()
    sa = Sa(c)
    sa.init()
    sa.auth(mid=1, req=600, resp=1100)  # IDr, CERT, AUTH, EAP request
    sa.auth(mid=2, req=300, resp=120)   # EAP round trip: small, but the client continues
    sa.auth(mid=3, req=200, resp=final)
    d = run(c, tmp_path)
    assert (d.established, d.cause) == expected, d.summary()
    assert len([e for e in d.to_json()["evidence"]["exchanges"] if e["exchange"] == "IKE_AUTH"]) == 6


def test_esp_after_ike_auth_means_established(tmp_path):
    c = Conv(nat=True)
    sa = Sa(c)
    sa.init()
    sa.auth(resp=ERROR_SIZED_MAX)  # would look like an error answer ...
    sa.esp("client")
    sa.esp("server")                # ... but the child SA carries traffic
    d = run(c, tmp_path)
    assert verdict(d) == (True, "none", None, False), d.summary()
    assert d.esp["client"] == {I2R: 2, R2I: 2} and d.esp["server"] == {I2R: 2, R2I: 2}


def test_initiator_abandons_after_auth(tmp_path):
    c = Conv()
    sa = Sa(c)
    sa.init()
    sa.auth()
    sa.enc(37, 2, 80)
    sa.enc(37, 2, 80, response=True)
    d = run(c, tmp_path)
    assert (d.established, d.cause, d.auth_failure) == (False, "auth-failed", "initiator-abandoned")


def test_responder_started_informational_does_not_count_as_abandoning(tmp_path):
    c = Conv()
    sa = Sa(c)
    sa.init()
    sa.auth()
    sa.enc(37, 0, 80, frm="server", flags=0x00)        # responder's own request #0 (MOBIKE, DPD)
    sa.enc(37, 0, 80, response=True, frm="client", flags=0x28)
    d = run(c, tmp_path)
    assert verdict(d) == (True, "none", None, False), d.summary()
    info = exchange(d, "INFORMATIONAL", "request")
    assert info["started_by"] == "responder" and info["direction"] == R2I


def test_damaged_captures_never_raise_anything_but_project_errors(tmp_path):
    """Random byte changes and truncations: a Diagnosis or an AovpnError, never a traceback."""
    import random

    rng = random.Random(7383)
    outcomes = {"diagnosed": 0, "refused": 0}
    for i in range(300):
        c, s = pair(sorted(RECORDED)[i % len(RECORDED)])
        which = rng.random() < 0.5
        data = bytearray((c if which else s).read_bytes())
        for _ in range(rng.randint(1, 10)):
            if len(data) > 24:
                data[rng.randrange(24, len(data))] = rng.randrange(256)
        if rng.random() < 0.15:
            data = data[: rng.randrange(len(data) + 1)]
        bad = tmp_path / f"fuzz-{i}.pcap"
        bad.write_bytes(bytes(data))
        try:
            d = diagnose(bad, s) if which else diagnose(c, bad)
            assert d.cause in CAUSES
            json.dumps(d.to_json())
            d.summary()
            outcomes["diagnosed"] += 1
        except AovpnError as exc:
            assert str(bad) in str(exc) or "IKE SA" in str(exc)
            outcomes["refused"] += 1
    assert outcomes["diagnosed"] > 100 and outcomes["refused"] > 20, outcomes
