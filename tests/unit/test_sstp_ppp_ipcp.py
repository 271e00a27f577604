"""IPCP: ask for 0.0.0.0, take the server's Nak, accept its own address."""
from __future__ import annotations

from scapy.layers.ppp import (
    PPP,
    PPP_IPCP,
    PPP_IPCP_Option,
    PPP_IPCP_Option_DNS1,
    PPP_IPCP_Option_DNS2,
    PPP_IPCP_Option_IPAddress,
)

from aovpn_lab.sstp.ppp.events import IpAssigned, NegotiationFailed, StartTimer
from aovpn_lab.sstp.ppp.ipcp import IpcpNegotiator


def sent(out, index=0) -> PPP_IPCP:
    pkt = PPP(out.frames[index])
    assert bytes(pkt)[:4] == b"\xff\x03\x80\x21"
    return pkt[PPP_IPCP]


def addresses(pkt: PPP_IPCP) -> dict[int, str]:
    return {o.type: o.data for o in pkt.options}


def ipcp_packet(code, identifier, *options) -> bytes:
    return bytes(PPP_IPCP(code=code, id=identifier, options=list(options)))


def test_first_request_asks_for_address_and_dns_as_zero():
    out = IpcpNegotiator().open()
    request = sent(out)
    assert request.code == 1
    assert addresses(request) == {3: "0.0.0.0", 129: "0.0.0.0", 131: "0.0.0.0"}
    assert out.timers == [StartTimer("ipcp", 3.0)]


def test_nak_values_are_requested_again_with_a_new_identifier():
    ipcp = IpcpNegotiator()
    first = sent(ipcp.open())
    nak = ipcp_packet(3, first.id, PPP_IPCP_Option_IPAddress(data="172.16.8.21"),
                      PPP_IPCP_Option_DNS1(data="10.0.0.53"),
                      PPP_IPCP_Option_DNS2(data="10.0.1.53"))
    second = sent(ipcp.receive(nak))
    assert second.code == 1 and second.id == first.id + 1
    assert addresses(second) == {3: "172.16.8.21", 129: "10.0.0.53", 131: "10.0.1.53"}


def test_servers_own_address_is_acked_and_compression_rejected():
    ipcp = IpcpNegotiator()
    ipcp.open()
    vj = PPP_IPCP_Option(type=2, data=b"\x00\x2d\x0f\x01")
    reject = sent(ipcp.receive(ipcp_packet(1, 4, PPP_IPCP_Option_IPAddress(data="172.16.8.1"), vj)))
    assert reject.code == 4 and reject.id == 4 and bytes(reject)[4:] == bytes(vj)
    ack = sent(ipcp.receive(ipcp_packet(1, 5, PPP_IPCP_Option_IPAddress(data="172.16.8.1"))))
    assert ack.code == 2 and ack.id == 5 and addresses(ack) == {3: "172.16.8.1"}


def test_server_asking_us_for_its_address_is_rejected():
    ipcp = IpcpNegotiator()
    ipcp.open()
    reject = sent(ipcp.receive(ipcp_packet(1, 1, PPP_IPCP_Option_IPAddress(data="0.0.0.0"))))
    assert reject.code == 4


def run_to_open(ipcp, *, server_nak, server_ack_options=None):
    first = sent(ipcp.open())
    ipcp.receive(ipcp_packet(1, 1, PPP_IPCP_Option_IPAddress(data="172.16.8.1")))
    second = sent(ipcp.receive(ipcp_packet(3, first.id, *server_nak)))
    return ipcp.receive(ipcp_packet(2, second.id, *second.options))


def test_ip_assigned_after_nak_and_ack():
    out = run_to_open(IpcpNegotiator(), server_nak=[
        PPP_IPCP_Option_IPAddress(data="172.16.8.21"), PPP_IPCP_Option_DNS1(data="10.0.0.53")])
    assert out.events == [IpAssigned("172.16.8.21", "172.16.8.1", ("10.0.0.53",))]


def test_rejected_dns_options_are_dropped_and_the_address_still_comes():
    ipcp = IpcpNegotiator()
    first = sent(ipcp.open())
    dns = [o for o in first.options if o.type != 3]
    second = sent(ipcp.receive(ipcp_packet(4, first.id, *dns)))
    assert addresses(second) == {3: "0.0.0.0"}
    ipcp.receive(ipcp_packet(1, 1, PPP_IPCP_Option_IPAddress(data="10.9.0.1")))
    nak = ipcp_packet(3, second.id, PPP_IPCP_Option_IPAddress(data="10.9.0.7"))
    third = sent(ipcp.receive(nak))
    out = ipcp.receive(ipcp_packet(2, third.id, *third.options))
    assert out.events == [IpAssigned("10.9.0.7", "10.9.0.1", ())]


def test_rejected_address_option_fails_with_a_reason():
    ipcp = IpcpNegotiator(request_dns=False)
    first = sent(ipcp.open())
    out = ipcp.receive(ipcp_packet(4, first.id, *first.options))
    assert isinstance(out.events[0], NegotiationFailed)
    assert "will not assign an address" in out.events[0].reason and not out.frames


def test_ack_of_zero_address_is_not_an_assignment():
    ipcp = IpcpNegotiator(request_dns=False)
    first = sent(ipcp.open())
    ipcp.receive(ipcp_packet(1, 1, PPP_IPCP_Option_IPAddress(data="172.16.8.1")))
    out = ipcp.receive(ipcp_packet(2, first.id, *first.options))
    assert isinstance(out.events[0], NegotiationFailed) and "0.0.0.0" in out.events[0].reason
