"""The whole client PPP link against a scripted Windows-like server, through to the
CALL_CONNECTED that RRAS would verify."""
from __future__ import annotations

import hashlib

import pytest
from scapy.layers.inet import IP, ICMP
from scapy.layers.ppp import (
    HDLC,
    PPP,
    PPP_CHAP,
    PPP_CHAP_ChallengeResponse,
    PPP_IPCP,
    PPP_IPCP_Option_IPAddress,
    PPP_LCP_Auth_Protocol_Option,
    PPP_LCP_Callback_Option,
    PPP_LCP_Configure,
    PPP_LCP_Magic_Number_Option,
    PPP_LCP_MRU_Option,
    PPP_LCP_Option,
    PPP_LCP_Protocol_Reject,
    PPP_LCP_Terminate,
    PPP_PAP_Response,
)

from aovpn_lab.sstp import binding, messages, serverbinding
from aovpn_lab.sstp.ppp import (
    AuthFailed,
    AuthMethod,
    AuthSucceeded,
    DatagramReceived,
    FrameDiscarded,
    IpAssigned,
    LinkEstablished,
    LinkTerminated,
    Phase,
    PppConfig,
    PppSession,
    StartTimer,
)

AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
S_VALUE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"
EAP = PPP_LCP_Auth_Protocol_Option(auth_protocol=0xC227)
MSCHAPV2 = PPP_LCP_Auth_Protocol_Option(auth_protocol=0xC223, algorithm=0x81)
PAP = PPP_LCP_Auth_Protocol_Option(auth_protocol=0xC023)
SERVER_MAGIC = PPP_LCP_Magic_Number_Option(magic_number=0x0BADCAFE)


def config(**kwargs) -> PppConfig:
    return PppConfig("User", "clientPass", random_bytes=lambda n: PEER_CHALLENGE[:n], **kwargs)


def wire(protocol: int, pkt) -> bytes:
    return bytes(HDLC() / PPP(proto=protocol) / pkt)


def lcp(pkt) -> bytes:
    return wire(0xC021, pkt)


def payload(frame: bytes):
    return PPP(frame)[PPP].payload


def find(out, protocol: int, code: int):
    for frame in out.frames:
        pkt = PPP(frame)
        if pkt[PPP].proto == protocol and pkt[PPP].payload.code == code:
            return pkt[PPP].payload
    raise AssertionError(f"no frame protocol 0x{protocol:04x} code {code} in {out.frames!r}")


def establish(session: PppSession, *server_options) -> object:
    """LCP the way RRAS does it: options to reject, EAP to nak, then agreement."""
    ours = payload(session.start().frames[0])
    windows = [PPP_LCP_MRU_Option(max_recv_unit=1500), EAP, SERVER_MAGIC,
               PPP_LCP_Callback_Option(operation=6), PPP_LCP_Option(type=17, data=b"\x06\x4e"),
               PPP_LCP_Option(type=19, data=b"\x01" + bytes(20))]
    assert find(session.receive(lcp(PPP_LCP_Configure(id=1, options=windows))), 0xC021, 4)
    assert find(session.receive(lcp(PPP_LCP_Configure(id=2, options=windows[:3]))), 0xC021, 3)
    session.receive(lcp(PPP_LCP_Configure(code=2, id=ours.id, options=ours.options)))
    return session.receive(lcp(PPP_LCP_Configure(id=3, options=list(server_options))))


def test_windows_like_server_end_to_end_with_mschapv2():
    session = PppSession(config())
    out = establish(session, PPP_LCP_MRU_Option(max_recv_unit=1500), MSCHAPV2, SERVER_MAGIC)
    assert find(out, 0xC021, 2).id == 3
    assert out.event(LinkEstablished).auth_protocol == "MS-CHAPv2"
    assert session.phase is Phase.AUTHENTICATE
    assert StartTimer("auth", 30.0) in out.timers

    # RRAS offers IPv6 too; a client without IPV6CP must Protocol-Reject it.
    ipv6cp = wire(0x8057, b"\x01\x01\x00\x0e\x01\x0a" + bytes(8))
    rejected = find(session.receive(ipv6cp), 0xC021, 8)
    assert isinstance(rejected, PPP_LCP_Protocol_Reject)
    assert rejected.rejected_protocol == 0x8057

    challenge = PPP_CHAP_ChallengeResponse(
        code=1, id=9, value=AUTH_CHALLENGE, optional_name=b"RRAS")
    response = find(session.receive(wire(0xC223, challenge)), 0xC223, 2)
    assert response.value[24:48] == NT_RESPONSE and response.optional_name == b"User"

    out = session.receive(wire(0xC223, PPP_CHAP(code=3, id=9, data=S_VALUE + b" M=Access granted")))
    auth = out.event(AuthSucceeded)
    assert auth is not None and session.phase is Phase.NETWORK
    ipcp_request = find(out, 0x8021, 1)  # IPCP starts right after authentication

    # IPCP: the server states its address, naks ours, then acks the repeat.
    session.receive(wire(0x8021, PPP_IPCP(code=1, id=1, options=[
        PPP_IPCP_Option_IPAddress(data="172.16.8.1")])))
    again = find(session.receive(wire(0x8021, PPP_IPCP(code=3, id=ipcp_request.id, options=[
        PPP_IPCP_Option_IPAddress(data="172.16.8.21")]))), 0x8021, 1)
    out = session.receive(wire(0x8021, PPP_IPCP(code=2, id=again.id, options=again.options)))
    assert out.event(IpAssigned) == IpAssigned("172.16.8.21", "172.16.8.1", ())
    assert session.phase is Phase.RUNNING

    ping = bytes(IP(src="172.16.8.1", dst="172.16.8.21") / ICMP())
    assert session.receive(wire(0x0021, ping)).events == [DatagramReceived(0x0021, ping)]
    assert session.send_datagram(ping) == b"\xff\x03\x00\x21" + ping

    # The SSTP layer then sends CALL_CONNECTED keyed with the event's HLAK; the server,
    # holding the same keys from its side, must be able to verify it.
    nonce, cert_der = bytes(range(32)), b"the server's certificate"
    connected = bytes(binding.build_call_connected(
        messages.HashProtocol.SHA256, nonce, hashlib.sha256(cert_der).digest(), auth.hlak))
    server = serverbinding.server_keys("clientPass", NT_RESPONSE)
    assert serverbinding.check_call_connected(connected, hlak=server.hlak, nonce=nonce, certificate_der=cert_der,
                                              offered=frozenset({2})) == 2


def test_every_frame_fits_an_sstp_data_packet():
    session = PppSession(config())
    frame = session.start().frames[0]
    packet = messages.parse_packet(bytes(messages.data_packet(frame)))
    assert bytes(packet.payload) == frame


def test_authentication_failure_terminates_the_link():
    session = PppSession(config())
    establish(session, MSCHAPV2, SERVER_MAGIC)
    challenge = PPP_CHAP_ChallengeResponse(code=1, id=4, value=AUTH_CHALLENGE)
    session.receive(wire(0xC223, challenge))
    out = session.receive(wire(0xC223, PPP_CHAP(code=4, id=4, data=b"E=691 R=0 V=3 M=denied")))
    assert out.event(AuthFailed).code == 691
    terminate = find(out, 0xC021, 5)
    assert session.phase is Phase.TERMINATE
    out = session.receive(lcp(PPP_LCP_Terminate(code=6, id=terminate.id)))
    ended = out.event(LinkTerminated)
    assert ended.protocol == "LCP" and "ERROR_AUTHENTICATION_FAILURE" in ended.reason
    assert session.phase is Phase.DEAD


def test_pap_session_uses_a_zero_hlak():
    session = PppSession(config(auth=AuthMethod.PAP))
    out = establish(session, PAP, SERVER_MAGIC)
    assert out.event(LinkEstablished).auth_protocol == "PAP"
    request = find(out, 0xC023, 1)
    out = session.receive(wire(0xC023, PPP_PAP_Response(code=2, id=request.id)))
    assert out.event(AuthSucceeded).hlak == bytes(32)
    assert find(out, 0x8021, 1)


def test_server_without_authentication_still_reports_auth_done():
    session = PppSession(config())
    out = establish(session, SERVER_MAGIC)
    assert out.event(AuthSucceeded) == AuthSucceeded("none")
    assert find(out, 0x8021, 1) and session.phase is Phase.NETWORK


def test_chap_before_lcp_is_open_is_discarded():
    session = PppSession(config())
    session.start()
    challenge = PPP_CHAP_ChallengeResponse(code=1, id=1, value=AUTH_CHALLENGE)
    out = session.receive(wire(0xC223, challenge))
    assert not out.frames and isinstance(out.events[0], FrameDiscarded)


def test_ipcp_before_authentication_is_discarded():
    session = PppSession(config())
    establish(session, MSCHAPV2, SERVER_MAGIC)
    out = session.receive(wire(0x8021, PPP_IPCP(code=1, id=1)))
    assert not out.frames and isinstance(out.events[0], FrameDiscarded)


def test_eap_after_our_nak_is_protocol_rejected():
    session = PppSession(config())
    establish(session, MSCHAPV2, SERVER_MAGIC)
    out = session.receive(wire(0xC227, b"\x01\x01\x00\x05\x01"))
    assert find(out, 0xC021, 8).rejected_protocol == 0xC227


@pytest.mark.parametrize("frame", [b"", b"\xff\x03", b"\xff\x03\xc0"])
def test_unusable_frames_are_discarded_not_raised(frame):
    session = PppSession(config())
    session.start()
    out = session.receive(frame)
    assert isinstance(out.events[0], FrameDiscarded) and out.events[0].protocol == "PPP"


def test_timers_are_routed_by_name():
    session = PppSession(config())
    first = session.start().frames
    assert session.timeout("lcp").frames == first
    assert session.timeout("no-such-timer").frames == []


def test_close_sends_terminate_request():
    session = PppSession(config())
    establish(session, MSCHAPV2, SERVER_MAGIC)
    out = session.close("user hung up")
    assert find(out, 0xC021, 5) and session.phase is Phase.TERMINATE


def test_sending_ip_before_running_is_refused():
    from aovpn_lab.sstp.errors import SstpProtocolError

    with pytest.raises(SstpProtocolError, match="cannot send IP"):
        PppSession(config()).send_datagram(b"\x45")
