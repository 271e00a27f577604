"""The SSTP client state machine against the in-process reference server (sans-IO):
every byte the client sends is what the server parses, and vice versa."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP

from aovpn_lab.sstp import messages
from aovpn_lab.sstp.client import (
    CallConnectedSent,
    ClientState,
    Closed,
    ConnectAcked,
    EchoAnswered,
    Failed,
    HttpAnswered,
    SstpClient,
    SstpClientConfig,
)
from aovpn_lab.sstp.messages import HashProtocol
from aovpn_lab.sstp.ppp import (
    AuthMethod,
    AuthSucceeded,
    DatagramReceived,
    IpAssigned,
    LinkEstablished,
    PppConfig,
    StartTimer,
)
from aovpn_lab.sstp.refserver import ReferenceSstpServer, RefServerConfig

CERT = b"0\x82\x01\x00 pretend DER of the server certificate"
OTHER_CERT = b"0\x82\x01\x00 the TLS-offloading balancer's certificate"
PASSWORD = "clientPass"


def make(auth="mschapv2", password=PASSWORD, **server_kwargs):
    client = SstpClient(SstpClientConfig(
        "vpn.example.net", PppConfig("User", password, auth=AuthMethod(
            {"mschapv2": "MS-CHAPv2", "pap": "PAP"}[auth])), CERT))
    server = ReferenceSstpServer(RefServerConfig(
        users={"User": PASSWORD}, cert_der=CERT, auth=auth, **server_kwargs))
    return client, server


def pump(client, server, out, *, chunk=None, rounds=60):
    """Carry bytes both ways until nobody has anything to say; returns client events."""
    events = list(out.events)
    pending = b"".join(out.data)
    for _ in range(rounds):
        if not pending or server.closed:
            break
        reply = server.receive(pending)
        pending = b""
        if not reply:
            break
        pieces = [reply] if chunk is None else [reply[i:i + chunk] for i in range(0, len(reply), chunk)]
        for piece in pieces:
            got = client.receive(piece)
            events += got.events
            pending += b"".join(got.data)
    return events


def kinds(events):
    return [type(e).__name__ for e in events]


def connect(auth="mschapv2", **kwargs):
    client, server = make(auth, **kwargs)
    events = pump(client, server, client.start())
    return client, server, events


def test_mschapv2_call_reaches_running_and_the_server_verifies_the_binding():
    client, server, events = connect()
    order = [k for k in kinds(events) if k in (
        "HttpAnswered", "ConnectAcked", "LinkEstablished", "AuthSucceeded", "CallConnectedSent",
        "IpAssigned")]
    assert order == ["HttpAnswered", "ConnectAcked", "LinkEstablished", "AuthSucceeded",
                     "CallConnectedSent", "IpAssigned"]
    assert client.state is ClientState.RUNNING and client.failure is None
    assert server.log.binding_ok is True and server.log.authenticated == "User"
    acked = next(e for e in events if isinstance(e, ConnectAcked))
    assert acked.hash_protocol is HashProtocol.SHA256 and acked.nonce == server.nonce
    assert next(e for e in events if isinstance(e, IpAssigned)).address == "198.19.3.10"
    # The server sends ECHO_REQUEST once connected; the client answered it.
    assert any(isinstance(e, EchoAnswered) for e in events) and client.echo_requests == 1


def test_ip_through_the_tunnel_and_a_clean_disconnect():
    client, server, _ = connect()
    ping = IP(src="198.19.3.10", dst="198.19.3.1") / ICMP(id=7, seq=1) / b"hello"
    events = pump(client, server, client.send_ip(bytes(ping)))
    reply = next(e for e in events if isinstance(e, DatagramReceived))
    answer = IP(reply.payload)
    assert answer.src == "198.19.3.1" and answer[ICMP].type == 0 and answer[ICMP].id == 7
    out = client.disconnect("test over")
    assert client.state is ClientState.PPP_TERMINATING
    events = pump(client, server, out)
    closed = next(e for e in events if isinstance(e, Closed))
    assert not closed.by_server and client.state is ClientState.CLOSED and server.closed


def test_pap_binds_with_the_null_hlak():
    client, server, events = connect("pap")
    assert next(e for e in events if isinstance(e, AuthSucceeded)).method == "PAP"
    assert server.log.binding_ok is True and client.state is ClientState.RUNNING


def test_sha1_only_server_gets_a_sha1_binding():
    _client, server, events = connect(hash_bitmask=HashProtocol.SHA1)
    sent = next(e for e in events if isinstance(e, CallConnectedSent))
    assert sent.hash_protocol is HashProtocol.SHA1 and sent.cert_hash[20:] == bytes(12)
    assert server.log.binding_ok is True


def test_byte_by_byte_delivery_changes_nothing():
    client, server = make()
    events = pump(client, server, client.start(), chunk=1)
    assert client.state is ClientState.RUNNING and server.log.binding_ok
    assert sum(isinstance(e, IpAssigned) for e in events) == 1


def test_wrong_certificate_hash_is_crypto_binding_rejected():
    client, server, events = connect(expected_cert_der=OTHER_CERT)
    failed = next(e for e in events if isinstance(e, Failed))
    assert failed.cause == "crypto-binding-rejected" and failed.phase == "ipcp"
    assert "CALL_ABORT" in failed.detail and "CRYPTO_BINDING" in failed.detail
    assert server.log.binding_ok is False and client.state is ClientState.CLOSED


def test_wrong_password_is_auth_failed_and_the_call_is_ended_politely():
    client, server = make(password="not the password")
    events = pump(client, server, client.start())
    failed = next(e for e in events if isinstance(e, Failed))
    assert (failed.cause, failed.phase) == ("auth-failed", "auth")
    assert "691" in failed.detail or "AUTHENTICATION_FAILURE" in failed.detail
    assert any(isinstance(e, Closed) for e in events) and server.closed
    assert not any(isinstance(e, CallConnectedSent) for e in events)


def test_pap_refused():
    client, server = make("pap", password="wrong")
    events = pump(client, server, client.start())
    assert next(e for e in events if isinstance(e, Failed)).cause == "auth-failed"


@pytest.mark.parametrize("answer, cause", [
    (b"HTTP/1.0 501 Unsupported method ('SSTP_DUPLEX_POST')\r\n\r\n", "not-sstp"),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "not-sstp"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not-sstp"),
])
def test_http_step_failures(answer, cause):
    client = SstpClient(SstpClientConfig("h", PppConfig("u", "p"), CERT))
    client.start()
    out = client.receive(answer)
    failed = out.event(Failed)
    assert (failed.cause, failed.phase) == (cause, "http")
    assert client.state is ClientState.CLOSED and out.data == []


def test_200_and_the_first_sstp_packets_in_one_read():
    client, server = make()
    request = client.start()
    reply = server.receive(b"".join(request.data))  # the 200 alone
    out = client.receive(reply)
    ack_and_lcp = server.receive(b"".join(out.data))
    out = client.receive(ack_and_lcp)
    assert out.event(ConnectAcked) and client.state is ClientState.PPP


def test_ppp_frames_before_the_ack_are_replayed_after_it():
    client = SstpClient(SstpClientConfig("h", PppConfig("u", "p"), CERT))
    client.start()
    client.receive(b"HTTP/1.1 200 OK\r\n\r\n")
    lcp_request = bytes.fromhex("ff03c021010100080304c023")  # Configure-Request, auth PAP
    out = client.receive(bytes(messages.data_packet(lcp_request)))
    assert out.data == [] and client.state is ClientState.CONNECT_REQUEST_SENT
    out = client.receive(bytes(messages.call_connect_ack(HashProtocol.SHA256, bytes(32))))
    frames = [messages.parse_packet(d) for d in out.data]
    # our own Configure-Request, then the Nak (we want MS-CHAPv2) to the early request
    codes = [bytes(p.payload)[4] for p in frames if not p.is_control]
    assert codes == [1, 3]


def test_echo_request_is_answered_in_any_state_after_http():
    client = SstpClient(SstpClientConfig("h", PppConfig("u", "p"), CERT))
    client.start()
    out = client.receive(b"HTTP/1.1 200 OK\r\n\r\n" + bytes(messages.echo_request()))
    assert bytes(messages.echo_response()) in out.data and out.event(EchoAnswered)


def test_connect_nak_and_early_abort_are_protocol_errors():
    for answer in (messages.call_connect_nak(messages.StatusInfo(
            attrib_id=1, status=messages.AttributeStatus.VALUE_NOT_SUPPORTED)),
            messages.call_abort(messages.AttributeStatus.NEGOTIATION_TIMEOUT)):
        client = SstpClient(SstpClientConfig("h", PppConfig("u", "p"), CERT))
        client.start()
        out = client.receive(b"HTTP/1.1 200 OK\r\n\r\n" + bytes(answer))
        failed = out.event(Failed)
        assert failed.cause == "protocol-error" and failed.phase == "sstp-connect"
        assert "VALUE_NOT_SUPPORTED" in failed.detail or "NEGOTIATION_TIMEOUT" in failed.detail


def test_malformed_sstp_is_a_protocol_error_not_an_exception():
    client = SstpClient(SstpClientConfig("h", PppConfig("u", "p"), CERT))
    client.start()
    out = client.receive(b"HTTP/1.1 200 OK\r\n\r\n" + b"\x20\x01\x00\x08\x00\x08\x00\x00")
    assert out.event(Failed).cause == "protocol-error"


def test_timers_http_and_connect():
    client = SstpClient(SstpClientConfig("h", PppConfig("u", "p"), CERT, http_seconds=5,
                                         connect_seconds=7))
    assert StartTimer("http", 5) in client.start().timers
    failed = client.timeout("http").event(Failed)
    assert (failed.cause, failed.phase) == ("timeout", "http")
    assert "SSTP_DUPLEX_POST" in failed.detail

    client = SstpClient(SstpClientConfig("h", PppConfig("u", "p"), CERT, connect_seconds=7))
    client.start()
    out = client.receive(b"HTTP/1.1 200 OK\r\n\r\n")
    assert StartTimer("sstp-connect", 7) in out.timers
    assert client.timeout("sstp-connect").event(Failed).phase == "sstp-connect"


@pytest.mark.parametrize("stage, cause", [
    ("http", "not-sstp"), ("lcp", "protocol-error"), ("auth", "auth-failed"),
    ("ipcp", "crypto-binding-rejected"), ("running", "protocol-error"),
])
def test_connection_lost_is_blamed_on_the_stage(stage, cause):
    client, server = make()
    out = client.start()
    if stage != "http":
        # Drive the exchange until the client reaches the stage, then cut the line.
        pending = b"".join(out.data)
        for _ in range(60):
            if client.phase == stage:
                break
            got = client.receive(server.receive(pending))
            pending = b"".join(got.data)
            if client.phase == stage:
                break
    assert client.phase == stage
    failed = client.connection_lost().event(Failed)
    assert failed.cause == cause and client.state is ClientState.CLOSED


def test_lost_connection_while_disconnecting_is_just_closed():
    client, _server, _ = connect()
    client.disconnect()
    assert client.connection_lost().event(Closed) is not None


def test_no_disconnect_ack_closes_after_the_timer():
    client, _server, _ = connect()
    client.disconnect()
    out = client.timeout("ppp-terminate")  # no Terminate-Ack: go on with CALL_DISCONNECT
    assert bytes(messages.call_disconnect()) in out.data
    assert client.timeout("sstp-disconnect").event(Closed).reason.startswith("no CALL_DISCONNECT_ACK")


def test_server_disconnect_is_acknowledged():
    client, _server, _ = connect()
    out = client.receive(bytes(messages.call_disconnect()))
    assert bytes(messages.call_disconnect_ack()) in out.data
    assert out.event(Failed).cause == "protocol-error"


def test_send_ip_only_when_running_and_passwords_stay_out_of_reprs():
    client = SstpClient(SstpClientConfig("h", PppConfig("alice", "S3cret-pw!"), CERT))
    with pytest.raises(Exception, match="cannot send IP"):
        client.send_ip(b"\x45")
    assert "S3cret-pw!" not in repr(client.config) and "S3cret-pw!" not in repr(client.config.ppp)
    assert "alice" in repr(client.config)


def test_events_are_the_documented_types():
    _, _, events = connect()
    assert {type(e) for e in events} >= {HttpAnswered, ConnectAcked, LinkEstablished,
                                         AuthSucceeded, CallConnectedSent, IpAssigned}


def test_abort_during_authentication_is_auth_failed():
    client, server = make()
    out = client.start()
    pending = b"".join(out.data)
    for _ in range(20):
        if client.phase == "auth":
            break
        pending = b"".join(client.receive(server.receive(pending)).data)
    assert client.phase == "auth"
    failed = client.receive(bytes(messages.call_abort(
        messages.AttributeStatus.NEGOTIATION_TIMEOUT))).event(Failed)
    assert (failed.cause, failed.phase) == ("auth-failed", "auth")


def test_closing_before_any_call_is_not_called_clean():
    client = SstpClient(SstpClientConfig("h", PppConfig("u", "p"), CERT))
    client.start()
    closed = client.disconnect("deadline").event(Closed)
    assert closed is not None and not closed.clean and "no SSTP call" in closed.reason
    client, server, _ = connect()
    events = pump(client, server, client.disconnect())
    assert next(e for e in events if isinstance(e, Closed)).clean
