"""LCP negotiation against the Configure-Requests Windows and SoftEther servers send."""
from __future__ import annotations

import pytest
from scapy.layers.ppp import (
    PPP,
    PPP_LCP,
    PPP_LCP_ACCM_Option,
    PPP_LCP_Auth_Protocol_Option,
    PPP_LCP_Callback_Option,
    PPP_LCP_Code_Reject,
    PPP_LCP_Configure,
    PPP_LCP_Echo,
    PPP_LCP_Magic_Number_Option,
    PPP_LCP_MRU_Option,
    PPP_LCP_Option,
    PPP_LCP_Terminate,
)

from aovpn_lab.sstp.ppp.events import (
    FrameDiscarded,
    LinkEstablished,
    LinkTerminated,
    NegotiationFailed,
    StartTimer,
    StopTimer,
)
from aovpn_lab.sstp.ppp.lcp import LcpNegotiator
from aovpn_lab.sstp.ppp.negotiation import State

OUR_MAGIC = 0x11111111
SERVER_MAGIC = 0x5A3C0F12
EAP = PPP_LCP_Auth_Protocol_Option(auth_protocol=0xC227)
MSCHAPV2 = PPP_LCP_Auth_Protocol_Option(auth_protocol=0xC223, algorithm=0x81)
CALLBACK = PPP_LCP_Callback_Option(operation=6)  # Windows: CBCP
MRRU = PPP_LCP_Option(type=17, data=b"\x06\x4e")
ENDPOINT = PPP_LCP_Option(type=19, data=b"\x01" + bytes(range(20)))


def rng(n: int) -> bytes:
    return b"\x11" * n


def negotiator(**kwargs) -> LcpNegotiator:
    return LcpNegotiator(random_bytes=rng, **kwargs)


def windows_request(identifier=1, *options):
    """The first LCP Configure-Request of a Windows RRAS SSTP server."""
    options = options or (PPP_LCP_MRU_Option(max_recv_unit=1500), EAP,
                          PPP_LCP_Magic_Number_Option(magic_number=SERVER_MAGIC),
                          CALLBACK, MRRU, ENDPOINT)
    return bytes(PPP_LCP_Configure(code=1, id=identifier, options=list(options)))


def answer(out, index=0):
    """Dissect one frame the client sent."""
    pkt = PPP(out.frames[index])
    assert bytes(pkt)[:4] in (b"\xff\x03\xc0\x21",), "every frame starts FF 03 C0 21"
    return pkt[PPP].payload  # PPP_LCP_Configure, PPP_LCP_Echo, ... by code


def test_open_sends_a_configure_request_with_our_magic_and_arms_the_timer():
    out = negotiator().open()
    request = answer(out)
    assert request.code == 1 and request.id == 1
    assert [o.type for o in request.options] == [5]
    assert request.options[0].magic_number == OUR_MAGIC
    assert out.timers == [StartTimer("lcp", 3.0)]


def test_open_can_ask_for_an_mru():
    request = answer(negotiator(mru=1400).open())
    assert request.options[0].max_recv_unit == 1400


def test_windows_request_gets_callback_mrru_and_endpoint_rejected_verbatim():
    lcp = negotiator()
    lcp.open()
    out = lcp.receive(windows_request(7))
    reject = answer(out)
    assert reject.code == 4 and reject.id == 7
    assert bytes(reject)[4:] == bytes(CALLBACK) + bytes(MRRU) + bytes(ENDPOINT)


def test_eap_is_naked_with_mschapv2():
    lcp = negotiator()
    lcp.open()
    out = lcp.receive(windows_request(
        8, PPP_LCP_MRU_Option(max_recv_unit=1500), EAP,
        PPP_LCP_Magic_Number_Option(magic_number=SERVER_MAGIC)))
    nak = answer(out)
    assert nak.code == 3 and nak.id == 8
    assert bytes(nak)[4:] == bytes.fromhex("0305c22381")  # only the auth option, C2 23 81


def test_eap_is_naked_with_pap_when_the_caller_asks_for_pap():
    lcp = negotiator(auth="PAP")
    lcp.open()
    nak = answer(lcp.receive(windows_request(2, EAP)))
    assert nak.code == 3 and bytes(nak)[4:] == bytes.fromhex("0304c023")


def test_mschapv2_request_is_acked_byte_for_byte():
    lcp = negotiator()
    lcp.open()
    request = windows_request(
        9, PPP_LCP_MRU_Option(max_recv_unit=1500), MSCHAPV2,
        PPP_LCP_Magic_Number_Option(magic_number=SERVER_MAGIC),
        PPP_LCP_Option(type=7), PPP_LCP_Option(type=8), PPP_LCP_ACCM_Option(accm=0))
    ack = answer(lcp.receive(request))
    assert ack.code == 2 and ack.id == 9
    assert bytes(ack)[4:] == request[4:]
    assert lcp.state is State.ACK_SENT


def test_link_is_established_when_both_sides_are_acked():
    lcp = negotiator()
    ours = answer(lcp.open())
    lcp.receive(windows_request(
        3, PPP_LCP_MRU_Option(max_recv_unit=1400), MSCHAPV2,
        PPP_LCP_Magic_Number_Option(magic_number=SERVER_MAGIC)))
    out = lcp.receive(bytes(PPP_LCP_Configure(code=2, id=ours.id, options=ours.options)))
    assert out.events == [LinkEstablished(auth_protocol="MS-CHAPv2", peer_mru=1400)]
    assert StopTimer("lcp") in out.timers
    assert lcp.is_opened and lcp.peer_magic == SERVER_MAGIC


def test_server_without_auth_option_means_no_authentication():
    lcp = negotiator()
    ours = answer(lcp.open())
    out = lcp.receive(bytes(PPP_LCP_Configure(code=2, id=ours.id, options=ours.options)))
    assert lcp.state is State.ACK_RCVD and out.events == []
    out = lcp.receive(windows_request(4, PPP_LCP_Magic_Number_Option(magic_number=SERVER_MAGIC)))
    assert out.events == [LinkEstablished(auth_protocol=None, peer_mru=None)]


def test_configure_ack_that_does_not_match_our_request_is_discarded():
    lcp = negotiator()
    ours = answer(lcp.open())
    wrong_id = bytes(PPP_LCP_Configure(code=2, id=ours.id + 1, options=ours.options))
    wrong_options = bytes(PPP_LCP_Configure(code=2, id=ours.id, options=[]))
    for ack in (wrong_id, wrong_options):
        out = lcp.receive(ack)
        assert isinstance(out.events[0], FrameDiscarded) and not out.frames
    assert lcp.state is State.REQ_SENT


def opened(**kwargs) -> LcpNegotiator:
    lcp = negotiator(**kwargs)
    ours = answer(lcp.open())
    lcp.receive(windows_request(
        1, MSCHAPV2, PPP_LCP_Magic_Number_Option(magic_number=SERVER_MAGIC)))
    lcp.receive(bytes(PPP_LCP_Configure(code=2, id=ours.id, options=ours.options)))
    assert lcp.is_opened
    return lcp


def test_echo_request_is_answered_with_our_magic_and_the_same_data():
    lcp = opened()
    out = lcp.receive(bytes(PPP_LCP_Echo(code=9, id=0x42, magic_number=SERVER_MAGIC, data=b"ping")))
    reply = answer(out)
    assert reply.code == 10 and reply.id == 0x42
    assert reply.magic_number == OUR_MAGIC and reply.data == b"ping"


def test_echo_request_before_opened_is_discarded():
    lcp = negotiator()
    lcp.open()
    out = lcp.receive(bytes(PPP_LCP_Echo(code=9, id=1, magic_number=SERVER_MAGIC)))
    assert not out.frames and isinstance(out.events[0], FrameDiscarded)


def test_magic_number_collision_is_naked_with_a_new_value():
    lcp = negotiator()
    lcp.open()
    colliding = PPP_LCP_Magic_Number_Option(magic_number=OUR_MAGIC)
    nak = answer(lcp.receive(windows_request(5, colliding)))
    assert nak.code == 3
    assert nak.options[0].type == 5
    assert nak.options[0].magic_number not in (0, OUR_MAGIC)


def test_nak_of_our_magic_makes_us_pick_another():
    lcp = negotiator()
    first = answer(lcp.open())
    nak = PPP_LCP_Configure(code=3, id=first.id, options=first.options)
    second = answer(lcp.receive(bytes(nak)))
    assert second.options[0].magic_number != OUR_MAGIC


def test_nak_of_our_mru_is_adopted_with_a_new_identifier():
    lcp = negotiator(mru=1500)
    first = answer(lcp.open())
    nak = PPP_LCP_Configure(code=3, id=first.id, options=[PPP_LCP_MRU_Option(max_recv_unit=1400)])
    second = answer(lcp.receive(bytes(nak)))
    assert second.code == 1 and second.id == first.id + 1
    assert second.options[0].max_recv_unit == 1400


def test_reject_of_our_magic_drops_it_from_the_next_request():
    lcp = negotiator()
    first = answer(lcp.open())
    reject = PPP_LCP_Configure(code=4, id=first.id, options=first.options)
    second = answer(lcp.receive(bytes(reject)))
    assert second.code == 1 and second.options == []


def test_reject_listing_options_we_never_sent_is_discarded():
    lcp = negotiator()
    first = answer(lcp.open())
    reject = PPP_LCP_Configure(code=4, id=first.id, options=[PPP_LCP_MRU_Option()])
    out = lcp.receive(bytes(reject))
    assert not out.frames and isinstance(out.events[0], FrameDiscarded)


def test_timeout_retransmits_the_same_request_then_gives_up():
    lcp = negotiator(max_configure=3)
    first = lcp.open().frames[0]
    assert lcp.timeout().frames == [first]
    assert lcp.timeout().frames == [first]
    out = lcp.timeout()
    assert not out.frames
    assert isinstance(out.events[0], NegotiationFailed)
    assert "3 Configure-Requests" in out.events[0].reason
    assert lcp.state is State.CLOSED


def test_server_that_insists_on_eap_gets_a_reject_after_max_failure():
    lcp = negotiator(max_failure=2)
    lcp.open()
    codes = [answer(lcp.receive(windows_request(i, EAP))).code for i in range(1, 5)]
    assert codes == [3, 3, 4, 4]


def test_terminate_request_is_acked_and_reported():
    lcp = opened()
    out = lcp.receive(bytes(PPP_LCP_Terminate(code=5, id=9, data=b"bye")))
    ack = answer(out)
    assert ack.code == 6 and ack.id == 9
    assert isinstance(out.events[0], LinkTerminated) and "bye" in out.events[0].reason
    assert lcp.state is State.CLOSED


def test_close_sends_terminate_request_and_finishes_on_ack():
    lcp = opened()
    request = answer(lcp.close("user hung up"))
    assert request.code == 5
    out = lcp.receive(bytes(PPP_LCP_Terminate(code=6, id=request.id)))
    assert out.events == [LinkTerminated("LCP", "user hung up")]


def test_unknown_code_is_code_rejected_with_the_packet():
    lcp = opened()
    unknown = bytes(PPP_LCP(code=14, id=3, data=b"\x01\x02"))
    reject = answer(lcp.receive(unknown))
    assert reject.code == 7
    assert bytes(reject)[4:] == unknown
    assert isinstance(reject, PPP_LCP_Code_Reject)


@pytest.mark.parametrize(
    "information",
    [b"\x01\x01", bytes.fromhex("01 01 00 20 05 06"), bytes.fromhex("01 01 00 06 05 09")],
    ids=["short header", "length beyond data", "option overruns"],
)
def test_malformed_packets_are_discarded_with_a_reason(information):
    lcp = negotiator()
    lcp.open()
    out = lcp.receive(information)
    assert not out.frames
    assert isinstance(out.events[0], FrameDiscarded) and out.events[0].protocol == "LCP"


def test_known_option_with_a_wrong_length_is_rejected():
    lcp = negotiator()
    lcp.open()
    bad_mru = PPP_LCP_Option(type=1, data=b"\x05")
    reject = answer(lcp.receive(windows_request(2, bad_mru)))
    assert reject.code == 4 and bytes(reject)[4:] == bytes(bad_mru)
