"""IKE_SA_INIT crafting, answer parsing and probe logic (no network traffic).

The transport is exercised with a fake UDP socket that plays an IKEv2
responder, so nothing leaves the process.
"""

import hashlib
import socket
import struct
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from scapy.contrib.ikev2 import (
    IKEv2,
    IKEv2_KE,
    IKEv2_Nonce,
    IKEv2_Notify,
    IKEv2_Proposal,
    IKEv2_SA,
    IKEv2_Transform,
    IKEv2_VendorID,
)

from aovpn_lab.ike import craft, offer
from aovpn_lab.ike import transforms as tf

SPI = bytes.fromhex("0123456789abcdef")


def payloads(msg: bytes) -> list:
    out, p = [], IKEv2(msg).payload
    while p is not None and p.__class__.__name__ not in ("NoPayload", "Raw"):
        out.append(p)
        p = p.payload
    return out


def proposals_of(sa) -> list[list[tuple]]:
    result, prop = [], sa.prop
    while isinstance(prop, IKEv2_Proposal):
        ts, t = [], prop.trans
        while isinstance(t, IKEv2_Transform):
            ts.append((t.transform_type, t.transform_id,
                       (t.key_length & 0xFFFF) if t.length > 8 else None))
            t = t.payload
        assert prop.trans_nb == len(ts)
        result.append((prop.proposal, ts))
        prop = prop.payload
    return result


# ---------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------


def test_build_structure_parses_back():
    msg = craft.build_ike_sa_init(
        ["aes128-sha256-modp2048", "GCMAES128-SHA256-ECP256"], "modp1024",
        spi=SPI, src=("198.51.100.1", 500), dst=("198.51.100.2", 500))
    pkt = IKEv2(msg)
    assert pkt.init_SPI == SPI and pkt.resp_SPI == b"\x00" * 8
    assert pkt.exch_type == 34 and pkt.version == 0x20 and pkt.id == 0
    assert int(pkt.flags) == 0x08  # Initiator, not Response
    assert pkt.length == len(msg)
    pls = payloads(msg)
    assert [type(p).__name__ for p in pls] == [
        "IKEv2_SA", "IKEv2_KE", "IKEv2_Nonce", "IKEv2_Notify", "IKEv2_Notify", "IKEv2_Notify"]
    assert proposals_of(pls[0]) == [
        (1, tf.to_transform_ids("aes128-sha256-modp2048")),
        (2, tf.to_transform_ids("aes128gcm16-prfsha256-ecp256")),
    ]
    assert pls[1].group == 2 and len(pls[1].ke) == 128
    assert 16 <= len(pls[2].nonce) <= 256
    assert [n.type for n in pls[3:]] == [16388, 16389, 16430]
    assert pls[-1].next_payload == 0


def test_nat_detection_hashes_rfc7296():
    src, dst = ("198.51.100.1", 40001), ("198.51.100.2", 4500)
    msg = craft.build_ike_sa_init("aes128-sha256-modp2048", 19, spi=SPI, src=src, dst=dst)
    notes = {p.type: p.notify for p in payloads(msg) if isinstance(p, IKEv2_Notify)}

    def h(addr, port):
        return hashlib.sha1(SPI + b"\x00" * 8 + socket.inet_aton(addr)
                            + struct.pack("!H", port)).digest()

    assert notes[16388] == h(*src)
    assert notes[16389] == h(*dst)
    assert notes[16388] != notes[16389]
    assert craft.nat_detection_hash(SPI, b"\x00" * 8, *dst) == h(*dst)
    # a bare address means port 500
    msg2 = craft.build_ike_sa_init("aes128-sha256-modp2048", 19, spi=SPI,
                                   src="198.51.100.1", dst="198.51.100.2")
    n2 = {p.type: p.notify for p in payloads(msg2) if isinstance(p, IKEv2_Notify)}
    assert n2[16389] == h("198.51.100.2", 500)


def test_optional_notifies():
    msg = craft.build_ike_sa_init("aes128-sha256-modp2048", 2, fragmentation_supported=False)
    assert not [p for p in payloads(msg) if isinstance(p, IKEv2_Notify)]  # no src/dst: no NAT-D
    msg = craft.build_ike_sa_init("aes128-sha256-modp2048", 2, src="198.51.100.1")
    assert [p.type for p in payloads(msg) if isinstance(p, IKEv2_Notify)] == [16430]


@pytest.mark.parametrize("group, length", [(1, 96), (2, 128), (14, 256), (19, 64), (20, 96),
                                           (31, 32)])
def test_ke_lengths(group, length):
    msg = craft.build_ike_sa_init("aes128-sha256-modp2048", group)
    ke = [p for p in payloads(msg) if isinstance(p, IKEv2_KE)][0]
    assert ke.group == group and len(ke.ke) == length


def test_ecp_ke_is_a_point_on_the_curve_and_modp_in_range():
    msg = craft.build_ike_sa_init("aes128gcm16-prfsha256-ecp256", "ecp256")
    ke = [p for p in payloads(msg) if isinstance(p, IKEv2_KE)][0].ke
    x, y = int.from_bytes(ke[:32], "big"), int.from_bytes(ke[32:], "big")
    ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()  # raises if invalid
    for _ in range(20):
        ke = [p for p in payloads(craft.build_ike_sa_init("aes128-sha256-modp2048", 14))
              if isinstance(p, IKEv2_KE)][0].ke
        assert 0 < ke[0] < 0xFF


@pytest.mark.parametrize("extra", [0, 1, 2, 3, 4, 5, 100, 1153])
def test_pad_to_exact_small_steps(extra):
    base = len(craft.build_ike_sa_init("aes128-sha256-modp2048", 2, spi=SPI))
    msg = craft.build_ike_sa_init("aes128-sha256-modp2048", 2, spi=SPI, pad_to=base + extra)
    assert len(msg) == base + extra
    assert IKEv2(msg).length == base + extra
    vids = [p for p in payloads(msg) if isinstance(p, IKEv2_VendorID)]
    assert len(vids) == (1 if extra >= 4 else 0)
    if extra >= 4 + len(craft.PAD_VENDOR_ID_PREFIX):
        assert vids[0].vendorID.startswith(craft.PAD_VENDOR_ID_PREFIX)


@pytest.mark.parametrize("size", [1500, 3000, 9000])
def test_pad_to_large_sizes(size):
    msg = craft.build_ike_sa_init(["aes128-sha256-modp2048"], 2, pad_to=size,
                                  src="198.51.100.1", dst="198.51.100.2")
    assert len(msg) == size
    a = craft.parse_ike_answer(msg)
    assert a.size == size and a.error is None and len(a.vendor_ids) == 1


def test_pad_to_errors():
    base = len(craft.build_ike_sa_init("aes128-sha256-modp2048", 2, spi=SPI))
    with pytest.raises(ValueError, match="smaller"):
        craft.build_ike_sa_init("aes128-sha256-modp2048", 2, pad_to=base - 1)
    with pytest.raises(ValueError, match="too few"):
        craft.build_ike_sa_init("aes128-sha256-modp2048", 2, spi=SPI, nonce=b"n" * 32,
                                pad_to=base + 2)
    with pytest.raises(ValueError):
        craft.build_ike_sa_init("aes128-sha256-modp2048", 2, pad_to=70000)


def test_build_argument_errors():
    with pytest.raises(ValueError, match="zero"):
        craft.build_ike_sa_init("aes128-sha256-modp2048", 2, spi=b"\x00" * 8)
    with pytest.raises(ValueError, match="8 bytes"):
        craft.build_ike_sa_init("aes128-sha256-modp2048", 2, spi=b"short")
    with pytest.raises(ValueError, match="nonce"):
        craft.build_ike_sa_init("aes128-sha256-modp2048", 2, nonce=b"x")
    with pytest.raises(ValueError, match="not a DH group"):
        craft.build_ike_sa_init("aes128-sha256-modp2048", "sha256")
    with pytest.raises(ValueError, match="'bogus'"):
        craft.build_ike_sa_init("aes128-bogus-modp2048", 2)
    with pytest.raises(ValueError, match="at least one"):
        craft.build_ike_sa_init([], 2)


def test_decoy_group_is_never_offered():
    assert craft.decoy_group("aes128-sha256-modp2048") == 2
    assert craft.decoy_group("3des-sha1-modp1024") == 14
    assert craft.decoy_group(["aes128-sha256-modp1024-modp2048-ecp256-ecp384"]) == 1
    for props in (craft.DEFAULT_REACH_PROPOSALS, craft.DEFAULT_CANDIDATES):
        g = craft.decoy_group(props)
        assert all(g not in tf.parse_proposal(p).dh_groups for p in props)


# ---------------------------------------------------------------------------
# answers
# ---------------------------------------------------------------------------


def answer(*pls, spi=SPI, rspi=b"\x00" * 8, exch=34, flags=0x20, mid=0) -> bytes:
    pls = list(pls)
    for i, p in enumerate(pls):
        p.next_payload = {IKEv2_SA: 33, IKEv2_KE: 34, IKEv2_Nonce: 40, IKEv2_Notify: 41,
                          IKEv2_VendorID: 43}[type(pls[i + 1])] if i + 1 < len(pls) else 0
    first = {IKEv2_SA: 33, IKEv2_KE: 34, IKEv2_Nonce: 40, IKEv2_Notify: 41}[type(pls[0])] \
        if pls else 0
    pkt = IKEv2(init_SPI=spi, resp_SPI=rspi, next_payload=first, exch_type=exch,
                flags=flags, id=mid)
    for p in pls:
        pkt = pkt / p
    return bytes(pkt)


def test_parse_invalid_ke():
    data = answer(IKEv2_Notify(proto=0, type=17, notify=struct.pack("!H", 19)))
    a = craft.parse_ike_answer(data)
    assert a.kind == "invalid-ke" and a.requested_group == 19
    assert a.requested_group_name == "ecp256"
    assert a.is_response and a.exchange == 34 and a.exchange_name == "IKE_SA_INIT"
    assert a.notify_types == [17] and a.notify_names == ["INVALID_KE_PAYLOAD"]
    assert a.size == len(data) == 38 and a.initiator_spi == SPI and a.error is None


def test_parse_no_proposal_chosen():
    a = craft.parse_ike_answer(answer(IKEv2_Notify(proto=0, type=14)))
    assert a.kind == "no-proposal-chosen" and a.requested_group is None and a.size == 36


def test_parse_accepted_with_chosen_proposal():
    sa = IKEv2_SA(prop=offer.proposal_chain([tf.parse_proposal("aes128gcm16-prfsha256-ecp256")]))
    data = answer(sa, IKEv2_KE(group=19, ke=b"\x01" * 64), IKEv2_Nonce(nonce=b"r" * 32),
                  IKEv2_Notify(proto=0, type=16430), rspi=b"\x11" * 8)
    a = craft.parse_ike_answer(data)
    assert a.kind == "sa-init-accepted"
    assert a.chosen_proposal == [(1, 20, 128), (2, 5, None), (4, 19, None)]
    assert a.chosen_proposal_text == "aes128gcm16-prfsha256-ecp256"
    assert a.ke_group == 19 and a.fragmentation_supported
    assert a.responder_spi == b"\x11" * 8
    d = a.as_dict()
    assert d["responder_spi"] == "11" * 8 and d["fragmentation_supported"] is True


def test_parse_with_non_esp_marker_and_other_kinds():
    data = answer(IKEv2_Notify(proto=0, type=17, notify=struct.pack("!H", 14)))
    a = craft.parse_ike_answer(craft.NON_ESP_MARKER + data)
    assert a.kind == "invalid-ke" and a.requested_group == 14 and a.size == len(data)
    # the same notify in a request, or in another exchange, is not an answer
    assert craft.parse_ike_answer(answer(IKEv2_Notify(proto=0, type=17,
                                                      notify=b"\x00\x0e"), flags=0x08)).kind \
        == "other"
    assert craft.parse_ike_answer(answer(IKEv2_Notify(proto=0, type=14), exch=35)).kind \
        == "other"
    # COOKIE challenge: answered, but neither accepted nor refused
    cookie = craft.parse_ike_answer(answer(IKEv2_Notify(proto=0, type=16390, notify=b"c" * 16)))
    assert cookie.kind == "other" and cookie.notify_types == [16390]


def test_parse_malformed_never_raises():
    assert craft.parse_ike_answer(b"").kind == "other"
    short = craft.parse_ike_answer(b"\x01" * 20)
    assert short.kind == "other" and "too short" in short.error
    ikev1 = bytearray(answer(IKEv2_Notify(proto=0, type=14)))
    ikev1[17] = 0x10
    v1 = craft.parse_ike_answer(bytes(ikev1))
    assert v1.kind == "other" and "not IKEv2" in v1.error
    data = answer(IKEv2_Notify(proto=0, type=14))
    trunc = craft.parse_ike_answer(data[:-3])
    assert "length" in (trunc.error or "")
    junk = craft.parse_ike_answer(data[:28] + b"\xff" * 40)
    assert junk.kind in ("other", "no-proposal-chosen")


# ---------------------------------------------------------------------------
# fake network: a UDP socket that plays an IKEv2 responder
# ---------------------------------------------------------------------------

GW = "198.51.100.2"


class FakeResponder:
    """Responder policy: configured proposals, blocked ports, fragment loss."""

    def __init__(self, configured=("aes128-sha256-modp2048", "aes128gcm16-prfsha256-ecp256"),
                 blocked=(), drop_fragments=False, mtu=1500):
        self.configured = [tf.parse_proposal(p) for p in configured]
        self.blocked = set(blocked)
        self.drop_fragments = drop_fragments
        self.mtu = mtu
        self.seen = []  # (port, udp payload length)
        self.created_state = 0

    def respond(self, port: int, datagram: bytes):
        self.seen.append((port, len(datagram)))
        if port in self.blocked:
            return None
        if self.drop_fragments and len(datagram) + 28 > self.mtu:
            return None
        marker = port == 4500
        if marker:
            if datagram[:4] != craft.NON_ESP_MARKER:
                return None
            datagram = datagram[4:]
        pls = payloads(datagram)
        sa = [p for p in pls if isinstance(p, IKEv2_SA)][0]
        ke = [p for p in pls if isinstance(p, IKEv2_KE)][0]
        offered = [set(ts) for _, ts in proposals_of(sa)]
        chosen = None
        for conf in self.configured:  # gateway preference order
            if any(set(conf.transform_ids()) <= o for o in offered):
                chosen = conf
                break
        spi = datagram[:8]
        if chosen is None:
            reply = answer(IKEv2_Notify(proto=0, type=14), spi=spi)
        elif ke.group not in chosen.dh_groups:
            reply = answer(IKEv2_Notify(proto=0, type=17,
                                        notify=struct.pack("!H", chosen.dh_groups[0])), spi=spi)
        else:
            self.created_state += 1
            reply = answer(IKEv2_SA(prop=offer.proposal_chain([chosen])),
                           IKEv2_KE(group=ke.group, ke=b"\x02" * len(ke.ke)),
                           IKEv2_Nonce(nonce=b"n" * 32), spi=spi, rspi=b"\x22" * 8)
        return (craft.NON_ESP_MARKER + reply) if marker else reply


class FakeSock:
    def __init__(self, responder=None, extra=()):
        self.responder = responder
        self.inbox = list(extra)  # datagrams delivered before the real answer
        self.sent = []
        self.timeouts = []
        self.peer = None
        self.closed = False

    def connect(self, addr):
        self.peer = addr

    def getsockname(self):
        return ("198.51.100.1", 40000)

    def sendto(self, data, addr):
        self.sent.append((data, addr))
        if self.responder:
            reply = self.responder.respond(addr[1], data)
            if reply is not None:
                self.inbox.append((reply, addr))
        return len(data)

    def send(self, data):
        return self.sendto(data, self.peer)

    def settimeout(self, t):
        self.timeouts.append(t)

    def recvfrom(self, n):
        if self.inbox:
            return self.inbox.pop(0)
        time.sleep(min(self.timeouts[-1], 0.01))
        raise socket.timeout()

    def close(self):
        self.closed = True


@pytest.fixture
def fake_net(monkeypatch):
    """Route every socket the probes create to one FakeResponder."""
    state = {"responder": FakeResponder(), "socks": []}

    def new_socket(family, src_port):
        s = FakeSock(state["responder"])
        state["socks"].append(s)
        return s

    monkeypatch.setattr(craft, "new_socket", new_socket)
    return state


def test_exchange_port_4500_adds_and_strips_marker():
    msg = craft.build_ike_sa_init("aes128-sha256-modp2048", 2, spi=SPI)
    sock = FakeSock(FakeResponder())
    ans = craft.exchange(GW, 4500, msg, timeout=0.2, sock=sock)
    assert sock.sent[0][0] == craft.NON_ESP_MARKER + msg
    assert sock.sent[0][1] == (GW, 4500)
    assert ans is not None and ans.kind == "invalid-ke" and ans.requested_group == 14
    assert ans.peer == (GW, 4500) and ans.rtt is not None and ans.size == 38
    sock = FakeSock(FakeResponder())
    craft.exchange(GW, 500, msg, timeout=0.2, sock=sock)
    assert sock.sent[0][0] == msg  # no marker on 500


def test_exchange_ignores_strays_and_returns_none_on_silence():
    msg = craft.build_ike_sa_init("aes128-sha256-modp2048", 2, spi=SPI)
    other_spi = answer(IKEv2_Notify(proto=0, type=14), spi=b"\x99" * 8)
    mine = answer(IKEv2_Notify(proto=0, type=14))
    strays = [
        (other_spi, (GW, 500)),  # someone else's exchange
        (mine, ("198.51.100.9", 500)),  # right SPI, wrong host
        (mine, (GW, 4500)),  # right SPI, wrong port
    ]
    sock = FakeSock(None, extra=strays + [(mine, (GW, 500))])
    ans = craft.exchange(GW, 500, msg, timeout=0.5, sock=sock)
    assert ans is not None and ans.kind == "no-proposal-chosen" and not sock.inbox
    # ESP (no marker) on 4500 is not taken for IKE
    sock = FakeSock(None, extra=[(mine, (GW, 4500))])
    assert craft.exchange(GW, 4500, msg, timeout=0.1, sock=sock) is None
    t0 = time.monotonic()
    assert craft.exchange(GW, 500, msg, timeout=0.15, sock=FakeSock(None)) is None
    assert time.monotonic() - t0 < 0.5


def test_probe_reports_refused():
    class Refusing(FakeSock):
        def recvfrom(self, n):
            raise ConnectionRefusedError(111, "Connection refused")

    res = craft.probe(GW, 500, craft.build_ike_sa_init("aes128-sha256-modp2048", 2),
                      timeout=0.2, sock=Refusing())
    assert res.status == "refused" and not res.answered


@pytest.mark.parametrize(
    "a, b, c, d, verdict, findings",
    [
        (True, True, True, None, "none", ["none"]),
        (False, True, False, True, "udp-500-blocked", ["udp-500-blocked"]),
        (False, True, False, False, "udp-500-blocked",
         ["udp-500-blocked", "ip-fragments-dropped"]),
        (True, False, True, None, "udp-4500-blocked", ["udp-4500-blocked"]),
        (True, False, False, None, "udp-4500-blocked",
         ["udp-4500-blocked", "ip-fragments-dropped"]),
        (True, True, False, None, "ip-fragments-dropped", ["ip-fragments-dropped"]),
        (False, False, False, None, "no-response", ["no-response"]),
        (False, True, True, None, "none", ["none"]),  # small 500 probe lost, big one answered
    ],
)
def test_reachability_verdict_table(a, b, c, d, verdict, findings):
    assert craft.reachability_verdict(a, b, c, d) == (verdict, findings)


@pytest.mark.parametrize(
    "blocked, frags, verdict",
    [((), False, "none"), ((500,), False, "udp-500-blocked"),
     ((4500,), False, "udp-4500-blocked"), ((), True, "ip-fragments-dropped"),
     ((500, 4500), False, "no-response")],
)
def test_reachability_against_fake_responder(fake_net, blocked, frags, verdict):
    fake_net["responder"] = resp = FakeResponder(blocked=blocked, drop_fragments=frags)
    r = craft.reachability(GW, timeout=0.05)
    assert r["verdict"] == verdict, r
    assert r["explanation"]
    sizes = [(port, n) for port, n in resp.seen]
    assert (500, 3000) in sizes  # the padded probe really had 3000 B of IKE
    assert any(port == 4500 and n < 1400 for port, n in sizes)  # marker + small message
    assert resp.created_state == 0  # decoy KE: never a half-open SA
    assert all(s.closed for s in fake_net["socks"])
    if verdict == "none":
        assert all(p["kind"] == "invalid-ke" for p in r["probes"].values())


def test_reachability_tries_resend_with_new_spi(fake_net):
    fake_net["responder"] = FakeResponder(blocked=(500, 4500))
    r = craft.reachability(GW, timeout=0.02, tries=2)
    assert r["verdict"] == "no-response"
    spis = {s.sent[0][0][:8] for s in fake_net["socks"] if s.sent and s.sent[0][1][1] == 500}
    assert len(spis) == 4  # 2 probes on 500 x 2 tries, each a fresh SPI


def test_accepted_proposals_against_fake_responder(fake_net):
    res = craft.accepted_proposals(
        GW, ["3des-sha1-modp1024", "aes128-sha256-modp2048", "GCMAES128-SHA256-ECP256",
             "aes256-sha256-modp2048"], timeout=0.05, delay=0)
    got = {r["proposal"]: (r["accepted"], r["requested_group"]) for r in res}
    assert got == {
        "3des-sha1-modp1024": (False, None),
        "aes128-sha256-modp2048": (True, 14),
        "aes128gcm16-prfsha256-ecp256": (True, 19),
        "aes256-sha256-modp2048": (False, None),
    }
    assert [r["windows"] for r in res][:2] == ["DES3-SHA196-Group2", "AES128-SHA256-Group14"]
    assert all(r["ke_group_sent"] not in tf.parse_proposal(r["proposal"]).dh_groups
               for r in res)
    assert fake_net["responder"].created_state == 0
    assert len(fake_net["socks"]) == 4  # exactly one probe per candidate


def test_accepted_proposals_silence_and_state_warning(fake_net):
    fake_net["responder"] = FakeResponder(blocked=(500,))
    res = craft.accepted_proposals(GW, ["aes128-sha256-modp2048"], timeout=0.02)
    assert res[0]["accepted"] is None and res[0]["status"] == "timeout"
    fake_net["responder"] = FakeResponder()
    res = craft.accepted_proposals(GW, ["aes128-sha256-modp2048"], timeout=0.05,
                                   ke_group="modp2048")
    assert res[0]["accepted"] is True and res[0]["state_created"] is True
    assert "half-open" in res[0]["note"]


def test_preferred_group_uses_gateway_order(fake_net):
    pref = craft.preferred_group(GW, ["aes128gcm16-prfsha256-ecp256", "aes128-sha256-modp2048"],
                                 timeout=0.05)
    assert pref["group"] == 14 and pref["group_name"] == "modp2048"
    assert pref["matching"] == ["aes128-sha256-modp2048"]
    fake_net["responder"] = FakeResponder(configured=("aes256gcm16-prfsha384-ecp384",))
    assert craft.preferred_group(GW, ["aes128-sha256-modp2048"], timeout=0.05)["group"] is None
