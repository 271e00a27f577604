"""Rebuilding IKE messages from charon's log: sizes, packets, IKE fragments, retransmits."""
from aovpn_lab.ike import messages

CONNECTED = """\
initiating IKE_SA aovpn-probe[3] to 203.0.113.10
generating IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(REDIR_SUP) ]
sending packet: from 192.0.2.10[500] to 203.0.113.10[500] (464 bytes)
received packet: from 203.0.113.10[500] to 192.0.2.10[500] (472 bytes)
parsed IKE_SA_INIT response 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(CHDLESS_SUP) N(MULT_AUTH) ]
selected proposal: IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048
splitting IKE message (5936 bytes) into 5 fragments
generating IKE_AUTH request 1 [ EF(1/5) ]
generating IKE_AUTH request 1 [ EF(2/5) ]
generating IKE_AUTH request 1 [ EF(3/5) ]
generating IKE_AUTH request 1 [ EF(4/5) ]
generating IKE_AUTH request 1 [ EF(5/5) ]
sending packet: from 192.0.2.10[4500] to 203.0.113.10[4500] (1236 bytes)
sending packet: from 192.0.2.10[4500] to 203.0.113.10[4500] (1236 bytes)
sending packet: from 192.0.2.10[4500] to 203.0.113.10[4500] (1236 bytes)
sending packet: from 192.0.2.10[4500] to 203.0.113.10[4500] (1236 bytes)
sending packet: from 192.0.2.10[4500] to 203.0.113.10[4500] (1100 bytes)
received packet: from 203.0.113.10[4500] to 192.0.2.10[4500] (1236 bytes)
parsed IKE_AUTH response 1 [ EF(1/2) ]
received packet: from 203.0.113.10[4500] to 192.0.2.10[4500] (600 bytes)
received fragment #2 of 2, reassembled fragmented IKE message (1800 bytes)
parsed IKE_AUTH response 1 [ IDr CERT AUTH CPRP(ADDR) SA TSi TSr ]
""".splitlines()

LOST = """\
generating IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) ]
sending packet: from 192.0.2.10[500] to 203.0.113.10[500] (464 bytes)
retransmit 1 of request with message ID 0
sending packet: from 192.0.2.10[500] to 203.0.113.10[500] (464 bytes)
retransmit 2 of request with message ID 0
sending packet: from 192.0.2.10[500] to 203.0.113.10[500] (464 bytes)
giving up after 2 retransmits
""".splitlines()


def test_a_fragmented_ike_auth_counts_its_fragments_and_keeps_the_unfragmented_size():
    msgs = messages.parse(CONNECTED)
    req = messages.find(msgs, "IKE_AUTH", "request")
    assert (req.size, req.ike_fragments, req.packets, req.wire_bytes) == (5936, 5, 5, 4 * 1236 + 1100)
    assert req.dst == "203.0.113.10:4500"


def test_a_reassembled_response_is_one_message_with_its_full_size():
    msgs = messages.parse(CONNECTED)
    resp = messages.find(msgs, "IKE_AUTH", "response")
    assert resp.direction == "received"
    assert resp.size == 1836 and resp.packets == 2 and resp.ike_fragments == 2
    assert "CERT" in resp.payloads


def test_ike_sa_init_sizes_and_payloads():
    msgs = messages.parse(CONNECTED)
    init = messages.find(msgs, "IKE_SA_INIT", "request")
    assert init.size == 464 and init.packets == 1 and "N(FRAG_SUP)" in init.payloads
    assert messages.find(msgs, "IKE_SA_INIT", "response").size == 472


def test_retransmits_are_counted_once_not_as_extra_packets():
    msgs = messages.parse(LOST)
    assert len(msgs) == 1
    assert msgs[0].retransmits == 2 and msgs[0].packets == 1 and msgs[0].size == 464


def test_after_a_cookie_round_the_repeated_ike_sa_init_is_the_one_reported():
    lines = """\
generating IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) ]
sending packet: from 192.0.2.10[500] to 203.0.113.10[500] (464 bytes)
received packet: from 203.0.113.10[500] to 192.0.2.10[500] (60 bytes)
parsed IKE_SA_INIT response 0 [ N(COOKIE) ]
generating IKE_SA_INIT request 0 [ N(COOKIE) SA KE No N(NATD_S_IP) N(NATD_D_IP) ]
sending packet: from 192.0.2.10[500] to 203.0.113.10[500] (480 bytes)
received packet: from 203.0.113.10[500] to 192.0.2.10[500] (472 bytes)
parsed IKE_SA_INIT response 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) ]
""".splitlines()
    msgs = messages.parse(lines)
    assert messages.find(msgs, "IKE_SA_INIT", "request").size == 480
    assert messages.find(msgs, "IKE_SA_INIT", "response").size == 472


def test_a_message_logged_whole_then_split_is_one_fragmented_message():
    lines = """\
generating IKE_AUTH request 1 [ IDi CERT CERT CERT N(INIT_CONTACT) CERTREQ IDr AUTH SA TSi TSr ]
splitting IKE message (6160 bytes) into 6 fragments
generating IKE_AUTH request 1 [ EF(1/6) ]
generating IKE_AUTH request 1 [ EF(2/6) ]
sending packet: from 192.0.2.10[4500] to 203.0.113.10[4500] (1236 bytes)
sending packet: from 192.0.2.10[4500] to 203.0.113.10[4500] (324 bytes)
""".splitlines()
    (req,) = messages.parse(lines)
    assert (req.size, req.ike_fragments, req.packets) == (6160, 6, 2)
    assert "CERT" in req.payloads
