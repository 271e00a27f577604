"""MS-CHAPv2 and PAP clients against server frames, using the RFC 2759 9.2 exchange."""
from __future__ import annotations

import pytest
from scapy.layers.ppp import (
    PPP,
    PPP_CHAP,
    PPP_CHAP_ChallengeResponse,
    PPP_PAP_Request,
    PPP_PAP_Response,
)

from aovpn_lab.sstp.ppp.auth import MsChapV2Client, PapClient
from aovpn_lab.sstp.ppp.events import (
    AuthFailed,
    AuthSucceeded,
    FrameDiscarded,
    StartTimer,
    StopTimer,
)

AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
S_VALUE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"
SERVER_SEND_START_KEY = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")


class CountingRandom:
    def __init__(self):
        self.calls = 0

    def __call__(self, n: int) -> bytes:
        self.calls += 1
        return PEER_CHALLENGE[:n]


def challenge(identifier=0x2A, value=AUTH_CHALLENGE, name=b"RRAS-01"):
    return bytes(PPP_CHAP_ChallengeResponse(code=1, id=identifier, value=value, optional_name=name))


def chap(code, identifier, text: bytes) -> bytes:
    return bytes(PPP_CHAP(code=code, id=identifier, data=text))


def client(username="User", rng=None):
    return MsChapV2Client(username, "clientPass", random_bytes=rng or CountingRandom())


def sent(out):
    pkt = PPP(out.frames[0])
    assert bytes(pkt)[:2] == b"\xff\x03"
    return pkt[PPP].payload


def test_start_only_waits_for_the_challenge():
    out = client().start()
    assert not out.frames and out.timers == [StartTimer("auth", 30.0)]


def test_challenge_is_answered_with_the_rfc_2759_response():
    out = client().receive(challenge())
    response = sent(out)
    assert response.code == 2 and response.id == 0x2A
    assert response.value_size == 49
    assert response.value == PEER_CHALLENGE + bytes(8) + NT_RESPONSE + b"\x00"  # flags 0
    assert response.optional_name == b"User"
    assert out.timers == [StartTimer("auth", 30.0)]


def test_name_field_keeps_the_domain_but_the_hash_does_not():
    response = sent(client("CORP\\User").receive(challenge()))
    assert response.optional_name == b"CORP\\User"
    assert response.value[24:48] == NT_RESPONSE


def test_success_with_the_right_authenticator_response_yields_the_keys():
    c = client()
    c.receive(challenge())
    out = c.receive(chap(3, 0x2A, S_VALUE + b" M=Welcome to RRAS"))
    event = out.event(AuthSucceeded)
    assert event.method == "MS-CHAPv2" and event.message == "Welcome to RRAS"
    assert event.keys.receive_key == SERVER_SEND_START_KEY
    assert event.hlak == event.keys.send_key + SERVER_SEND_START_KEY
    assert out.timers == [StopTimer("auth")]
    assert not out.frames  # nothing to acknowledge in PPP (unlike EAP-MSCHAPv2)


def test_success_with_a_wrong_authenticator_response_is_a_failure():
    c = client()
    c.receive(challenge())
    out = c.receive(chap(3, 0x2A, b"S=" + b"0" * 40 + b" M=ok"))
    event = out.event(AuthFailed)
    assert event.code is None and "does not verify" in event.reason


def test_success_without_s_value_is_a_failure():
    c = client()
    c.receive(challenge())
    assert "no valid S=" in c.receive(chap(3, 0x2A, b"M=ok")).event(AuthFailed).reason


def test_failure_691_is_reported_with_code_reason_and_message():
    c = client()
    c.receive(challenge())
    out = c.receive(chap(4, 0x2A, b"E=691 R=0 C=" + b"0" * 32 + b" V=3 M=Access denied"))
    event = out.event(AuthFailed)
    assert event.code == 691
    assert event.reason.startswith("ERROR_AUTHENTICATION_FAILURE")
    assert event.message == "Access denied" and event.retry_allowed is False


def test_retransmitted_challenge_gets_the_identical_response():
    rng = CountingRandom()
    c = client(rng=rng)
    first = c.receive(challenge()).frames
    again = c.receive(challenge()).frames
    assert first == again and rng.calls == 1


def test_new_challenge_starts_over():
    rng = CountingRandom()
    c = client(rng=rng)
    c.receive(challenge(identifier=1))
    response = sent(c.receive(challenge(identifier=2, value=bytes(16))))
    assert response.id == 2 and rng.calls == 2
    assert response.value[24:48] != NT_RESPONSE


def test_success_with_a_foreign_identifier_is_discarded():
    c = client()
    c.receive(challenge(identifier=5))
    out = c.receive(chap(3, 6, S_VALUE))
    assert isinstance(out.events[0], FrameDiscarded) and not c.finished


def test_success_before_any_challenge_is_discarded():
    out = client().receive(chap(3, 1, S_VALUE))
    assert isinstance(out.events[0], FrameDiscarded)


def test_challenge_of_the_wrong_size_fails_authentication():
    out = client().receive(challenge(value=bytes(8)))
    assert "Value-Size 8" in out.event(AuthFailed).reason and not out.frames


def test_timeout_before_the_challenge_fails_with_a_reason():
    c = client()
    c.start()
    assert "no Challenge" in c.timeout().event(AuthFailed).reason


def test_timeout_after_the_response_names_the_missing_answer():
    c = client()
    c.receive(challenge())
    assert "no Success/Failure" in c.timeout().event(AuthFailed).reason


def test_frames_after_the_outcome_are_discarded():
    c = client()
    c.receive(challenge())
    c.receive(chap(3, 0x2A, S_VALUE))
    assert isinstance(c.receive(challenge()).events[0], FrameDiscarded)


# -- PAP ---------------------------------------------------------------------------


def test_pap_sends_the_credentials_and_succeeds_on_ack():
    pap = PapClient("alice", "s3cret")
    request = sent(pap.start())
    assert isinstance(request, PPP_PAP_Request)
    assert request.username == b"alice" and request.password == b"s3cret"
    out = pap.receive(bytes(PPP_PAP_Response(code=2, id=request.id, message=b"Login ok")))
    event = out.event(AuthSucceeded)
    assert event.method == "PAP" and event.keys is None and event.message == "Login ok"
    assert event.hlak == bytes(32)


def test_pap_nak_is_a_failure_with_the_server_message():
    pap = PapClient("alice", "wrong")
    request = sent(pap.start())
    out = pap.receive(bytes(PPP_PAP_Response(code=3, id=request.id, message=b"Bad password")))
    event = out.event(AuthFailed)
    assert event.method == "PAP" and event.message == "Bad password"


def test_pap_ignores_an_answer_to_another_request():
    pap = PapClient("alice", "s3cret")
    request = sent(pap.start())
    out = pap.receive(bytes(PPP_PAP_Response(code=2, id=request.id + 1)))
    assert isinstance(out.events[0], FrameDiscarded) and not pap.finished


@pytest.mark.parametrize("attempts", [1, 3])
def test_pap_retransmits_then_gives_up(attempts):
    pap = PapClient("alice", "s3cret", max_requests=attempts)
    first = pap.start().frames
    for _ in range(attempts - 1):
        assert pap.timeout().frames == first
    out = pap.timeout()
    assert f"no answer to {attempts}" in out.event(AuthFailed).reason
